//! GetStats' reads: the cases of a region that can count in a period, and their event logs up
//! to the end of the period. The indicators are folded from these in the domain
//! (`domain::indicators`); this module only finds and loads.
//!
//! A case can count when it has an event in the period ([`Store::stats_period_cases`]), or
//! when it may be overdue and not closed at the end of it ([`Store::stats_carried_cases`]):
//! an overdue case counts in 應結案數 however long ago it fell overdue. Both read
//! `case_events (county_code, recorded_at)`, so they take the region's counties
//! ([`StatsScope`]); a region below county level is narrowed to its grids when the logs are
//! loaded ([`Store::stats_logs`]), in chunks, so that a large region never holds every event
//! in memory at once. Each read is one plain statement: the server runs them concurrently.

use chrono::{DateTime, Utc};
use domain::case::Event;
use domain::region::{Level, RegionCode, UnitCode};
use domain::{CaseId, CaseStatus};
use uuid::Uuid;

use crate::rows::corrupt;
use crate::{Result, Store};

/// Where a region's cases are: its counties, and for a region below county level the grid
/// code prefix that narrows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsScope {
    counties: Vec<String>,
    grid_prefix: Option<String>,
    /// Only cases from this source (`cases.source`).
    source: Option<&'static str>,
}

impl StatsScope {
    /// The counties holding the region's cases (those with any event, for a region above
    /// county level).
    #[must_use]
    pub fn counties(&self) -> Vec<RegionCode> {
        self.counties
            .iter()
            .filter_map(|c| RegionCode::parse(c).ok())
            .collect()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counties.is_empty()
    }

    /// The same scope, counting only cases from `source`.
    #[must_use]
    pub fn from_source(mut self, source: Option<domain::source::SourceKind>) -> StatsScope {
        self.source = source.map(domain::source::SourceKind::as_str);
        self
    }
}

/// A case and its events recorded before the end of the period, in version order.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsCase {
    pub case_id: CaseId,
    pub grid: UnitCode,
    pub county: RegionCode,
    pub events: Vec<(DateTime<Utc>, Event)>,
}

impl Store {
    /// The counties and grid prefix of `region`. Above county level, the counties whose
    /// codes start with the region's that have any case event: one index descent per county
    /// (a loose index scan), so a province costs tens of lookups.
    pub async fn stats_scope(&self, region: &RegionCode) -> Result<StatsScope> {
        let counties = match region.county() {
            Some(county) => vec![county.to_string()],
            None => {
                sqlx::query_scalar(
                    "WITH RECURSIVE c(code) AS (
                     SELECT min(county_code) FROM case_events WHERE county_code >= $1
                     UNION ALL
                     SELECT (SELECT min(county_code) FROM case_events WHERE county_code > c.code)
                       FROM c WHERE c.code LIKE $1 || '%'
                 )
                 SELECT code FROM c WHERE code LIKE $1 || '%'",
                )
                .bind(region.as_str())
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(StatsScope {
            counties,
            grid_prefix: (region.level() > Level::County).then(|| format!("{region}%")),
            source: None,
        })
    }

    /// The cases of the scope's counties with an event recorded in `[from, to)`, sorted.
    pub async fn stats_period_cases(
        &self,
        scope: &StatsScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CaseId>> {
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT case_id FROM case_events
              WHERE county_code = ANY($1) AND recorded_at >= $2 AND recorded_at < $3",
        )
        .bind(&scope.counties)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(sorted(ids))
    }

    /// Cases of the scope's counties that may be overdue and not closed at `to` (a superset;
    /// the fold decides), sorted.
    ///
    /// `case_events` has no index on the event type, so this reads the counties' events on
    /// one side of `to`, whichever holds less of their history: before it, the cases with an
    /// `overdue` event; after it, the cases open now and those that ended (a check, a
    /// voiding, a merge) after `to`. The second costs a lookup per ended case on top of the
    /// scan, so it is taken only when that side is clearly the smaller. A recent period, the
    /// common question, reads almost nothing.
    pub async fn stats_carried_cases(
        &self,
        scope: &StatsScope,
        to: DateTime<Utc>,
    ) -> Result<Vec<CaseId>> {
        if scope.is_empty() {
            return Ok(Vec::new());
        }
        let (first, last): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT min(m.lo), max(m.hi) FROM unnest($1::text[]) AS c(code)
              CROSS JOIN LATERAL (SELECT min(recorded_at) AS lo, max(recorded_at) AS hi
                                    FROM case_events WHERE county_code = c.code) m",
        )
        .bind(&scope.counties)
        .fetch_one(&self.pool)
        .await?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Vec::new());
        };
        let ids: Vec<Uuid> = if (last - to) * 2 < to - first {
            let open = CaseStatus::ALL
                .iter()
                .filter(|s| !s.is_terminal())
                .map(|s| format!("'{}'", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            sqlx::query_scalar(&format!(
                "SELECT case_id FROM cases
                  WHERE county_code = ANY($1) AND reported_at < $2 AND status IN ({open})
                 UNION
                 SELECT case_id FROM case_events
                  WHERE county_code = ANY($1) AND recorded_at >= $2
                    AND event_type IN ('verified', 'rejected', 'merged')"
            ))
            .bind(&scope.counties)
            .bind(to)
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query_scalar(
                "SELECT DISTINCT case_id FROM case_events
                  WHERE county_code = ANY($1) AND recorded_at < $2 AND event_type = 'overdue'",
            )
            .bind(&scope.counties)
            .bind(to)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(sorted(ids))
    }

    /// The cases of `ids` that lie in the scope and were reported before `to`, each with
    /// its events recorded before `to` in version order: one statement, in case id order.
    pub async fn stats_logs(
        &self,
        scope: &StatsScope,
        ids: &[CaseId],
        to: DateTime<Utc>,
    ) -> Result<Vec<StatsCase>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(Uuid, String, String, DateTime<Utc>, String)> = sqlx::query_as(
            "SELECT c.case_id, c.grid_code, c.county_code, e.recorded_at, e.data::text
               FROM cases c JOIN case_events e USING (case_id)
              WHERE c.case_id = ANY($1) AND c.reported_at < $2
                AND ($3::text IS NULL OR c.grid_code LIKE $3)
                AND ($4::text IS NULL OR c.source = $4)
                AND e.recorded_at < $2
              ORDER BY c.case_id, e.version",
        )
        .bind(CaseId::uuids(ids))
        .bind(to)
        .bind(&scope.grid_prefix)
        .bind(scope.source)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<StatsCase> = Vec::new();
        for (case_id, grid, county, at, data) in rows {
            let case_id = CaseId::from(case_id);
            let event: Event =
                serde_json::from_str(&data).map_err(|e| corrupt("case_events.data", e))?;
            match out.last_mut() {
                Some(c) if c.case_id == case_id => c.events.push((at, event)),
                _ => out.push(StatsCase {
                    case_id,
                    grid: UnitCode::parse(&grid).map_err(|e| corrupt("cases.grid_code", e))?,
                    county: RegionCode::parse(&county)
                        .map_err(|e| corrupt("cases.county_code", e))?,
                    events: vec![(at, event)],
                }),
            }
        }
        Ok(out)
    }
}

/// Case ids read as UUIDs, sorted.
fn sorted(ids: Vec<Uuid>) -> Vec<CaseId> {
    let mut ids: Vec<CaseId> = ids.into_iter().map(CaseId::from).collect();
    ids.sort_unstable();
    ids
}
