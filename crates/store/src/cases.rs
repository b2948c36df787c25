//! Cases: reporting (one transaction: key, case, first event, outbox), reading, listing.

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::record::{CaseRecord, EventRecord};
use uuid::Uuid;

use crate::rows::{CASE_COLUMNS, CaseRow, EventRow, corrupt};
use crate::{Result, Store};

/// Who did something, for the event log and the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The principal's subject (`sub`), or `system` for timers and workers.
    pub subject: String,
    pub role: String,
    /// The unit the principal acted for, when its token names one.
    pub unit: Option<String>,
}

impl Actor {
    #[must_use]
    pub fn system() -> Actor {
        Actor {
            subject: "system".into(),
            role: "system".into(),
            unit: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub case: CaseRecord,
    /// The key was seen before with the same report: this is the earlier case.
    pub replayed: bool,
}

impl Store {
    /// The stored fingerprint and case of each of `keys` that exists.
    pub(crate) async fn replay_many(
        &self,
        keys: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, (Vec<u8>, CaseRecord)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            key: Uuid,
            fingerprint: Vec<u8>,
            #[sqlx(flatten)]
            case: CaseRow,
        }
        if keys.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT k.key, k.fingerprint, c.* FROM idempotency_keys k
               JOIN cases c ON c.case_id = k.case_id
              WHERE k.key = ANY($1)",
        )
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.key, (r.fingerprint, CaseRecord::try_from(r.case)?))))
            .collect()
    }

    /// The cases of `ids` that exist, by id: one query for a console's whole queue.
    pub async fn get_cases(
        &self,
        ids: &[CaseId],
    ) -> Result<std::collections::HashMap<CaseId, CaseRecord>> {
        if ids.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let rows: Vec<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = ANY($1)"
        ))
        .bind(CaseId::uuids(ids))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| CaseRecord::try_from(r).map(|c| (c.case_id, c)))
            .collect()
    }

    pub async fn get_case(&self, case_id: CaseId) -> Result<Option<CaseRecord>> {
        let row: Option<CaseRow> = sqlx::query_as(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"
        ))
        .bind(case_id.uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(CaseRecord::try_from).transpose()
    }

    /// A reporter's own cases, newest first, after the keyset `(reported_at, case_id)`.
    pub async fn list_reports_by(
        &self,
        reporter: &str,
        after: Option<(DateTime<Utc>, CaseId)>,
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
        .bind(id.map(CaseId::uuid))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// Every event of a case, in version order.
    pub async fn case_events(&self, case_id: CaseId) -> Result<Vec<EventRecord>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT case_id, version, event_type, data, actor, actor_unit, recorded_at
               FROM case_events WHERE case_id = $1 ORDER BY version",
        )
        .bind(case_id.uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRecord::try_from).collect()
    }
}

impl Store {
    /// Creates a county's case sequence the first time this process sees the county.
    pub(crate) async fn ensure_case_seq(&self, county: &str) -> Result<()> {
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

pub(crate) fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Records that `actor` did `action` to each of `targets`, one audit row each, in one
    /// statement: for the workers' own repairs, which change no case and so leave no event.
    pub async fn audit_many(&self, actor: &Actor, action: &str, targets: &[String]) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let mut rows = crate::writer::columns::AuditColumns::default();
        for t in targets {
            rows.push(actor, action, t.clone());
        }
        let mut conn = self.pool.acquire().await?;
        rows.insert(&mut conn, chrono::Utc::now()).await
    }
}
