-- The Open311 GeoReport v2 facade's clients (ADR 0033). A client's key is shown once, when it
-- is issued; only its SHA-256 is kept. Revoking keeps the row, so the audit trail still names
-- the client.

CREATE TABLE open311_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    -- the area the client files and reads in: a county (or a city) code
    region      text NOT NULL,
    secret_hash bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
