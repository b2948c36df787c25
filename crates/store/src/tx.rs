//! One transaction around one case: lock it, append the events a command or timer decided,
//! and write everything that follows from them — projection, assignments, deadlines, outbox —
//! before a single commit.

use chrono::{DateTime, Utc};
use domain::case::{CaseState, Clock, Event};
use domain::effects::{AssignmentStatus, OpenAssignment, open_assignments};
use domain::record::CaseRecord;
use domain::region::UnitCode;
use queue::Message;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::cases::{Actor, audit, insert_event, version_i64};
use crate::rows::{CASE_COLUMNS, CaseRow, corrupt};
use crate::{Result, Store, StoreError};

/// A timer to arm: fires at `fire_at` for `unit`'s `clock` that is due at `clock_due_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub unit: UnitCode,
    pub clock: Clock,
    pub warn: bool,
    pub fire_at: DateTime<Utc>,
    pub clock_due_at: DateTime<Utc>,
}

/// A claimed, due deadline.
#[derive(Debug, Clone)]
pub struct DueDeadline {
    pub id: i64,
    pub case_id: Uuid,
    pub unit: UnitCode,
    pub clock: Clock,
    pub warn: bool,
    pub fire_at: DateTime<Utc>,
    pub clock_due_at: DateTime<Utc>,
}

fn clock_name(c: Clock) -> &'static str {
    match c {
        Clock::Accept => "accept",
        Clock::Handle => "handle",
    }
}

/// `deadlines` columns as [`CaseTx::claim_due`] reads them.
type DeadlineTuple = (
    i64,
    Uuid,
    String,
    String,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// One locked case's share of [`CaseTx::append_many`].
pub struct Append<'a> {
    pub before: &'a CaseRecord,
    pub after: CaseState,
    pub events: &'a [Event],
    pub arms: &'a [Arm],
    pub outbox: &'a [Message],
}

/// `case_events` rows as columns, for one multi-row insert.
#[derive(Default)]
struct EventRows {
    case_id: Vec<Uuid>,
    version: Vec<i64>,
    kind: Vec<&'static str>,
    data: Vec<serde_json::Value>,
    actor_unit: Vec<Option<String>>,
    county: Vec<String>,
    category: Vec<String>,
}

impl EventRows {
    fn push(&mut self, r: &CaseRecord, version: u64, e: &Event) {
        self.case_id.push(r.case_id);
        self.version.push(version_i64(version));
        self.kind.push(e.kind());
        self.data
            .push(serde_json::to_value(e).expect("events serialise"));
        self.actor_unit
            .push(e.actor_unit().map(ToString::to_string));
        self.county.push(r.county.to_string());
        self.category.push(r.category.to_string());
    }

    async fn insert(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.case_id.is_empty() {
            return Ok(());
        }
        // sequence numbers follow the order given, so each case's events read in version order
        sqlx::query(
            "INSERT INTO case_events (case_id, version, event_type, data, actor, actor_unit,
                county_code, category, recorded_at)
             SELECT c, v, t, d, $8, a, co, ca, $9
               FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::jsonb[], $5::text[],
                           $6::text[], $7::text[]) WITH ORDINALITY AS x(c, v, t, d, a, co, ca, n)
              ORDER BY n",
        )
        .bind(&self.case_id)
        .bind(&self.version)
        .bind(&self.kind)
        .bind(&self.data)
        .bind(&self.actor_unit)
        .bind(&self.county)
        .bind(&self.category)
        .bind(&actor.subject)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Assignments to end, as columns.
#[derive(Default)]
struct AssignmentEnds {
    id: Vec<Uuid>,
    status: Vec<&'static str>,
    version: Vec<i64>,
}

/// Assignments still open, with their new figures, as columns.
#[derive(Default)]
struct AssignmentKeeps {
    id: Vec<Uuid>,
    status: Vec<&'static str>,
    accept_due_at: Vec<Option<DateTime<Utc>>>,
    handle_due_at: Vec<Option<DateTime<Utc>>>,
    overdue: Vec<bool>,
    version: Vec<i64>,
}

/// New assignments, as columns.
#[derive(Default)]
struct AssignmentOpens {
    id: Vec<Uuid>,
    case_id: Vec<Uuid>,
    unit: Vec<String>,
    tier: Vec<&'static str>,
    role: Vec<&'static str>,
    status: Vec<&'static str>,
    accept_due_at: Vec<Option<DateTime<Utc>>>,
    handle_due_at: Vec<Option<DateTime<Utc>>>,
    overdue: Vec<bool>,
    version: Vec<i64>,
}

/// An `assignments` row still open, as read back for one case.
struct OpenRow<'r> {
    id: Uuid,
    unit: &'r str,
    role: &'r str,
    status: &'r str,
}

/// What one open row, or one holding the state wants, needs so the rows match the state.
#[derive(Debug, PartialEq)]
enum AssignmentChange<'a> {
    /// The holding is over; the row ends with this status (a submitted share stays submitted).
    End { id: Uuid, status: &'static str },
    /// The holding goes on, with these figures.
    Keep { id: Uuid, to: &'a OpenAssignment },
    /// A holding with no row yet.
    Open(&'a OpenAssignment),
}

/// The one decision both the batch and the single-case paths make: a row is the same holding
/// as a wanted one when unit and role agree; rows with no wanted holding end, wanted holdings
/// with no row open.
fn assignment_changes<'r, 'a>(
    open: impl Iterator<Item = OpenRow<'r>>,
    desired: &'a [OpenAssignment],
) -> Vec<AssignmentChange<'a>> {
    let same = |d: &OpenAssignment, o: &OpenRow<'_>| {
        d.unit.as_str() == o.unit && d.role.as_str() == o.role
    };
    let open: Vec<OpenRow<'r>> = open.collect();
    let mut out = Vec::with_capacity(open.len() + desired.len());
    for o in &open {
        out.push(match desired.iter().find(|d| same(d, o)) {
            Some(d) => AssignmentChange::Keep { id: o.id, to: d },
            None => AssignmentChange::End {
                id: o.id,
                status: if o.status == AssignmentStatus::Submitted.as_str() {
                    AssignmentStatus::Submitted.as_str()
                } else {
                    AssignmentStatus::Ended.as_str()
                },
            },
        });
    }
    out.extend(
        desired
            .iter()
            .filter(|d| !open.iter().any(|o| same(d, o)))
            .map(AssignmentChange::Open),
    );
    out
}

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
    /// Reads the case and locks its row until commit: commands on one case serialize here.
    pub async fn lock_case(&mut self, case_id: Uuid) -> Result<Option<CaseRecord>> {
        let row: Option<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE"
        ))
        .bind(case_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(CaseRecord::try_from).transpose()
    }

    /// Reads and locks those of `ids` that are still REPORTED. Rows are locked in id order,
    /// so two routers locking overlapping batches never wait on each other in a cycle; a
    /// case routed meanwhile by someone else is left out once its lock is released.
    pub async fn lock_reported(&mut self, ids: &[Uuid]) -> Result<Vec<CaseRecord>> {
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ANY($1) AND status = 'REPORTED'
              ORDER BY case_id FOR UPDATE"
        ))
        .persistent(false)
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    pub async fn unit_exists(&mut self, code: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM units WHERE code = $1)")
                .bind(code)
                .fetch_one(&mut *self.tx)
                .await?,
        )
    }

    /// Records `events` (already checked by the state machine, giving `after`) and their
    /// effects. The case row must have been locked with [`CaseTx::lock_case`]. One case's
    /// statements are single-row and prepared once per connection; a batch goes through
    /// [`CaseTx::append_many`].
    #[allow(clippy::too_many_arguments)]
    pub async fn append(
        &mut self,
        before: &CaseRecord,
        after: CaseState,
        events: &[Event],
        arms: &[Arm],
        outbox: &[Message],
        actor: &Actor,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<CaseRecord> {
        if after.version != before.state.version + events.len() as u64 {
            return Err(corrupt("append", "state version does not match the events"));
        }
        let mut rec = before.clone();
        for (i, e) in events.iter().enumerate() {
            rec.state.version = before.state.version + i as u64 + 1;
            insert_event(&mut self.tx, &rec, e, actor, now).await?;
        }
        rec.state = after;
        rec.updated_at = now;
        let s = &rec.state;
        let updated = sqlx::query(
            "UPDATE cases SET status = $2, tier = $3, holder_unit = $4, lead_unit = $5,
                assisting_units = $6, accept_due_at = $7, handle_due_at = $8, overdue = $9,
                rework_count = $10, rating = $11, version = $12, state = $13, updated_at = $14
              WHERE case_id = $1 AND version = $15",
        )
        .bind(rec.case_id)
        .bind(s.status.as_str())
        .bind(s.tier.as_str())
        .bind(s.holder.as_ref().map(ToString::to_string))
        .bind(s.lead.as_ref().map(ToString::to_string))
        .bind(
            s.assisting_units()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .bind(s.accept_due_at)
        .bind(s.handle_due_at)
        .bind(s.overdue)
        .bind(i32::try_from(s.rework_count).unwrap_or(i32::MAX))
        .bind(s.rating.map(i16::from))
        .bind(i64::try_from(s.version).unwrap_or(i64::MAX))
        .bind(serde_json::to_value(s).expect("state serialises"))
        .bind(now)
        .bind(i64::try_from(before.state.version).unwrap_or(i64::MAX))
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(StoreError::Invalid {
                field: "case".into(),
                reason: "the case changed underneath this transaction".into(),
            });
        }
        self.sync_one(&rec, now).await?;
        for a in arms {
            sqlx::query(
                "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(rec.case_id)
            .bind(a.unit.as_str())
            .bind(clock_name(a.clock))
            .bind(a.warn)
            .bind(a.fire_at)
            .bind(a.clock_due_at)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        if !outbox.is_empty() {
            let (streams, payloads) = outbox_rows(outbox.iter());
            sqlx::query(
                "INSERT INTO outbox (stream, payload) SELECT * FROM UNNEST($1::text[], $2::jsonb[])",
            )
            .bind(&streams)
            .bind(&payloads)
            .execute(&mut *self.tx)
            .await?;
        }
        audit(&mut self.tx, actor, action, &rec.case_id.to_string(), "ok").await?;
        Ok(rec)
    }

    /// [`CaseTx::append`] for many locked cases at once: every table is written by one
    /// multi-row statement, so a batch costs the same handful of round trips as one case.
    /// Answers the cases as they now are, in order.
    ///
    /// The statements that match a batch against `cases` or `assignments` are planned at
    /// each execution (`persistent(false)`): a connection's cached plan, made while the
    /// tables were still small, scans them whole for as long as the connection lives.
    pub async fn append_many(
        &mut self,
        items: &[Append<'_>],
        actor: &Actor,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<CaseRecord>> {
        let mut ev = EventRows::default();
        let mut recs = Vec::with_capacity(items.len());
        for it in items {
            if it.after.version != it.before.state.version + it.events.len() as u64 {
                return Err(corrupt("append", "state version does not match the events"));
            }
            for (i, e) in it.events.iter().enumerate() {
                ev.push(it.before, it.before.state.version + i as u64 + 1, e);
            }
            let mut rec = it.before.clone();
            rec.state = it.after.clone();
            rec.updated_at = now;
            recs.push(rec);
        }
        if recs.is_empty() {
            return Ok(recs);
        }
        ev.insert(&mut self.tx, actor, now).await?;
        self.update_cases(items, &recs, now).await?;
        self.sync_assignments(&recs, now).await?;
        let arms: Vec<(Uuid, &Arm)> = items
            .iter()
            .flat_map(|it| it.arms.iter().map(|a| (it.before.case_id, a)))
            .collect();
        if !arms.is_empty() {
            sqlx::query(
                "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at)
                 SELECT c, u, k, w, f, d, $7
                   FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bool[],
                               $5::timestamptz[], $6::timestamptz[]) AS x(c, u, k, w, f, d)",
            )
            .bind(arms.iter().map(|(c, _)| *c).collect::<Vec<_>>())
            .bind(arms.iter().map(|(_, a)| a.unit.as_str()).collect::<Vec<_>>())
            .bind(arms.iter().map(|(_, a)| clock_name(a.clock)).collect::<Vec<_>>())
            .bind(arms.iter().map(|(_, a)| a.warn).collect::<Vec<_>>())
            .bind(arms.iter().map(|(_, a)| a.fire_at).collect::<Vec<_>>())
            .bind(arms.iter().map(|(_, a)| a.clock_due_at).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        let outbox: Vec<&Message> = items.iter().flat_map(|it| it.outbox).collect();
        if !outbox.is_empty() {
            let (streams, payloads) = outbox_rows(outbox.into_iter());
            // ids follow the order given: the relay publishes each stream in id order
            sqlx::query(
                "INSERT INTO outbox (stream, payload)
                 SELECT s, p FROM UNNEST($1::text[], $2::jsonb[]) WITH ORDINALITY AS x(s, p, n)
                  ORDER BY n",
            )
            .bind(&streams)
            .bind(&payloads)
            .execute(&mut *self.tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO audit_log (principal, role, action, target, result)
             SELECT $1, $2, $3, t, 'ok' FROM UNNEST($4::text[]) WITH ORDINALITY AS x(t, n) ORDER BY n",
        )
        .bind(&actor.subject)
        .bind(&actor.role)
        .bind(action)
        .bind(recs.iter().map(|r| r.case_id.to_string()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(recs)
    }

    /// Writes each case's new projection, guarded by the version it had when locked.
    async fn update_cases(
        &mut self,
        items: &[Append<'_>],
        recs: &[CaseRecord],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let rows: Vec<serde_json::Value> = items
            .iter()
            .zip(recs)
            .map(|(it, r)| {
                let s = &r.state;
                serde_json::json!({
                    "case_id": r.case_id, "old_version": it.before.state.version,
                    "status": s.status.as_str(), "tier": s.tier.as_str(),
                    "holder_unit": s.holder.as_ref().map(ToString::to_string),
                    "lead_unit": s.lead.as_ref().map(ToString::to_string),
                    "assisting_units": s.assisting_units().iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "accept_due_at": s.accept_due_at, "handle_due_at": s.handle_due_at,
                    "overdue": s.overdue,
                    "rework_count": i32::try_from(s.rework_count).unwrap_or(i32::MAX),
                    "rating": s.rating.map(i16::from), "version": s.version, "state": s,
                })
            })
            .collect();
        let updated = sqlx::query(
            "UPDATE cases c SET status = n.status, tier = n.tier, holder_unit = n.holder_unit,
                lead_unit = n.lead_unit, assisting_units = n.assisting_units,
                accept_due_at = n.accept_due_at, handle_due_at = n.handle_due_at,
                overdue = n.overdue, rework_count = n.rework_count, rating = n.rating,
                version = n.version, state = n.state, updated_at = $2
               FROM jsonb_to_recordset($1) AS n(case_id uuid, old_version bigint, status text,
                    tier text, holder_unit text, lead_unit text, assisting_units text[],
                    accept_due_at timestamptz, handle_due_at timestamptz, overdue boolean,
                    rework_count integer, rating smallint, version bigint, state jsonb)
              WHERE c.case_id = n.case_id AND c.version = n.old_version",
        )
        .persistent(false)
        .bind(serde_json::Value::Array(rows))
        .bind(now)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if updated != recs.len() as u64 {
            return Err(StoreError::Invalid {
                field: "case".into(),
                reason: "the case changed underneath this transaction".into(),
            });
        }
        Ok(())
    }

    /// Makes the `assignments` rows match each case's state: ends what is no longer open,
    /// updates what still is, and opens a new row for each new holding.
    async fn sync_assignments(&mut self, recs: &[CaseRecord], now: DateTime<Utc>) -> Result<()> {
        let open: Vec<(Uuid, Uuid, String, String, String)> = sqlx::query_as(
            "SELECT assignment_id, case_id, unit_code, role, status FROM assignments
              WHERE case_id = ANY($1) AND ended_at IS NULL",
        )
        .persistent(false)
        .bind(recs.iter().map(|r| r.case_id).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        let mut ended = AssignmentEnds::default();
        let mut kept = AssignmentKeeps::default();
        let mut opened = AssignmentOpens::default();
        for rec in recs {
            let desired = open_assignments(&rec.state);
            let version = version_i64(rec.state.version);
            let mine =
                open.iter()
                    .filter(|o| o.1 == rec.case_id)
                    .map(|(id, _, unit, role, status)| OpenRow {
                        id: *id,
                        unit,
                        role,
                        status,
                    });
            for change in assignment_changes(mine, &desired) {
                match change {
                    AssignmentChange::End { id, status } => {
                        ended.id.push(id);
                        ended.status.push(status);
                        ended.version.push(version);
                    }
                    AssignmentChange::Keep { id, to } => {
                        kept.id.push(id);
                        kept.status.push(to.status.as_str());
                        kept.accept_due_at.push(to.accept_due_at);
                        kept.handle_due_at.push(to.handle_due_at);
                        kept.overdue.push(to.overdue);
                        kept.version.push(version);
                    }
                    AssignmentChange::Open(d) => {
                        opened.id.push(Uuid::now_v7());
                        opened.case_id.push(rec.case_id);
                        opened.unit.push(d.unit.to_string());
                        opened.tier.push(d.unit.tier().map_or("", |t| t.as_str()));
                        opened.role.push(d.role.as_str());
                        opened.status.push(d.status.as_str());
                        opened.accept_due_at.push(d.accept_due_at);
                        opened.handle_due_at.push(d.handle_due_at);
                        opened.overdue.push(d.overdue);
                        opened.version.push(version);
                    }
                }
            }
        }
        if !ended.id.is_empty() {
            sqlx::query(
                "UPDATE assignments a SET status = u.status, ended_at = $4, case_version = u.version
                   FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) AS u(id, status, version)
                  WHERE a.assignment_id = u.id",
            )
            .persistent(false)
            .bind(&ended.id)
            .bind(&ended.status)
            .bind(&ended.version)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        if !kept.id.is_empty() {
            sqlx::query(
                "UPDATE assignments a SET status = u.status, accept_due_at = u.accept_due_at,
                    handle_due_at = u.handle_due_at, overdue = u.overdue, case_version = u.version,
                    accepted_at = CASE WHEN u.status <> 'PENDING_ACCEPT' THEN COALESCE(a.accepted_at, $7) END,
                    submitted_at = CASE WHEN u.status = 'SUBMITTED' THEN COALESCE(a.submitted_at, $7) END
                   FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                               $5::bool[], $6::int8[])
                        AS u(id, status, accept_due_at, handle_due_at, overdue, version)
                  WHERE a.assignment_id = u.id",
            )
            .persistent(false)
            .bind(&kept.id)
            .bind(&kept.status)
            .bind(&kept.accept_due_at)
            .bind(&kept.handle_due_at)
            .bind(&kept.overdue)
            .bind(&kept.version)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        if !opened.id.is_empty() {
            sqlx::query(
                "INSERT INTO assignments (assignment_id, case_id, unit_code, tier, role, status,
                    accept_due_at, handle_due_at, created_at, overdue, case_version, accepted_at)
                 SELECT id, c, unit, tier, role, status, a_due, h_due, $11, overdue, version,
                        CASE WHEN status <> 'PENDING_ACCEPT' THEN $11 END
                   FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                               $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bool[],
                               $10::int8[])
                        AS u(id, c, unit, tier, role, status, a_due, h_due, overdue, version)",
            )
            .bind(&opened.id)
            .bind(&opened.case_id)
            .bind(&opened.unit)
            .bind(&opened.tier)
            .bind(&opened.role)
            .bind(&opened.status)
            .bind(&opened.accept_due_at)
            .bind(&opened.handle_due_at)
            .bind(&opened.overdue)
            .bind(&opened.version)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// [`CaseTx::sync_assignments`] for one case, in single-row statements.
    async fn sync_one(&mut self, rec: &CaseRecord, now: DateTime<Utc>) -> Result<()> {
        let open: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT assignment_id, unit_code, role, status FROM assignments
              WHERE case_id = $1 AND ended_at IS NULL",
        )
        .bind(rec.case_id)
        .fetch_all(&mut *self.tx)
        .await?;
        let desired = open_assignments(&rec.state);
        let version = version_i64(rec.state.version);
        let rows = open.iter().map(|(id, unit, role, status)| OpenRow {
            id: *id,
            unit,
            role,
            status,
        });
        for change in assignment_changes(rows, &desired) {
            match change {
                AssignmentChange::End { id, status } => {
                    sqlx::query(
                        "UPDATE assignments SET status = $2, ended_at = $3, case_version = $4
                          WHERE assignment_id = $1",
                    )
                    .bind(id)
                    .bind(status)
                    .bind(now)
                    .bind(version)
                    .execute(&mut *self.tx)
                    .await?;
                }
                AssignmentChange::Keep { id, to } => {
                    sqlx::query(
                        "UPDATE assignments SET status = $2, accept_due_at = $3, handle_due_at = $4,
                            overdue = $5, case_version = $6,
                            accepted_at = CASE WHEN $2 <> 'PENDING_ACCEPT' THEN COALESCE(accepted_at, $7) END,
                            submitted_at = CASE WHEN $2 = 'SUBMITTED' THEN COALESCE(submitted_at, $7) END
                          WHERE assignment_id = $1",
                    )
                    .bind(id)
                    .bind(to.status.as_str())
                    .bind(to.accept_due_at)
                    .bind(to.handle_due_at)
                    .bind(to.overdue)
                    .bind(version)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await?;
                }
                AssignmentChange::Open(d) => {
                    sqlx::query(
                        "INSERT INTO assignments (assignment_id, case_id, unit_code, tier, role,
                            status, accept_due_at, handle_due_at, created_at, overdue,
                            case_version, accepted_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                                 CASE WHEN $6 <> 'PENDING_ACCEPT' THEN $9 END)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(rec.case_id)
                    .bind(d.unit.as_str())
                    .bind(d.unit.tier().map_or("", |t| t.as_str()))
                    .bind(d.role.as_str())
                    .bind(d.status.as_str())
                    .bind(d.accept_due_at)
                    .bind(d.handle_due_at)
                    .bind(now)
                    .bind(d.overdue)
                    .bind(version)
                    .execute(&mut *self.tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Claims up to `limit` due deadlines that no other transaction holds.
    pub async fn claim_due(&mut self, now: DateTime<Utc>, limit: i64) -> Result<Vec<DueDeadline>> {
        let rows: Vec<DeadlineTuple> = sqlx::query_as(
            "SELECT id, case_id, unit_code, clock, warn, fire_at, clock_due_at FROM deadlines
                  WHERE fired_at IS NULL AND fire_at <= $1
                  ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for (id, case_id, unit, clock, warn, fire_at, clock_due_at) in rows {
            let Ok(unit) = UnitCode::parse(&unit) else {
                // a row nobody can act on must not stall every deadline behind it
                tracing::warn!(id, "deadline names no valid unit; retired");
                self.mark_fired(id, "corrupt", Utc::now()).await?;
                continue;
            };
            due.push(DueDeadline {
                id,
                case_id,
                unit,
                clock: if clock == "accept" {
                    Clock::Accept
                } else {
                    Clock::Handle
                },
                warn,
                fire_at,
                clock_due_at,
            });
        }
        Ok(due)
    }

    pub async fn mark_fired(&mut self, id: i64, outcome: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE deadlines SET fired_at = $2, outcome = $3 WHERE id = $1")
            .bind(id)
            .bind(now)
            .bind(outcome)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// The earliest unfired deadline, for the timer's sleep.
    pub async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(
            sqlx::query_scalar("SELECT min(fire_at) FROM deadlines WHERE fired_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// The outbox columns of messages: each one's stream name and payload.
fn outbox_rows<'m>(
    messages: impl Iterator<Item = &'m Message>,
) -> (Vec<String>, Vec<serde_json::Value>) {
    messages
        .map(|m| {
            // every message's stream is one the relay publishes to
            (m.stream().outbox_name().unwrap_or_default(), m.to_json())
        })
        .unzip()
}

/// An outbox row claimed for publishing: its message, or why it is not one.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub message: std::result::Result<Message, String>,
}

impl CaseTx {
    /// Claims the oldest unpublished outbox rows that no other relay holds.
    pub async fn claim_outbox(&mut self, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
            "SELECT id, stream, payload FROM outbox WHERE published_at IS NULL
              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, stream, payload)| OutboxRow {
                id,
                message: Message::from_outbox(&stream, &payload),
            })
            .collect())
    }

    pub async fn mark_published(&mut self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET published_at = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

/// A unit's pending item, for the start of a console's queue.
#[derive(Debug, Clone)]
pub struct PendingItem {
    pub case_id: Uuid,
    pub assignment_id: Uuid,
    pub accept_due_at: Option<DateTime<Utc>>,
}

/// A pending-accept assignment anywhere, for rebuilding inboxes.
#[derive(Debug, Clone)]
pub struct PendingAnywhere {
    pub case_id: Uuid,
    pub unit: UnitCode,
    pub version: u64,
}

impl PendingAnywhere {
    /// The inbox item the assignment stands for.
    #[must_use]
    pub fn message(&self) -> Message {
        Message::Inbox(queue::InboxMsg {
            kind: domain::effects::ItemKind::ToAccept,
            case_id: self.case_id,
            version: self.version,
            unit: self.unit.clone(),
        })
    }
}

/// A case still waiting for the router.
#[derive(Debug, Clone)]
pub struct Unrouted {
    pub case_id: Uuid,
    pub county: domain::region::RegionCode,
    pub version: u64,
}

impl Unrouted {
    /// The intake entry that sends the case to its county's router.
    #[must_use]
    pub fn message(&self) -> Message {
        Message::Intake(queue::IntakeMsg {
            case_id: self.case_id,
            version: self.version,
            county: self.county.clone(),
            trace: std::collections::BTreeMap::new(),
        })
    }

    fn from_row((case_id, county, version): (Uuid, String, i64)) -> Result<Unrouted> {
        Ok(Unrouted {
            case_id,
            county: domain::region::RegionCode::parse(&county)
                .map_err(|e| corrupt("county code", e))?,
            version: u64::try_from(version).map_err(|e| corrupt("case version", e))?,
        })
    }
}

impl Store {
    /// Drops published outbox rows older than `age`; the relay's housekeeping.
    pub async fn prune_outbox(&self, older_than: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM outbox WHERE published_at < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn pending_for_unit(&self, unit: &str) -> Result<Vec<PendingItem>> {
        let rows: Vec<(Uuid, Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT case_id, assignment_id, accept_due_at FROM assignments
              WHERE unit_code = $1 AND status = 'PENDING_ACCEPT' AND ended_at IS NULL
              ORDER BY accept_due_at NULLS LAST, created_at",
        )
        .bind(unit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(case_id, assignment_id, accept_due_at)| PendingItem {
                case_id,
                assignment_id,
                accept_due_at,
            })
            .collect())
    }

    /// Every pending-accept assignment, after `after` (keyset on assignment id), for rebuilds.
    pub async fn pending_everywhere(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, PendingAnywhere)>> {
        let rows: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(
            "SELECT a.assignment_id, a.case_id, a.unit_code, c.version
               FROM assignments a JOIN cases c USING (case_id)
              WHERE a.status = 'PENDING_ACCEPT' AND a.ended_at IS NULL
                AND ($1::uuid IS NULL OR a.assignment_id > $1)
              ORDER BY a.assignment_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(aid, case_id, unit, version)| {
                Ok((
                    aid,
                    PendingAnywhere {
                        case_id,
                        unit: UnitCode::parse(&unit).map_err(|e| corrupt("unit code", e))?,
                        version: u64::try_from(version).map_err(|e| corrupt("case version", e))?,
                    },
                ))
            })
            .collect()
    }

    /// Cases still waiting for the router, after `after`, for rebuilding intake queues.
    pub async fn reported_cases(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Unrouted>> {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT case_id, county_code, version FROM cases
              WHERE status = 'REPORTED' AND ($1::uuid IS NULL OR case_id > $1)
              ORDER BY case_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Unrouted::from_row).collect()
    }

    /// Cases still REPORTED that were filed before `before` (oldest first).
    pub async fn reported_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Unrouted>> {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT case_id, county_code, version FROM cases
              WHERE status = 'REPORTED' AND reported_at < $1
              ORDER BY reported_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Unrouted::from_row).collect()
    }

    /// Every unit code, for the in-memory registry.
    pub async fn unit_codes(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT code FROM units")
            .fetch_all(&self.pool)
            .await?)
    }

    /// County codes with a policy: the intake queues the router reads.
    pub async fn counties(&self) -> Result<Vec<domain::region::RegionCode>> {
        let codes: Vec<String> =
            sqlx::query_scalar("SELECT county_code FROM policies ORDER BY county_code")
                .fetch_all(&self.pool)
                .await?;
        codes
            .iter()
            .map(|c| domain::region::RegionCode::parse(c).map_err(|e| corrupt("county code", e)))
            .collect()
    }

    /// The assignments of a case, oldest first.
    pub async fn case_assignments(&self, case_id: Uuid) -> Result<Vec<AssignmentRow>> {
        Ok(sqlx::query_as(
            "SELECT assignment_id, case_id, unit_code, tier, role, status, accept_due_at,
                    handle_due_at, created_at, accepted_at, submitted_at, overdue, note
               FROM assignments WHERE case_id = $1 ORDER BY created_at, assignment_id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// An assignment as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    pub assignment_id: Uuid,
    pub case_id: Uuid,
    pub unit_code: String,
    pub tier: String,
    pub role: String,
    pub status: String,
    pub accept_due_at: Option<DateTime<Utc>>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::effects::Role;

    fn wanted(unit: &str, role: Role, status: AssignmentStatus) -> OpenAssignment {
        OpenAssignment {
            unit: UnitCode::parse(unit).unwrap(),
            role,
            status,
            accept_due_at: None,
            handle_due_at: None,
            overdue: false,
        }
    }

    fn row<'r>(id: Uuid, unit: &'r str, role: Role, status: &'r str) -> OpenRow<'r> {
        OpenRow {
            id,
            unit,
            role: role.as_str(),
            status,
        }
    }

    #[test]
    fn rows_keep_end_and_open_by_unit_and_role() {
        let (held, helped, left) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let lead = wanted("360102-CGJ", Role::Lead, AssignmentStatus::Accepted);
        let assist = wanted(
            "360102-SWJ",
            Role::Assisting,
            AssignmentStatus::PendingAccept,
        );
        let desired = [lead.clone(), assist.clone()];
        let rows = [
            // the holder's row becomes the lead's: same unit, other role, so it ends
            row(held, "360102-CGJ", Role::Holder, "ACCEPTED"),
            row(helped, "360102-SWJ", Role::Assisting, "PENDING_ACCEPT"),
            row(left, "360102-ZJJ", Role::Assisting, "SUBMITTED"),
        ];
        let changes = assignment_changes(rows.into_iter(), &desired);
        assert_eq!(
            changes,
            vec![
                AssignmentChange::End {
                    id: held,
                    status: "ENDED"
                },
                AssignmentChange::Keep {
                    id: helped,
                    to: &assist
                },
                AssignmentChange::End {
                    id: left,
                    status: "SUBMITTED"
                },
                AssignmentChange::Open(&lead),
            ]
        );
    }

    #[test]
    fn nothing_wanted_and_nothing_open_changes_nothing() {
        assert!(assignment_changes(std::iter::empty(), &[]).is_empty());
    }
}
