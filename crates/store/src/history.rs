//! Loading case history in bulk: closed and open cases with their full event logs, written as
//! they stand, for importing an older system's records and for the console benchmarks. It
//! writes the case projection and the event log only — no assignments, timers or queue
//! entries — so a loaded open case waits in no unit's queue until a command moves it.

use chrono::{DateTime, Utc};
use domain::case::Event;
use domain::record::CaseRecord;
use serde_json::{Value, json};

use crate::batch::case_row;
use crate::{Result, Store};

/// A case and its events with their times, in version order.
pub type History = (CaseRecord, Vec<(Event, DateTime<Utc>)>);

impl Store {
    /// Writes `cases`, each with its events in version order (the case's state must be
    /// their fold), in one transaction. The feed sequencer numbers the events afterwards.
    pub async fn load_history(&self, cases: &[History]) -> Result<()> {
        let rows: Vec<Value> = cases.iter().map(|(c, _)| case_row(c)).collect();
        let events: Vec<Value> = cases
            .iter()
            .flat_map(|(c, log)| {
                log.iter().enumerate().map(move |(i, (e, at))| {
                    json!({
                        "case_id": c.case_id, "version": i + 1, "event_type": e.kind(),
                        "data": e, "actor": "import",
                        "actor_unit": e.actor_unit().map(ToString::to_string),
                        "county_code": c.county.as_str(), "category": c.category.as_str(),
                        "recorded_at": at,
                    })
                })
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO cases SELECT * FROM jsonb_populate_recordset(NULL::cases, $1)")
            .bind(Value::Array(rows))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO case_events (case_id, version, event_type, data, actor, actor_unit,
                                      county_code, category, recorded_at)
             SELECT case_id, version, event_type, data, actor, actor_unit, county_code,
                    category, recorded_at
               FROM jsonb_populate_recordset(NULL::case_events, $1)",
        )
        .bind(Value::Array(events))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
