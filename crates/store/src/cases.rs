//! Cases: reporting (one transaction: key, case, first event, outbox), reading, listing.

use chrono::{DateTime, FixedOffset, Utc};
use domain::Severity;
use domain::case::{CaseState, Event};
use domain::record::{CaseRecord, EventRecord, case_number};
use domain::report::NewReport;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::rows::{CASE_COLUMNS, CaseRow, EventRow, corrupt};
use crate::{Result, Store, StoreError};

/// Who did something, for the event log and the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The principal's subject (`sub`), or `system` for timers and workers.
    pub subject: String,
    pub role: String,
}

impl Actor {
    #[must_use]
    pub fn system() -> Actor {
        Actor {
            subject: "system".into(),
            role: "system".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub case: CaseRecord,
    /// The key was seen before with the same report: this is the earlier case.
    pub replayed: bool,
}

/// The outbox name of a county's intake queue (the router's input); the relay maps it to
/// the Redis key.
#[must_use]
pub fn intake_stream(county: &str) -> String {
    format!("intake/{county}")
}

/// The outbox name of a unit's inbox.
#[must_use]
pub fn inbox_stream(county: &str, unit: &str) -> String {
    format!("inbox/{county}/{unit}")
}

/// Case numbers count days in China Standard Time, the day a console shows.
const CST_SECONDS: i32 = 8 * 3600;

impl Store {
    /// Files a report: the idempotency key, the case, its first event, an outbox row for the
    /// router and an audit record, all in one transaction. A repeat of a key with the same
    /// report answers the first case; with a different report, [`StoreError::KeyReused`].
    pub async fn report(
        &self,
        report: &NewReport,
        severity: Severity,
        actor: &Actor,
        now: DateTime<Utc>,
        trace: std::collections::BTreeMap<String, String>,
    ) -> Result<ReportOutcome> {
        let fingerprint = report.fingerprint();
        let case_id = Uuid::now_v7();
        let county = report
            .grid
            .county()
            .ok_or_else(|| corrupt("grid", "a grid lies in a county"))?;
        self.ensure_case_seq(county.as_str()).await?;
        let mut tx = self.pool.begin().await?;
        // The key row goes first: a concurrent retry of the same key waits here for this
        // transaction and then sees its outcome, so one key makes one case.
        let inserted: Option<(Uuid,)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (key, fingerprint, case_id) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING RETURNING case_id",
        )
        .bind(report.idempotency_key)
        .bind(&fingerprint)
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return self.replay(report.idempotency_key, &fingerprint).await;
        }

        let day = now
            .with_timezone(&FixedOffset::east_opt(CST_SECONDS).expect("valid offset"))
            .date_naive();
        let event = Event::Reported {
            grid: report.grid.clone().into(),
            self_handled: report.self_handled,
        };
        let state = CaseState::start(&event, now).map_err(|e| StoreError::Invalid {
            field: "grid_code".into(),
            reason: e.to_string(),
        })?;
        let mut record = CaseRecord {
            case_id,
            // numbered last, see below
            case_number: String::new(),
            county: county.clone(),
            grid: report.grid.clone(),
            category: report.category.clone(),
            severity,
            title: report.title.clone(),
            description: report.description.clone(),
            location: report.location,
            reported_crs: report.reported_crs,
            attachments: report.attachments.clone(),
            occurred_at: report.occurred_at,
            reported_at: now,
            reported_by: actor.subject.clone(),
            state,
            updated_at: now,
            trace,
        };
        insert_event(&mut tx, &record, &event, actor, now).await?;
        if !report.self_handled {
            sqlx::query("INSERT INTO outbox (stream, payload) VALUES ($1, $2)")
                .bind(intake_stream(county.as_str()))
                .bind(serde_json::json!({
                    "case_id": case_id,
                    "version": record.state.version,
                    "county": county.as_str(),
                    "trace": record.trace,
                }))
                .execute(&mut *tx)
                .await?;
        }
        audit(&mut tx, actor, "report", &case_id.to_string(), "ok").await?;
        let seq = next_case_seq(&mut tx, county.as_str()).await?;
        record.case_number = case_number(&county, day, seq);
        insert_case(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(ReportOutcome {
            case: record,
            replayed: false,
        })
    }

    async fn replay(&self, key: Uuid, fingerprint: &[u8]) -> Result<ReportOutcome> {
        let (stored, case_id): (Vec<u8>, Uuid) =
            sqlx::query_as("SELECT fingerprint, case_id FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
        if stored != fingerprint {
            return Err(StoreError::KeyReused);
        }
        let case = self
            .get_case(case_id)
            .await?
            .ok_or_else(|| corrupt("idempotency_keys", "key without its case"))?;
        Ok(ReportOutcome {
            case,
            replayed: true,
        })
    }

    pub async fn get_case(&self, case_id: Uuid) -> Result<Option<CaseRecord>> {
        let row: Option<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"
        ))
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CaseRecord::try_from).transpose()
    }

    /// A reporter's own cases, newest first, after the keyset `(reported_at, case_id)`.
    pub async fn list_reports_by(
        &self,
        reporter: &str,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<CaseRecord>> {
        let (at, id) = after.unzip();
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases
              WHERE reported_by = $1
                AND ($2::timestamptz IS NULL OR (reported_at, case_id) < ($2, $3))
              ORDER BY reported_at DESC, case_id DESC LIMIT $4"
        ))
        .bind(reporter)
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// Every event of a case, in version order.
    pub async fn case_events(&self, case_id: Uuid) -> Result<Vec<EventRecord>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT case_id, version, event_type, data, actor, actor_unit, recorded_at
               FROM case_events WHERE case_id = $1 ORDER BY version",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }
}

/// The next number of a county's case sequence (created beforehand by
/// [`Store::ensure_case_seq`]). A sequence never makes concurrent reports wait on each other;
/// a counter row did: every report of a county queued on its lock until commit.
async fn next_case_seq(tx: &mut Transaction<'_, Postgres>, county: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT nextval($1::regclass)")
        .bind(format!("case_seq_{county}"))
        .fetch_one(&mut **tx)
        .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

impl Store {
    /// Creates a county's case sequence the first time this process sees the county.
    async fn ensure_case_seq(&self, county: &str) -> Result<()> {
        // the name is built from a validated 6-digit county code only
        if county.len() != 6 || !county.bytes().all(|b| b.is_ascii_digit()) {
            return Err(corrupt("county", "not a county code"));
        }
        if self
            .known_seqs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(county)
        {
            return Ok(());
        }
        let created = sqlx::query(&format!(
            "CREATE SEQUENCE IF NOT EXISTS case_seq_{county} AS bigint"
        ))
        .execute(&self.pool)
        .await;
        if let Err(e) = created {
            // two processes creating it at once: one of them loses a catalog race; what
            // matters is that it exists now
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(format!("case_seq_{county}"))
                .fetch_one(&self.pool)
                .await?;
            if !exists {
                return Err(e.into());
            }
        }
        self.known_seqs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(county.to_owned());
        Ok(())
    }
}

fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn insert_case(tx: &mut Transaction<'_, Postgres>, r: &CaseRecord) -> Result<()> {
    let s = &r.state;
    sqlx::query(
        "INSERT INTO cases (case_id, case_number, county_code, grid_code, category, severity,
            title, description, lat, lon, reported_crs, attachments, occurred_at, reported_at,
            reported_by, self_handled, status, tier, holder_unit, lead_unit, assisting_units,
            accept_due_at, handle_due_at, overdue, rework_count, rating, version, state, updated_at,
            trace)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,
                 $22,$23,$24,$25,$26,$27,$28,$29,$30)",
    )
    .bind(r.case_id)
    .bind(&r.case_number)
    .bind(r.county.as_str())
    .bind(r.grid.as_str())
    .bind(r.category.as_str())
    .bind(r.severity.as_str())
    .bind(&r.title)
    .bind(&r.description)
    .bind(r.location.lat)
    .bind(r.location.lon)
    .bind(crs_name(r))
    .bind(serde_json::to_value(&r.attachments).expect("attachments serialise"))
    .bind(r.occurred_at)
    .bind(r.reported_at)
    .bind(&r.reported_by)
    .bind(s.self_handled)
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
    .bind(version_i64(s.version))
    .bind(serde_json::to_value(s).expect("state serialises"))
    .bind(r.updated_at)
    .bind(serde_json::to_value(&r.trace).expect("trace serialises"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn crs_name(r: &CaseRecord) -> String {
    match serde_json::to_value(r.reported_crs) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    r: &CaseRecord,
    event: &Event,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_events (case_id, version, event_type, data, actor, actor_unit,
            county_code, category, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.case_id)
    .bind(version_i64(r.state.version))
    .bind(event.kind())
    .bind(serde_json::to_value(event).expect("events serialise"))
    .bind(&actor.subject)
    .bind(event.actor_unit().map(ToString::to_string))
    .bind(r.county.as_str())
    .bind(r.category.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn audit(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    action: &str,
    target: &str,
    result: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (principal, role, action, target, result) VALUES ($1,$2,$3,$4,$5)",
    )
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(action)
    .bind(target)
    .bind(result)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
