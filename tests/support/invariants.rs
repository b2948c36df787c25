//! The invariant checker: reads Postgres and Redis after a fault scenario and reports every
//! breach of DESIGN.md's invariants it can see, with the figures the scenario produced.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// What the checker found.
#[derive(Debug, Default)]
pub struct Findings {
    pub cases: i64,
    pub events: i64,
    /// Acknowledged reports the phones hold.
    pub acked: usize,
    /// (1) acknowledged reports missing from Postgres, or answered with another case.
    pub acked_missing: Vec<String>,
    /// (2) keys with more than one case, and logical reports (titles) filed twice.
    pub duplicate_cases: i64,
    /// (6) cases whose event versions are not exactly 1..=version.
    pub version_gaps: Vec<String>,
    /// Cases whose events do not replay through the state machine to the stored status.
    pub replay_errors: Vec<String>,
    /// Cases the router gave to a unit more than once.
    pub routed_twice: i64,
    /// (5) deadlines that fired twice: escalated twice from one unit, warned twice for one clock.
    pub fired_twice: i64,
    /// (5) a unit both accepted a case and had it escalated away by its accept clock.
    pub accepted_and_escalated: i64,
    pub deadlines_fired: i64,
    pub escalations: i64,
    pub warnings: i64,
    /// Cases still waiting for the router.
    pub unrouted: i64,
    /// The longest a case waited between its report and its routing, in seconds.
    pub slowest_routing: f64,
    /// Cases the reconciler had to send to the router again (their intake entry lost).
    pub resends: i64,
    /// How many re-sends the scenario allows (faults that lose intake entries need some).
    pub resends_allowed: i64,
    /// Outbox rows never published.
    pub unpublished: i64,
    /// (4) pending-accept assignments with no entry in their unit's Redis inbox.
    pub not_in_inbox: Vec<String>,
    pub pending_accept: i64,
    /// Entries in the dead-letter streams.
    pub dead_letters: u64,
    /// (9) deadlines retired without taking effect: refused or corrupt.
    pub deadlines_retired: i64,
    /// (9) deadlines due more than a grace period ago and still unfired.
    pub deadlines_late: i64,
    /// (9) deadlines recorded as having taken effect with no such event on the case.
    pub deadlines_without_effect: i64,
    /// (7) events the feed has not numbered.
    pub feed_unnumbered: i64,
    /// (7) events numbered before an earlier version of their case.
    pub feed_out_of_order: i64,
}

impl Findings {
    /// The breaches, one line each; empty when every invariant holds.
    pub fn breaches(&self) -> Vec<String> {
        let mut b = Vec::new();
        let mut list = |what: &str, v: &[String]| {
            if !v.is_empty() {
                b.push(format!(
                    "{what}: {} (e.g. {:?})",
                    v.len(),
                    &v[..v.len().min(5)]
                ));
            }
        };
        list("acknowledged reports missing", &self.acked_missing);
        list("event version gaps", &self.version_gaps);
        list("events that do not replay", &self.replay_errors);
        list("pending assignments not in their inbox", &self.not_in_inbox);
        if self.resends > self.resends_allowed {
            b.push(format!(
                "cases sent to the router again: {} (allowed {})",
                self.resends, self.resends_allowed
            ));
        }
        if self.slowest_routing > ROUTING_BOUND_SECS {
            b.push(format!(
                "a case waited {:.1} s to be routed (bound {ROUTING_BOUND_SECS} s)",
                self.slowest_routing
            ));
        }
        for (what, n) in [
            ("duplicate cases", self.duplicate_cases),
            ("cases routed twice", self.routed_twice),
            ("deadlines fired twice", self.fired_twice),
            (
                "accepted and escalated from one unit",
                self.accepted_and_escalated,
            ),
            ("cases never routed", self.unrouted),
            ("outbox rows never published", self.unpublished),
            ("events the feed never numbered", self.feed_unnumbered),
            (
                "deadlines retired as refused or corrupt",
                self.deadlines_retired,
            ),
            ("deadlines due and never fired", self.deadlines_late),
            (
                "deadlines fired without their event",
                self.deadlines_without_effect,
            ),
            (
                "entries in dead-letter streams",
                i64::try_from(self.dead_letters).unwrap_or(i64::MAX),
            ),
            (
                "events numbered out of version order",
                self.feed_out_of_order,
            ),
        ] {
            if n != 0 {
                b.push(format!("{what}: {n}"));
            }
        }
        b
    }

    pub fn summary(&self) -> String {
        format!(
            "cases {}, events {}, acknowledged {} (missing {}), duplicates {}, version gaps {}, \
             replay errors {}, routed twice {}, deadlines fired {} (twice {}), escalations {}, \
             warnings {}, pending accept {} (not in inbox {}), unrouted {}, slowest routing {:.1} s, \
             re-sent {}, \
             unpublished {}, \
             dead letters {}, feed unnumbered {} (out of order {}), deadlines retired {}, \
             deadlines late {}, deadlines without effect {}",
            self.cases,
            self.events,
            self.acked,
            self.acked_missing.len(),
            self.duplicate_cases,
            self.version_gaps.len(),
            self.replay_errors.len(),
            self.routed_twice,
            self.deadlines_fired,
            self.fired_twice,
            self.escalations,
            self.warnings,
            self.pending_accept,
            self.not_in_inbox.len(),
            self.unrouted,
            self.slowest_routing,
            self.resends,
            self.unpublished,
            self.dead_letters,
            self.feed_unnumbered,
            self.feed_out_of_order,
            self.deadlines_retired,
            self.deadlines_late,
            self.deadlines_without_effect,
        )
    }

    /// Panics with every breach.
    pub fn assert_clean(&self) {
        let b = self.breaches();
        assert!(
            b.is_empty(),
            "invariants broken: {b:#?}\n{}",
            self.summary()
        );
    }
}

/// The longest a case may wait for its routing under any fault the suite makes. Below the
/// reconciler's one-minute re-send of stale cases: a router that loses an entry, and leaves it
/// to that re-send, breaks it.
pub const ROUTING_BOUND_SECS: f64 = 45.0;

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits (up to `limit`) until the pipeline is quiet: every outbox row published, every
/// case past the router and every event numbered by the feed. Answers how long it took.
pub async fn settle(pool: &PgPool, limit: Duration) -> Duration {
    let t = Instant::now();
    while t.elapsed() < limit {
        let busy = scalar(
            pool,
            "SELECT (SELECT count(*) FROM outbox WHERE published_at IS NULL)
                  + (SELECT count(*) FROM cases WHERE status = 'REPORTED')
                  + (SELECT count(*) FROM case_events) - (SELECT count(*) FROM event_feed)",
        )
        .await;
        if busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

/// Deadline effects that happened twice: a case escalated twice away from one unit, or warned,
/// flagged or found overdue twice for one unit's clock. In runs where no case comes back to a
/// unit it left (no send-down, no rework), each of these happens at most once, so a count
/// above zero is a deadline fired twice. (Counting repeated `(case_id, version)` pairs could
/// never find one: the primary key forbids them.)
pub async fn fired_twice(pool: &PgPool) -> i64 {
    scalar(
        pool,
        "SELECT count(*) FROM (
            SELECT 1 FROM case_events
             WHERE event_type IN ('escalated', 'warned', 'flagged', 'overdue')
             GROUP BY case_id, event_type, coalesce(data->>'from_unit', data->>'unit'),
                      data->>'clock'
            HAVING count(*) > 1) d",
    )
    .await
}

/// Checks every invariant over the database behind `pool` and the Redis keys of `prefix`.
/// `acked` holds the replies the clients got: idempotency key → case id.
#[allow(clippy::too_many_lines)] // one query per invariant reads best in one place
pub async fn check(
    pool: &PgPool,
    redis_url: &str,
    prefix: &str,
    acked: &HashMap<String, String>,
) -> Findings {
    let mut f = Findings {
        cases: scalar(pool, "SELECT count(*) FROM cases").await,
        events: scalar(pool, "SELECT count(*) FROM case_events").await,
        acked: acked.len(),
        ..Findings::default()
    };

    // 1. every acknowledged report is there, under the case its reply named
    let keys: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT k.key, c.case_id FROM idempotency_keys k JOIN cases c USING (case_id)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let stored: HashMap<String, String> = keys
        .into_iter()
        .map(|(k, c)| (k.to_string(), c.to_string()))
        .collect();
    for (key, case) in acked {
        if stored.get(key) != Some(case) {
            f.acked_missing.push(key.clone());
        }
    }

    // 2. one key, one case; one logical report (unique title), one case
    f.duplicate_cases = scalar(
        pool,
        "SELECT (SELECT count(*) FROM cases) - (SELECT count(DISTINCT case_id) FROM idempotency_keys)
              + (SELECT count(*) FROM (SELECT title FROM cases GROUP BY title HAVING count(*) > 1) d)",
    )
    .await;

    // 6. versions 1..=n without gaps, and the projection's version is the last event's
    let gaps: Vec<(uuid::Uuid,)> = sqlx::query_as(
        "SELECT c.case_id FROM cases c
           JOIN (SELECT case_id, count(*) n, min(version) lo, max(version) hi
                   FROM case_events GROUP BY case_id) e USING (case_id)
          WHERE e.lo <> 1 OR e.hi <> e.n OR c.version <> e.hi
         UNION ALL
         SELECT c.case_id FROM cases c
          WHERE NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.case_id)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    f.version_gaps = gaps.into_iter().map(|(c,)| c.to_string()).collect();

    // the events of each case replay through the state machine to its stored status
    let rows: Vec<(
        uuid::Uuid,
        serde_json::Value,
        chrono::DateTime<chrono::Utc>,
        String,
    )> = sqlx::query_as(
        "SELECT e.case_id, e.data, e.recorded_at, c.status
               FROM case_events e JOIN cases c USING (case_id)
              ORDER BY e.case_id, e.version",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut current: Option<(uuid::Uuid, Option<domain::case::CaseState>, String)> = None;
    let finish = |cur: Option<(uuid::Uuid, Option<domain::case::CaseState>, String)>,
                  errors: &mut Vec<String>| {
        if let Some((id, state, status)) = cur {
            match state {
                Some(s) if s.status.as_str() == status => {}
                Some(s) => errors.push(format!("{id}: replays to {:?}, stored {status}", s.status)),
                None => errors.push(format!("{id}: does not replay")),
            }
        }
    };
    for (id, data, at, status) in rows {
        if current.as_ref().is_none_or(|(c, _, _)| *c != id) {
            finish(current.take(), &mut f.replay_errors);
            let state = serde_json::from_value::<domain::case::Event>(data)
                .ok()
                .and_then(|e| domain::case::CaseState::start(&e, at).ok());
            current = Some((id, state, status));
        } else if let Some((_, state, _)) = current.as_mut() {
            *state = state.take().and_then(|s| {
                let e = serde_json::from_value::<domain::case::Event>(data).ok()?;
                s.apply(&e, at).ok()
            });
        }
    }
    finish(current.take(), &mut f.replay_errors);

    f.routed_twice = scalar(
        pool,
        "SELECT count(*) FROM (SELECT case_id FROM case_events WHERE event_type = 'routed'
                                GROUP BY case_id HAVING count(*) > 1) d",
    )
    .await;

    // 5. each deadline at most once
    f.fired_twice = fired_twice(pool).await;
    f.accepted_and_escalated = scalar(
        pool,
        "SELECT count(*) FROM case_events a JOIN case_events e USING (case_id)
          WHERE a.event_type = 'accepted' AND e.event_type = 'escalated'
            AND a.data->>'unit' = e.data->>'from_unit'",
    )
    .await;
    f.deadlines_fired = scalar(
        pool,
        "SELECT count(*) FROM deadlines WHERE fired_at IS NOT NULL",
    )
    .await;
    f.escalations = scalar(
        pool,
        "SELECT count(*) FROM case_events WHERE event_type = 'escalated'",
    )
    .await;
    f.warnings = scalar(
        pool,
        "SELECT count(*) FROM case_events WHERE event_type = 'warned'",
    )
    .await;
    f.unrouted = scalar(pool, "SELECT count(*) FROM cases WHERE status = 'REPORTED'").await;
    f.resends = scalar(
        pool,
        "SELECT count(*) FROM audit_log WHERE action = 'reconcile:resend'",
    )
    .await;
    f.slowest_routing = sqlx::query_scalar::<_, f64>(
        "SELECT coalesce(max(extract(epoch FROM r.recorded_at - p.recorded_at))::float8, 0)
           FROM case_events r JOIN case_events p USING (case_id)
          WHERE r.event_type = 'routed' AND p.version = 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    f.unpublished = scalar(
        pool,
        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
    )
    .await;

    // 9. every due deadline took effect or was retired as stale: none refused or corrupt, and
    // none still waiting well after its time (the timers re-read at least every second)
    f.deadlines_retired = scalar(
        pool,
        "SELECT count(*) FROM deadlines WHERE outcome IN ('refused', 'corrupt')",
    )
    .await;
    f.deadlines_late = scalar(
        pool,
        "SELECT count(*) FROM deadlines WHERE fired_at IS NULL AND fire_at < now() - interval '10 seconds'",
    )
    .await;

    f.deadlines_without_effect = scalar(
        pool,
        "SELECT count(*) FROM deadlines d
          WHERE d.outcome IN ('escalated', 'warned', 'overdue', 'flagged')
            AND NOT EXISTS (
                SELECT 1 FROM case_events e
                 WHERE e.case_id = d.case_id AND e.event_type = d.outcome
                   AND coalesce(e.data->>'from_unit', e.data->>'unit') = d.unit_code)",
    )
    .await;

    // 7. the feed numbered every event once (a unique index forbids twice), each case's
    // versions in order
    f.feed_unnumbered = scalar(
        pool,
        "SELECT count(*) FROM case_events e
          WHERE NOT EXISTS (SELECT 1 FROM event_feed f WHERE f.event_seq = e.seq)",
    )
    .await;
    f.feed_out_of_order = scalar(
        pool,
        "SELECT count(*) FROM (SELECT pos, lag(pos) OVER (PARTITION BY case_id ORDER BY version) AS prev
                                 FROM event_feed) x
          WHERE prev > pos",
    )
    .await;

    // 4. every pending-accept assignment has reached its unit's inbox in Redis
    let pending: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT a.case_id, a.unit_code, c.county_code FROM assignments a JOIN cases c USING (case_id)
          WHERE a.status = 'PENDING_ACCEPT'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    f.pending_accept = i64::try_from(pending.len()).unwrap_or(i64::MAX);
    let q = queue::Queue::connect(redis_url, prefix)
        .await
        .expect("Redis answers the checker");
    let mut conn = redis::Client::open(redis_url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut inboxes: HashMap<String, HashSet<String>> = HashMap::new();
    for (case_id, unit, _county) in &pending {
        let key = q.key(&crate::inbox_stream(unit));
        if !inboxes.contains_key(&key) {
            let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            let cases = entries
                .ids
                .iter()
                .filter_map(|e| e.get::<String>("data"))
                .filter_map(|d| serde_json::from_str::<queue::InboxMsg>(&d).ok())
                .filter(|m| m.kind == domain::effects::ItemKind::ToAccept)
                .map(|m| m.case_id.to_string())
                .collect();
            inboxes.insert(key.clone(), cases);
        }
        if !inboxes[&key].contains(&case_id.to_string()) {
            f.not_in_inbox.push(format!("{case_id} -> {unit}"));
        }
    }
    let counties: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT county_code FROM cases")
        .fetch_all(pool)
        .await
        .unwrap();
    for (county,) in counties {
        f.dead_letters += q
            .len(&q.key(&crate::dead_stream(&county)))
            .await
            .unwrap_or(0);
    }
    f
}
