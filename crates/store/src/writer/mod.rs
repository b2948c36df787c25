//! The case writer: one transaction around a batch of cases — lock them, append the events a
//! command, the router or a timer decided, and write everything that follows from them
//! (projection, assignments, deadlines, outbox, audit) before a single commit. One case is a
//! batch of one: every path writes through the same statements.

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::case::{CaseState, Event};
use domain::record::CaseRecord;
use queue::Message;
use sqlx::{PgConnection, Postgres, Transaction};

use crate::cases::Actor;
use crate::deadlines::Arm;
use crate::rows::{CASE_COLUMNS, CaseRow, corrupt};
use crate::{Result, Store};

pub(crate) mod assignments;
pub(crate) mod columns;

use columns::{AuditColumns, CaseColumns, EventColumns};

/// One locked case's share of [`CaseTx::append_many`]: the events decided for it (already
/// checked by the state machine, giving `after`) and what follows from them.
pub struct Append<'a> {
    pub before: &'a CaseRecord,
    pub after: CaseState,
    pub events: &'a [Event],
    pub arms: &'a [Arm],
    pub outbox: &'a [Message],
    /// Who decided, and the audit trail's name for what they did.
    pub actor: &'a Actor,
    pub action: &'a str,
}

/// A transaction of the case writer (also used by the timer and the relay for their claims).
pub struct CaseTx {
    tx: Transaction<'static, Postgres>,
}

impl Store {
    pub async fn begin(&self) -> Result<CaseTx> {
        Ok(CaseTx {
            tx: self.pool.begin().await?,
        })
    }
}

impl CaseTx {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Reads those of `ids` that exist, without locking them (the timer's first look: a
    /// deadline whose clock has stopped is retired without taking its case's lock).
    pub async fn read_cases(&mut self, ids: &[CaseId]) -> Result<Vec<CaseRecord>> {
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ANY($1)"
        ))
        .bind(CaseId::uuids(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// Reads and locks those of `ids` that exist, in id order: two writers locking
    /// overlapping batches never wait on each other in a cycle.
    pub async fn lock_cases(&mut self, ids: &[CaseId]) -> Result<Vec<CaseRecord>> {
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ANY($1)
              ORDER BY case_id FOR UPDATE"
        ))
        .persistent(false)
        .bind(CaseId::uuids(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// Reads and locks those of `ids` that are still REPORTED, in id order; a case routed
    /// meanwhile by someone else is left out once its lock is released.
    pub async fn lock_reported(&mut self, ids: &[CaseId]) -> Result<Vec<CaseRecord>> {
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ANY($1) AND status = 'REPORTED'
              ORDER BY case_id FOR UPDATE"
        ))
        .persistent(false)
        .bind(CaseId::uuids(ids))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// [`CaseTx::append_many`] for one case.
    pub async fn append(&mut self, item: Append<'_>, now: DateTime<Utc>) -> Result<CaseRecord> {
        let mut out = self.append_many(&[item], now).await?;
        out.pop()
            .ok_or_else(|| corrupt("append", "a batch of one answered nothing"))
    }

    /// Records each locked case's events and their effects: every table is written by one
    /// multi-row statement, so a batch costs the same handful of round trips as one case.
    /// Answers the cases as they now are, in order. A case appears at most once.
    pub async fn append_many(
        &mut self,
        items: &[Append<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseRecord>> {
        let mut events = EventColumns::default();
        let mut cases = CaseColumns::default();
        let mut audit = AuditColumns::default();
        let mut recs = Vec::with_capacity(items.len());
        for it in items {
            if it.after.version != it.before.state.version + it.events.len() as u64 {
                return Err(corrupt("append", "state version does not match the events"));
            }
            for (i, e) in it.events.iter().enumerate() {
                let version = it.before.state.version + i as u64 + 1;
                events.push(it.before, version, e, &it.actor.subject, now);
            }
            let mut rec = it.before.clone();
            rec.state = it.after.clone();
            rec.follow(it.events);
            rec.updated_at = now;
            cases.push_update(&rec, it.before.state.version);
            audit.push(it.actor, it.action, rec.case_id.to_string());
            recs.push(rec);
        }
        if recs.is_empty() {
            return Ok(recs);
        }
        events.insert(&mut self.tx).await?;
        cases.update(&mut self.tx).await?;
        assignments::sync(&mut self.tx, &recs, now).await?;
        let arms: Vec<(CaseId, &Arm)> = items
            .iter()
            .flat_map(|it| it.arms.iter().map(|a| (it.before.case_id, a)))
            .collect();
        crate::deadlines::arm(&mut self.tx, &arms, now).await?;
        crate::outbox::write(
            &mut self.tx,
            items.iter().flat_map(|it| it.outbox.iter()),
            now,
        )
        .await?;
        audit.insert(&mut self.tx, now).await?;
        Ok(recs)
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
