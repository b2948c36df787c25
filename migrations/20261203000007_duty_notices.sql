-- The duty notifier (ADR 0043): who was called about which case reaching which unit's queue,
-- each call retried until delivered or dead-lettered, then the next person, then the head.
CREATE TABLE duty_notices (
    notice_id    uuid PRIMARY KEY,
    case_id      uuid NOT NULL,
    -- the case event that put the case in the unit's queue
    version      bigint NOT NULL,
    unit_code    text NOT NULL,
    -- 0, 1, ...: the place in the call order (those on duty, then the head)
    step         integer NOT NULL,
    person_id    text NOT NULL,
    person_name  text NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('waiting', 'pending', 'delivered', 'dead', 'answered', 'unanswered')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL,
    -- who holds the call for delivery now: only that holder may settle it
    claim        uuid,
    -- when a delivered call counts as unanswered and the next step is called
    answer_by    timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, version, unit_code, step)
);
CREATE INDEX duty_notices_due ON duty_notices (next_at) WHERE status = 'pending';
CREATE INDEX duty_notices_answer ON duty_notices (answer_by) WHERE status = 'delivered';

-- How far the notifier has read the event feed.
CREATE TABLE duty_notifier_cursor (
    id  integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    pos bigint NOT NULL
);
