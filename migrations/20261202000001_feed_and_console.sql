-- The event feed (ADR 0018) and the console's indexes (ADR 0019).

-- The feed: every case event gets a position in the order its transaction became visible.
-- One sequencer at a time (it holds the state row's lock) finds the events that became visible
-- since its last snapshot and numbers them; readers page by position. An event's position never
-- changes and no event is numbered twice (the unique index says so), so a reader resuming
-- after position p misses nothing and sees nothing twice, whatever order transactions commit in.
CREATE INDEX case_events_txid ON case_events (txid);
-- GetStats reads a region's events of a period, and the cases that went overdue before it.
CREATE INDEX case_events_county_time ON case_events (county_code, recorded_at);
CREATE INDEX case_events_overdue ON case_events (county_code, recorded_at) WHERE event_type = 'overdue';

CREATE TABLE event_feed (
    pos         bigint PRIMARY KEY,
    event_seq   bigint NOT NULL,
    case_id     uuid NOT NULL,
    version     bigint NOT NULL,
    county_code text NOT NULL,
    grid_code   text NOT NULL
);
CREATE UNIQUE INDEX event_feed_event ON event_feed (event_seq);
CREATE INDEX event_feed_county ON event_feed (county_code, pos);

-- The sequencer's progress: every event visible in `snapshot` has a position. While a large
-- window is numbered in chunks, `target` is the snapshot that closes it and `after_seq` the
-- last event numbered of it. `next_pos` is the next position to hand out.
CREATE TABLE event_feed_state (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    snapshot  pg_snapshot NOT NULL,
    target    pg_snapshot,
    after_seq bigint NOT NULL DEFAULT 0,
    next_pos  bigint NOT NULL
);

-- Events already on file get their positions now, in log order; events of transactions still
-- running are in this snapshot's in-progress list and are numbered by the sequencer later.
INSERT INTO event_feed (pos, event_seq, case_id, version, county_code, grid_code)
SELECT row_number() OVER (ORDER BY e.seq), e.seq, e.case_id, e.version, e.county_code, c.grid_code
  FROM case_events e JOIN cases c USING (case_id);
INSERT INTO event_feed_state (snapshot, next_pos)
SELECT pg_current_snapshot(), coalesce(max(pos), 0) + 1 FROM event_feed;

-- Console lists (ListCases): newest first within a county, a subtree of grids, a unit's
-- share, and the two narrow sets consoles open most: open cases and overdue cases.
CREATE INDEX cases_county_reported ON cases (county_code, reported_at DESC, case_id DESC);
CREATE INDEX cases_open_reported ON cases (county_code, reported_at DESC, case_id DESC)
    WHERE status IN ('REPORTED', 'PENDING_ACCEPT', 'IN_PROGRESS', 'PENDING_VERIFICATION');
CREATE INDEX cases_overdue_grid ON cases (grid_code text_pattern_ops, reported_at DESC, case_id DESC)
    WHERE overdue;
CREATE INDEX cases_lead ON cases (lead_unit, reported_at DESC, case_id DESC) WHERE lead_unit IS NOT NULL;
CREATE INDEX cases_holder_reported ON cases (holder_unit, reported_at DESC, case_id DESC) WHERE holder_unit IS NOT NULL;
CREATE INDEX cases_assisting ON cases USING gin (assisting_units);
DROP INDEX cases_holder;
