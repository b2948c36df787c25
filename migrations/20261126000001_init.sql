-- GridDispatch: the system of record.

-- The registry: grids, communities, townships, counties, cities and departments.
CREATE TABLE units (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('GRID','COMMUNITY','TOWNSHIP','COUNTY','CITY','DEPARTMENT')),
    parent_code text REFERENCES units (code),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX units_parent ON units (parent_code, code);
CREATE INDEX units_kind ON units (kind, code);

-- The category catalogue (GB/T 30428.2-style two levels).
CREATE TABLE categories (
    code        text PRIMARY KEY,
    parent_code text REFERENCES categories (code),
    name        text NOT NULL,
    body        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One routing policy per county; `body` is the domain Policy as JSON.
CREATE TABLE policies (
    county_code text PRIMARY KEY,
    version     bigint NOT NULL,
    body        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The case projection: what consoles query. `state` is the domain CaseState, the fold of
-- the case's events; the other columns are copies of it for indexes and filters.
CREATE TABLE cases (
    case_id         uuid PRIMARY KEY,
    case_number     text NOT NULL UNIQUE,
    county_code     text NOT NULL,
    grid_code       text NOT NULL,
    category        text NOT NULL,
    severity        text NOT NULL,
    title           text NOT NULL,
    description     text NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    reported_crs    text NOT NULL,
    attachments     jsonb NOT NULL DEFAULT '[]',
    occurred_at     timestamptz NOT NULL,
    reported_at     timestamptz NOT NULL,
    reported_by     text NOT NULL,
    self_handled    boolean NOT NULL,
    status          text NOT NULL,
    tier            text NOT NULL,
    holder_unit     text,
    lead_unit       text,
    assisting_units text[] NOT NULL DEFAULT '{}',
    accept_due_at   timestamptz,
    handle_due_at   timestamptz,
    overdue         boolean NOT NULL DEFAULT false,
    rework_count    integer NOT NULL DEFAULT 0,
    rating          smallint,
    version         bigint NOT NULL,
    state           jsonb NOT NULL,
    -- W3C trace context of the report: every later step of the case joins this trace
    trace           jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL
);
CREATE INDEX cases_grid_reported ON cases (grid_code text_pattern_ops, reported_at DESC, case_id DESC);
CREATE INDEX cases_reporter ON cases (reported_by, reported_at DESC, case_id DESC);
CREATE INDEX cases_holder ON cases (holder_unit) WHERE holder_unit IS NOT NULL;
CREATE INDEX cases_status ON cases (county_code, status);
CREATE INDEX cases_waiting ON cases (reported_at) WHERE status = 'REPORTED';

-- Case numbers: one sequence per county, `case_seq_<county>`, created with the county's first
-- report (see store::cases). A sequence hands out numbers without a lock that concurrent
-- reports queue on; a rolled-back report leaves a gap, never a duplicate.

-- The append-only event log. (case_id, version) makes versions unique; the command that
-- appends version n holds the case row's lock and checked version n-1, so there are no gaps.
-- `txid` is the writing transaction, for commit-order export.
CREATE TABLE case_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    -- deferred: a report writes its first event before the case row (see store::cases)
    case_id     uuid NOT NULL REFERENCES cases (case_id) DEFERRABLE INITIALLY DEFERRED,
    version     bigint NOT NULL CHECK (version > 0),
    event_type  text NOT NULL,
    data        jsonb NOT NULL,
    actor       text NOT NULL,
    actor_unit  text,
    county_code text NOT NULL,
    category    text NOT NULL,
    recorded_at timestamptz NOT NULL,
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (case_id, version)
);
CREATE UNIQUE INDEX case_events_seq ON case_events (seq);

-- A unit's share of a case, each with its own clocks.
CREATE TABLE assignments (
    assignment_id uuid PRIMARY KEY,
    case_id       uuid NOT NULL REFERENCES cases (case_id),
    unit_code     text NOT NULL,
    tier          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('HOLDER','LEAD','ASSISTING')),
    status        text NOT NULL CHECK (status IN ('PENDING_ACCEPT','ACCEPTED','SUBMITTED','ENDED')),
    accept_due_at timestamptz,
    handle_due_at timestamptz,
    created_at    timestamptz NOT NULL,
    accepted_at   timestamptz,
    submitted_at  timestamptz,
    ended_at      timestamptz,
    overdue       boolean NOT NULL DEFAULT false,
    note          text NOT NULL DEFAULT '',
    case_version  bigint NOT NULL
);
CREATE INDEX assignments_case ON assignments (case_id, created_at);
CREATE INDEX assignments_pending ON assignments (unit_code) WHERE status = 'PENDING_ACCEPT';

-- SLA timers. A row fires once: the firing transaction claims it with FOR UPDATE SKIP LOCKED,
-- re-checks that the unit's clock still runs with the same due time, applies the event and
-- sets fired_at in the same commit. Commands never update or delete these rows (they only add
-- new ones), so a command and a timer never wait on each other's deadline locks.
CREATE TABLE deadlines (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id      uuid NOT NULL REFERENCES cases (case_id),
    unit_code    text NOT NULL,
    clock        text NOT NULL CHECK (clock IN ('accept', 'handle')),
    -- true: the yellow warning at 80 % of the limit; false: the deadline itself
    warn         boolean NOT NULL,
    fire_at      timestamptz NOT NULL,
    -- the due time of the clock this row belongs to; a changed due time makes the row stale
    clock_due_at timestamptz NOT NULL,
    armed_at     timestamptz NOT NULL,
    fired_at     timestamptz,
    outcome      text
);
CREATE INDEX deadlines_due ON deadlines (fire_at) WHERE fired_at IS NULL;

-- Transactional outbox: what must reach a Redis stream, written in the command's transaction.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream       text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Client-made report keys: one key, one case.
CREATE TABLE idempotency_keys (
    key         uuid PRIMARY KEY,
    fingerprint bytea NOT NULL,
    -- deferred: the key row is written first, so that concurrent retries queue on it
    case_id     uuid NOT NULL REFERENCES cases (case_id) DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Audit trail (MLPS 2.0 level 3): time, user, event type and result. The application may only
-- append: updates and deletes are refused by a trigger.
CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    principal text NOT NULL,
    role      text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    result    text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The event log is append-only as well.
CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case_events is append-only';
END;
$$;
CREATE TRIGGER case_events_no_update BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only();
