-- Photos, videos and voice notes (ADR 0034): the bytes live in the object store under their
-- SHA-256; this table says they are there, what they are, and who uploaded them first.

CREATE TABLE media (
    content_hash text PRIMARY KEY CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    media_type   text NOT NULL,
    size         bigint NOT NULL CHECK (size > 0),
    uploaded_by  text NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now()
);
