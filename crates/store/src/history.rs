//! Loading case history in bulk: closed and open cases with their full event logs, written as
//! they stand, for importing an older system's records and for the console benchmarks. It
//! writes the case projection and the event log only — no assignments, timers or queue
//! entries — so a loaded open case waits in no unit's queue until a command moves it.

use chrono::{DateTime, Utc};
use domain::case::Event;
use domain::record::CaseRecord;

use crate::writer::columns::{CaseColumns, EventColumns};
use crate::{Result, Store};

/// A case and its events with their times, in version order.
pub type History = (CaseRecord, Vec<(Event, DateTime<Utc>)>);

impl Store {
    /// Writes `cases`, each with its events in version order (the case's state must be
    /// their fold), in one transaction. The feed sequencer numbers the events afterwards.
    pub async fn load_history(&self, cases: &[History]) -> Result<()> {
        let mut rows = CaseColumns::default();
        let mut events = EventColumns::default();
        for (c, log) in cases {
            rows.push_new(c);
            for (i, (e, at)) in log.iter().enumerate() {
                events.push(c, i as u64 + 1, e, "import", *at);
            }
        }
        let mut tx = self.pool.begin().await?;
        rows.insert(&mut tx).await?;
        events.insert(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
