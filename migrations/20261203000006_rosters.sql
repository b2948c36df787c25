-- 365天服務不打烊: each unit's duty roster (ADR 0042), versioned like policies.
CREATE TABLE rosters (
    unit_code  text PRIMARY KEY REFERENCES units (code),
    version    bigint NOT NULL,
    body       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
