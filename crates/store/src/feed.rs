//! The event feed: every case event numbered in the order its transaction became visible
//! (ADR 0018). The sequencer numbers; the export stream and the console watches read by number.

use chrono::{DateTime, Utc};
use domain::case::{CaseState, Event};
use domain::record::{CaseRecord, EventRecord};
use domain::region::RegionCode;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

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
    /// One sequencer step: numbers every event whose transaction became visible since the
    /// last step, in log order, and remembers the snapshot it saw. Answers how many it
    /// numbered; 0 when there was nothing new or another sequencer holds the state.
    ///
    /// Events visible now but not in the last snapshot are exactly those of transactions
    /// that were running then (its in-progress list) or started after it (at or past its
    /// xmax): both are found through the `txid` index. The step runs at REPEATABLE READ so
    /// that the rows it numbers and the snapshot it stores are the same snapshot.
    pub async fn sequence_feed(&self) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let next: Option<i64> =
            sqlx::query_scalar("SELECT next_pos FROM event_feed_state FOR UPDATE SKIP LOCKED")
                .fetch_optional(&mut *tx)
                .await?;
        let Some(next) = next else {
            return Ok(0);
        };
        let numbered = sqlx::query(
            "WITH prev AS (SELECT snapshot AS s FROM event_feed_state),
                  fresh AS (
                    SELECT e.seq, e.case_id, e.version, e.county_code, c.grid_code
                      FROM prev, case_events e JOIN cases c USING (case_id)
                     WHERE (e.txid >= pg_snapshot_xmax(prev.s)
                            OR e.txid = ANY (ARRAY(SELECT pg_snapshot_xip(prev.s))))
                       AND NOT pg_visible_in_snapshot(e.txid, prev.s))
             INSERT INTO event_feed (pos, event_seq, case_id, version, county_code, grid_code)
             SELECT $1 + row_number() OVER (ORDER BY seq) - 1, seq, case_id, version,
                    county_code, grid_code
               FROM fresh",
        )
        .bind(next)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE event_feed_state SET snapshot = pg_current_snapshot(), next_pos = next_pos + $1",
        )
        .bind(i64::try_from(numbered).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
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
    pub async fn cases_at(&self, wanted: &[(Uuid, u64)]) -> Result<Vec<CaseRecord>> {
        let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
        let current = self.get_cases(&ids).await?;
        let stale: Vec<Uuid> = wanted
            .iter()
            .filter(|(id, v)| current.get(id).is_some_and(|c| c.state.version != *v))
            .map(|(id, _)| *id)
            .collect();
        let mut logs: std::collections::HashMap<Uuid, Vec<EventRecord>> =
            std::collections::HashMap::new();
        if !stale.is_empty() {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT case_id, version, event_type, data, actor, actor_unit, recorded_at
                   FROM case_events WHERE case_id = ANY($1) ORDER BY case_id, version",
            )
            .bind(&stale)
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
