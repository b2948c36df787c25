-- Intake beyond the grid (ADR 0031): where each report came from, with the source's own
-- reference (a 12345 hotline ticket), and the reporter's contact, sealed by gridd with a key
-- the database never sees. The masked form is kept in clear for those who may see the case
-- but not call the reporter back.

ALTER TABLE cases
    ADD COLUMN source     text NOT NULL DEFAULT 'GRID_WORKER',
    ADD COLUMN source_ref text;

CREATE TABLE case_contacts (
    case_id   uuid PRIMARY KEY REFERENCES cases (case_id),
    -- which of gridd's contact keys sealed it
    key_id    text NOT NULL,
    -- nonce (12 bytes) then AES-256-GCM ciphertext and tag
    sealed    bytea NOT NULL,
    masked    jsonb NOT NULL,
    stored_at timestamptz NOT NULL
);
-- the reseal sweep after a key rotation looks for rows under other keys
CREATE INDEX case_contacts_key ON case_contacts (key_id);
