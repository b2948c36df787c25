//! The event feed: every case event numbered in the order its transaction became visible
//! (ADR 0018). The sequencer numbers; the export stream and the console watches read by number.

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::case::{CaseState, Event};
use domain::record::{CaseRecord, EventRecord};
use domain::region::RegionCode;
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{EventRow, corrupt};
use crate::scope::push_region;
use crate::{Result, Store};

/// A numbered event, with the codes a reader filters and labels it by.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// The event's place in the feed: 1, 2, 3, ... in visibility order, never reused.
    pub pos: i64,
    pub event: EventRecord,
    pub county: String,
    pub grid: String,
    pub category: String,
}

/// Which part of the feed a reader wants.
#[derive(Debug, Clone, Copy)]
pub enum FeedRegion<'a> {
    All,
    Within(&'a RegionCode),
}

#[derive(sqlx::FromRow)]
struct FeedRow {
    pos: i64,
    county_code: String,
    grid_code: String,
    category: String,
    #[sqlx(flatten)]
    event: EventRow,
}

impl Store {
    /// One sequencer step: numbers, in log order, up to `chunk` events whose transactions
    /// became visible since the last snapshot, and remembers how far it got. Answers how
    /// many it numbered; 0 when there was nothing new or another sequencer holds the state.
    ///
    /// A window runs from the stored `snapshot` to a `target` snapshot taken when the window
    /// opens. Its events are exactly those of transactions that were running at `snapshot`
    /// (its in-progress list) or began after it (at or past its xmax), and that are visible
    /// in `target`: both found through the `txid` index. Within a window events are numbered
    /// by `seq`, so one case's versions keep their order (a later version's row was written
    /// after the earlier one committed); every window comes after the one before it. A large
    /// window — after a bulk load, or a sequencer that was down — is numbered `chunk`
    /// events per transaction, so no step holds a long transaction.
    ///
    /// A step reads only its window's events, never the log before them: a new window's
    /// lowest event is found through the `txid` index, and a window with no event ends the
    /// step before the numbering statement, whose scan starts at the window's lowest event.
    /// (Both once read the whole log at every step, over half the database's time at
    /// 300 reports/s and growing with the log: docs/benchmarks.md.)
    pub async fn sequence_feed(&self, chunk: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // one snapshot for the whole step: the rows it reads and the target it may store
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let state: Option<(String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT snapshot::text, target::text, after_seq, next_pos FROM event_feed_state
                FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((prev, target, after_seq, next)) = state else {
            return Ok(0);
        };
        let fresh_window = target.is_none();
        let (target, after_seq) = match target {
            Some(t) => (t, after_seq),
            None => {
                // a new window closes at this step's own snapshot; it starts just below its
                // lowest event, so no step scans the log from its beginning. The window's
                // events are found through the `txid` index first (the CTE is a fence):
                // left to itself the planner answers `min(seq)` by walking the log's key
                // from its first event and filtering, which reads the whole log at every
                // step, more as the log grows. Planned at each execution, with the snapshot's
                // values in hand: the plan a connection cached after a few steps read about
                // ten times the pages (a mean of 5 ms a step at 100 reports/s, 40 % of the
                // database's statement time, against 2 % planned each time).
                let (target, lowest) = sqlx::query_as::<_, (String, Option<i64>)>(
                    "WITH w AS MATERIALIZED (
                         SELECT e.seq FROM case_events e
                          WHERE e.txid >= pg_snapshot_xmax($1::pg_snapshot)
                             OR e.txid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot))))
                     SELECT pg_current_snapshot()::text, (SELECT min(seq) FROM w)",
                )
                .bind(&prev)
                .persistent(false)
                .fetch_one(&mut *tx)
                .await?;
                let Some(lowest) = lowest else {
                    // no event in the window: nothing to number, and the stored snapshot
                    // still says what is numbered; write nothing, so an idle feed costs no
                    // commit (and no read of the log)
                    return Ok(0);
                };
                (target, lowest - 1)
            }
        };
        let seqs: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO event_feed (pos, event_seq, case_id, version, county_code, grid_code)
             SELECT $4 + row_number() OVER (ORDER BY seq) - 1, seq, case_id, version,
                    county_code, grid_code
               FROM (SELECT e.seq, e.case_id, e.version, e.county_code, c.grid_code
                       FROM case_events e JOIN cases c USING (case_id)
                      WHERE (e.txid >= pg_snapshot_xmax($1::pg_snapshot)
                             OR e.txid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot))))
                        AND pg_visible_in_snapshot(e.txid, $2::pg_snapshot)
                        AND e.seq > $3
                      ORDER BY e.seq LIMIT $5) w
             RETURNING event_seq",
        )
        .bind(&prev)
        .bind(&target)
        .bind(after_seq)
        .bind(next)
        .bind(i64::from(chunk))
        .fetch_all(&mut *tx)
        .await?;
        let numbered = seqs.len() as u64;
        if numbered == 0 && fresh_window {
            // nothing new: the stored snapshot still says what is numbered; write nothing,
            // so an idle feed costs no commit
            return Ok(0);
        }
        if numbered < u64::from(chunk) {
            // the window is done: the next one starts where it closed
            sqlx::query(
                "UPDATE event_feed_state SET snapshot = $1::pg_snapshot, target = NULL,
                        after_seq = 0, next_pos = next_pos + $2",
            )
            .bind(&target)
            .bind(i64::try_from(numbered).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE event_feed_state SET target = $1::pg_snapshot, after_seq = $2,
                        next_pos = next_pos + $3",
            )
            .bind(&target)
            .bind(seqs.iter().copied().max().unwrap_or(after_seq))
            .bind(i64::try_from(numbered).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(numbered)
    }

    /// The last position handed out (0 before any).
    pub async fn feed_head(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT next_pos - 1 FROM event_feed_state")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Up to `limit` events after position `after`, in feed order.
    pub async fn feed_after(
        &self,
        after: i64,
        region: FeedRegion<'_>,
        limit: u32,
    ) -> Result<Vec<FeedEvent>> {
        let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new(
            "SELECT f.pos, f.county_code, f.grid_code, e.category, e.case_id, e.version,
                    e.event_type, e.data, e.actor, e.actor_unit, e.recorded_at
               FROM event_feed f JOIN case_events e ON e.seq = f.event_seq
              WHERE f.pos > ",
        );
        q.push_bind(after);
        if let FeedRegion::Within(r) = region {
            push_region(&mut q, r, "f.county_code", "f.grid_code");
        }
        q.push(" ORDER BY f.pos LIMIT ").push_bind(i64::from(limit));
        q.build_query_as::<FeedRow>()
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(FeedEvent {
                    pos: r.pos,
                    event: EventRecord::try_from(r.event)?,
                    county: r.county_code,
                    grid: r.grid_code,
                    category: r.category,
                })
            })
            .collect()
    }

    /// Each case of `wanted` as it was right after the given version: the stored row when it
    /// is still at that version, else the row's report fields with the state folded from the
    /// event log up to that version (ADR 0001). Answers in the order asked; a case that does
    /// not exist is left out.
    pub async fn cases_at(&self, wanted: &[(CaseId, u64)]) -> Result<Vec<CaseRecord>> {
        let ids: Vec<CaseId> = wanted.iter().map(|(id, _)| *id).collect();
        let current = self.get_cases(&ids).await?;
        let stale: Vec<CaseId> = wanted
            .iter()
            .filter(|(id, v)| current.get(id).is_some_and(|c| c.state.version != *v))
            .map(|(id, _)| *id)
            .collect();
        let mut logs: std::collections::HashMap<CaseId, Vec<EventRecord>> =
            std::collections::HashMap::new();
        if !stale.is_empty() {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT case_id, version, event_type, data, actor, actor_unit, recorded_at
                   FROM case_events WHERE case_id = ANY($1) ORDER BY case_id, version",
            )
            .bind(CaseId::uuids(&stale))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                let e = EventRecord::try_from(r)?;
                logs.entry(e.case_id).or_default().push(e);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (id, v) in wanted {
            let Some(cur) = current.get(id) else {
                continue;
            };
            if cur.state.version == *v {
                out.push(cur.clone());
                continue;
            }
            let log = logs.get(id).map_or(&[][..], Vec::as_slice);
            let upto: Vec<(Event, DateTime<Utc>)> = log
                .iter()
                .take_while(|e| e.version <= *v)
                .map(|e| {
                    serde_json::from_value::<Event>(e.data.clone())
                        .map(|ev| (ev, e.recorded_at))
                        .map_err(|err| corrupt("case_events.data", err))
                })
                .collect::<Result<_>>()?;
            let state = CaseState::replay(upto.iter().map(|(e, at)| (e, *at)))
                .map_err(|err| corrupt("case_events", err))?
                .ok_or_else(|| corrupt("case_events", "no events up to the version"))?;
            let mut rec = cur.clone();
            rec.updated_at = upto.last().map_or(rec.updated_at, |(_, at)| *at);
            rec.state = state;
            out.push(rec);
        }
        Ok(out)
    }
}
