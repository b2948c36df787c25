//! Console lists: cases filtered by region, status, tier, category, severity, overdue, unit
//! and reporting time, newest first, paged by keyset (ADR 0019).

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use domain::{CaseStatus, Severity, Tier};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{CASE_COLUMNS, CaseRow};
use crate::scope::push_region;
use crate::{Result, Store};

/// What a console asks for; every filter is optional and they all combine.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub region: Option<RegionCode>,
    pub statuses: Vec<CaseStatus>,
    pub tier: Option<Tier>,
    /// A category code; a first-level code takes in its second-level ones.
    pub category: Option<String>,
    pub severity: Option<Severity>,
    pub overdue: bool,
    /// Cases the unit holds, leads or assists in.
    pub unit: Option<UnitCode>,
    pub reported_after: Option<DateTime<Utc>>,
    pub reported_before: Option<DateTime<Utc>>,
    pub source: Option<domain::source::SourceKind>,
}

/// Where a page starts: after this case in the list's order (newest first, then by id).
pub type PageKey = (DateTime<Utc>, CaseId);

impl Store {
    /// Up to `limit` cases matching `f` that come after `after`, newest first. The order
    /// is on the case's report time and id, which never change, so a page never repeats or
    /// skips a case while others are added or changed.
    pub async fn list_cases(
        &self,
        f: &CaseFilter,
        after: Option<PageKey>,
        limit: u32,
    ) -> Result<Vec<CaseRecord>> {
        let mut q = list_query("", f, after, limit);
        let rows: Vec<CaseRow> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(CaseRecord::try_from).collect()
    }

    /// The plan and timing of a first page of [`Store::list_cases`], as `EXPLAIN ANALYZE`
    /// prints them: for operators and the console benchmark.
    pub async fn explain_list_cases(&self, f: &CaseFilter, limit: u32) -> Result<Vec<String>> {
        let mut q = list_query("EXPLAIN (ANALYZE, BUFFERS) ", f, None, limit);
        Ok(q.build_query_scalar::<String>()
            .persistent(false)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// The list query; `prefix` goes before it (an EXPLAIN).
fn list_query<'a>(
    prefix: &str,
    f: &'a CaseFilter,
    after: Option<PageKey>,
    limit: u32,
) -> QueryBuilder<'a, Postgres> {
    {
        let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
            "{prefix}SELECT {CASE_COLUMNS} FROM cases WHERE true"
        ));
        if let Some(r) = &f.region {
            push_region(&mut q, r, "county_code", "grid_code");
        }
        if !f.statuses.is_empty() {
            let s: Vec<&str> = f.statuses.iter().map(|s| s.as_str()).collect();
            // the open-case index is partial on exactly this list: say it in the same words
            if is_open_set(&f.statuses) {
                q.push(
                    " AND status IN ('REPORTED', 'PENDING_ACCEPT', 'IN_PROGRESS', 'PENDING_VERIFICATION')",
                );
            } else {
                q.push(" AND status = ANY(").push_bind(s).push(")");
            }
        }
        if let Some(t) = f.tier {
            q.push(" AND tier = ").push_bind(t.as_str());
        }
        if let Some(c) = &f.category {
            q.push(" AND left(category, ")
                .push_bind(i32::try_from(c.len()).unwrap_or(i32::MAX))
                .push(") = ")
                .push_bind(c.clone());
        }
        if let Some(s) = f.severity {
            q.push(" AND severity = ").push_bind(s.as_str());
        }
        if f.overdue {
            q.push(" AND overdue");
        }
        if let Some(u) = &f.unit {
            let u = u.to_string();
            q.push(" AND (holder_unit = ")
                .push_bind(u.clone())
                .push(" OR lead_unit = ")
                .push_bind(u.clone())
                .push(" OR assisting_units @> ARRAY[")
                .push_bind(u)
                .push("]::text[])");
        }
        if let Some(t) = f.reported_after {
            q.push(" AND reported_at >= ").push_bind(t);
        }
        if let Some(t) = f.reported_before {
            q.push(" AND reported_at < ").push_bind(t);
        }
        if let Some(s) = f.source {
            q.push(" AND source = ").push_bind(s.as_str());
        }
        if let Some((at, id)) = after {
            q.push(" AND (reported_at, case_id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id.uuid())
                .push(")");
        }
        q.push(" ORDER BY reported_at DESC, case_id DESC LIMIT ")
            .push_bind(i64::from(limit));
        q
    }
}

/// Whether `statuses` is exactly the open ones (in any order).
fn is_open_set(statuses: &[CaseStatus]) -> bool {
    let open = [
        CaseStatus::Reported,
        CaseStatus::PendingAccept,
        CaseStatus::InProgress,
        CaseStatus::PendingVerification,
    ];
    statuses.len() == open.len() && open.iter().all(|s| statuses.contains(s))
}
