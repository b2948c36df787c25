//! GetStats: the GB/T 30428 indicators of a region and period, by tier and by unit.
//!
//! The store finds the cases that can count and loads their logs in chunks; the domain folds
//! them (`domain::indicators`, formulas in `docs/indicators.md`); waiting and handling times
//! are in working time of each case's county calendar.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::calendar::WorkCalendar;
use domain::indicators::{CaseLog, Indicators, Period, Report, Tally};
use domain::region::RegionCode;
use domain::report::FieldViolation;
use futures::{StreamExt as _, TryStreamExt as _};
use proto::convert;
use proto::v1;
use store::StatsScope;

use super::Ctx;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// The longest period one request may ask for.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// Cases whose logs are loaded per statement; two statements are in flight at a time, so a
/// province-year never holds more than a few thousand cases' events.
const CHUNK: usize = 1_000;

/// The region and period of a request, or every field that is wrong.
fn stats_args(req: &v1::GetStatsRequest) -> ApiResult<(RegionCode, Period)> {
    let mut bad = Vec::new();
    let region = if req.region_code.is_empty() {
        bad.push(FieldViolation::new("region_code", "required"));
        None
    } else {
        RegionCode::parse(&req.region_code)
            .map_err(|e| bad.push(FieldViolation::new("region_code", e.to_string())))
            .ok()
    };
    let mut time = |ts: Option<&prost_types::Timestamp>, field: &str| -> Option<DateTime<Utc>> {
        match ts {
            None => {
                bad.push(FieldViolation::new(field, "required"));
                None
            }
            Some(ts) => {
                let t = convert::from_timestamp(ts);
                if t.is_none() {
                    bad.push(FieldViolation::new(field, "not a valid timestamp"));
                }
                t
            }
        }
    };
    let from = time(req.from.as_ref(), "from");
    let to = time(req.to.as_ref(), "to");
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            bad.push(FieldViolation::new("to", "must be later than from"));
        } else if to - from > chrono::Duration::days(MAX_PERIOD_DAYS) {
            bad.push(FieldViolation::new(
                "to",
                format!("a period is at most {MAX_PERIOD_DAYS} days"),
            ));
        }
    }
    match (region, from, to) {
        (Some(region), Some(from), Some(to)) if bad.is_empty() => Ok((region, Period { from, to })),
        _ => Err(ApiError::Invalid(bad)),
    }
}

impl Ctx {
    pub(crate) async fn stats(
        &self,
        who: &Principal,
        req: &v1::GetStatsRequest,
    ) -> ApiResult<v1::GetStatsResponse> {
        if who.department().is_some() {
            return Err(ApiError::PermissionDenied(
                "indicators are for region units".into(),
            ));
        }
        let (region, period) = stats_args(req)?;
        let source = convert::source_from_wire(req.source)
            .map_err(|n| ApiError::invalid("source", format!("unknown source {n}")))?;
        who.require_region(&region)?;
        let started = std::time::Instant::now();
        let scope = self.store.stats_scope(&region).await?.from_source(source);
        let mut calendars: HashMap<RegionCode, WorkCalendar> = HashMap::new();
        for county in scope.counties() {
            let cal = self.calendar(&county).await?;
            calendars.insert(county, cal);
        }
        let mut tally = Tally::new(period);
        // the search for cases carried over (overdue before the period, still open) reads
        // the most; it runs while the cases of the period are loaded and folded
        let in_period = async {
            let ids = self
                .store
                .stats_period_cases(&scope, period.from, period.to)
                .await?;
            self.fold(&scope, &ids, &calendars, &mut tally).await?;
            Ok::<_, ApiError>(ids)
        };
        let carried =
            async { Ok::<_, ApiError>(self.store.stats_carried_cases(&scope, period.to).await?) };
        let (in_period, carried) = tokio::try_join!(in_period, carried)?;
        let rest: Vec<CaseId> = carried
            .into_iter()
            .filter(|id| in_period.binary_search(id).is_err())
            .collect();
        self.fold(&scope, &rest, &calendars, &mut tally).await?;
        let report = tally.finish();
        tracing::info!(
            region = %region,
            candidates = in_period.len() + rest.len(),
            units = report.units.len(),
            ms = started.elapsed().as_millis(),
            "stats"
        );
        Ok(report_to_wire(&report))
    }

    /// Loads the logs of `ids` (two chunks in flight) and folds them into `tally`.
    async fn fold(
        &self,
        scope: &StatsScope,
        ids: &[CaseId],
        calendars: &HashMap<RegionCode, WorkCalendar>,
        tally: &mut Tally,
    ) -> ApiResult<()> {
        let default = WorkCalendar::default();
        let to = tally.period().to;
        // owned chunks: a stream of futures borrowing slices trips the Send check of the
        // service's future (a higher-ranked lifetime the compiler cannot prove)
        let chunks: Vec<Vec<CaseId>> = ids.chunks(CHUNK).map(<[CaseId]>::to_vec).collect();
        let store = &self.store;
        let loads = futures::stream::iter(chunks)
            .map(|chunk| async move { store.stats_logs(scope, &chunk, to).await })
            .buffered(2);
        let mut loads = std::pin::pin!(loads);
        while let Some(logs) = loads.try_next().await? {
            for case in &logs {
                tally.add(CaseLog {
                    grid: &case.grid,
                    calendar: calendars.get(&case.county).unwrap_or(&default),
                    events: &case.events,
                });
            }
        }
        Ok(())
    }

    /// The working calendar of a county: its policy's, or the default one when the county
    /// has no policy (its cases were then never routed, so no waiting time is measured).
    async fn calendar(&self, county: &RegionCode) -> ApiResult<WorkCalendar> {
        Ok(self.directory.calendar(county).await?)
    }
}

#[must_use]
pub fn indicators_to_wire(i: &Indicators) -> v1::Indicators {
    let c = &i.counts;
    v1::Indicators {
        reported: c.reported,
        due_to_close: i.due_to_close,
        closed: c.closed,
        closed_on_time: c.closed_on_time,
        reworked: c.reworked,
        dispatched: c.dispatched,
        redispatched: c.redispatched,
        self_handled: c.self_handled,
        rated: c.rated,
        satisfied: c.satisfied,
        closure_rate: i.closure_rate,
        on_time_closure_rate: i.on_time_closure_rate,
        rework_rate: i.rework_rate,
        accurate_dispatch_rate: i.accurate_dispatch_rate,
        self_handled_rate: i.self_handled_rate,
        satisfaction_rate: i.satisfaction_rate,
        grade: i.grade.as_str().to_owned(),
        returns: c.returns,
        bad_reviews: c.bad_reviews,
        overdue_unclosed: c.overdue_unclosed,
        accepted: c.accepted,
        avg_accept_hours: i.avg_accept_hours,
        results: c.results,
        avg_handle_hours: i.avg_handle_hours,
        score: i.score,
        return_rate: i.return_rate,
        bad_review_rate: i.bad_review_rate,
        admitted_matters: c.reported - c.non_admitted,
        non_admitted_matters: c.non_admitted,
        repeat_reports: c.repeats,
    }
}

#[must_use]
pub fn report_to_wire(r: &Report) -> v1::GetStatsResponse {
    v1::GetStatsResponse {
        total: Some(indicators_to_wire(&r.total)),
        units: r
            .units
            .iter()
            .map(|u| v1::UnitIndicators {
                unit_code: u.unit.to_string(),
                tier: u.tier.map_or(0, |t| convert::tier_to_wire(t).into()),
                indicators: Some(indicators_to_wire(&u.indicators)),
            })
            .collect(),
        tiers: r
            .tiers
            .iter()
            .map(|t| v1::TierIndicators {
                tier: convert::tier_to_wire(t.tier).into(),
                indicators: Some(indicators_to_wire(&t.indicators)),
            })
            .collect(),
    }
}
