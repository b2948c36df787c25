//! ReportingService: 網格發現 — reports from grid workers' phones.

use std::pin::Pin;

use chrono::DateTime;
use domain::region::{RegionCode, UnitCode};
use domain::report::NewReport;
use futures::{Stream, StreamExt as _};
use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument as _, info, info_span};

use super::{Ctx, page_size};
use crate::auth::{Principal, principal};
use crate::error::{ApiError, ApiResult};

/// Replies buffered ahead of a slow reader before the stream stops reading requests.
const SYNC_BUFFER: usize = 16;

#[derive(Clone)]
pub struct Reporting {
    ctx: Ctx,
}

impl Reporting {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

impl Ctx {
    /// Files one report: parse and check it, check the caller's area and the registry, then
    /// one transaction in the store. Used by `ReportEvent` and by each item of `SyncReports`.
    /// 網格事項準入: a grid worker settles on the spot only matters its county admits for grid
    /// staff. A county without a policy has no list to keep.
    async fn admitted_for_grid(
        &self,
        grid: &RegionCode,
        category: &domain::policy::CategoryCode,
    ) -> ApiResult<()> {
        let Some(county) = grid.county() else {
            return Ok(());
        };
        let Some(policy) = self.directory.policy_if_any(&county).await? else {
            return Ok(());
        };
        match policy.refuses_for_grid(category) {
            None => Ok(()),
            Some(rule) => Err(ApiError::FailedPrecondition(format!(
                "{rule}: a grid worker may not settle it on the spot; report it without \
                 self_handled and it goes to the tier the county's policy names"
            ))),
        }
    }

    /// The county's repeat rule for a new report (ADR 0044): the open case of the same matter
    /// nearby it repeats, if any, and how often its spot has been reported. One index probe
    /// per geohash cell around the point; nothing when the county keeps no rule.
    async fn repeat_of(
        &self,
        report: &NewReport,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<(Option<store::RepeatLink>, u32)> {
        let Some(county) = report.grid.county() else {
            return Ok((None, 1));
        };
        let Some(policy) = self.directory.policy_if_any(&county).await? else {
            return Ok((None, 1));
        };
        let Some(rule) = policy.repeats.as_ref() else {
            return Ok((None, 1));
        };
        let cells = domain::repeat::cells_around(report.location, rule.distance_m);
        let nearby = self
            .store
            .nearby(&county, &report.category, &cells, rule.since(now))
            .await?;
        let link = domain::repeat::nearest_open(rule, report.location, &nearby, now)
            .map(|(into, distance_m)| store::RepeatLink { into, distance_m });
        let spot = domain::repeat::reports_at_spot(rule, report.location, &nearby, now);
        Ok((link, spot))
    }

    pub async fn report(
        &self,
        who: &Principal,
        req: v1::ReportEventRequest,
    ) -> ApiResult<v1::ReportEventResponse> {
        let now = self.clock.now();
        let mut raw = convert::raw_report(req).map_err(ApiError::Invalid)?;
        self.place(&mut raw).await?;
        let mut report = NewReport::parse(raw, now).map_err(ApiError::Invalid)?;
        check_source(who, &report.source)?;
        self.known_media(&mut report.attachments).await?;
        let contact = match (&report.reporter, &self.contacts.keys) {
            (None, _) => None,
            (Some(c), Some(keys)) => Some(keys.seal(c)),
            (Some(_), None) => {
                return Err(ApiError::FailedPrecondition(
                    "this server keeps no reporters' contacts (no contact key is configured): \
                     send the report without `reporter`"
                        .into(),
                ));
            }
        };
        let grid_unit = UnitCode::from(report.grid.clone());
        if !who.covers(&grid_unit) {
            return Err(ApiError::PermissionDenied(
                "the grid is outside the caller's area".into(),
            ));
        }
        // registry facts come from the short-lived directory cache: two lookups fewer per report
        let mut violations = Vec::new();
        if !self.directory.units().await?.contains(report.grid.as_str()) {
            violations.push(domain::report::FieldViolation::new(
                "grid_code",
                "unknown grid: not in the registry",
            ));
        }
        let category = match self.directory.category(&report.category).await {
            Ok(c) => Some(c),
            Err(crate::pipeline::DirectoryError::NoCategory(_)) => {
                violations.push(domain::report::FieldViolation::new(
                    "category",
                    "unknown category: see ListCategories",
                ));
                None
            }
            Err(e) => return Err(e.into()),
        };
        let Some(category) = category.filter(|_| violations.is_empty()) else {
            return Err(ApiError::Invalid(violations));
        };
        if report.self_handled {
            self.admitted_for_grid(&report.grid, &category.code).await?;
        }
        let severity = report.severity.unwrap_or(category.default_severity);
        let (repeat, spot_reports) = if report.self_handled {
            (None, 1)
        } else {
            self.repeat_of(&report, now).await?
        };
        let outcome = self
            .reports
            .submit(store::BatchItem {
                report,
                severity,
                actor: who.actor(),
                trace: crate::trace::current_carrier(),
                contact,
                repeat,
                spot_reports,
            })
            .await?;
        // the case a repeat follows, as it is now: in full to a caller whose area holds it; a
        // case next door (a repeat links across a grid's edge) is named by `merged_into` only
        let original = match outcome.case.state.merged_into {
            Some(into) => self.store.get_case(into).await?.filter(|o| who.can_see(o)),
            None => None,
        };
        if !outcome.replayed {
            // the intake row is committed: no need for the relay to wait for its next poll
            self.wake.relay.notify_one();
        }
        info!(
            case_id = %outcome.case.case_id,
            case_number = %outcome.case.case_number,
            grid = %outcome.case.grid,
            category = %outcome.case.category,
            source = %outcome.case.source.kind,
            replayed = outcome.replayed,
            repeat_of = original.as_ref().map(|o| o.case_number.as_str()),
            "report filed"
        );
        Ok(v1::ReportEventResponse {
            case: Some(convert::case_to_wire(&outcome.case)),
            replayed: outcome.replayed,
            original: original.as_ref().map(convert::case_to_wire),
        })
    }
}

impl Ctx {
    /// The hashes of files a result names, each one uploaded before (at most 20).
    pub(crate) async fn uploaded(&self, files: &[v1::Attachment]) -> ApiResult<Vec<String>> {
        if files.len() > 20 {
            return Err(ApiError::invalid("attachments", "at most 20"));
        }
        let hashes: Vec<String> = files
            .iter()
            .map(|a| a.content_hash.to_ascii_lowercase())
            .collect();
        let known = self.store.media(&hashes).await?;
        let violations: Vec<_> = hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| !known.contains_key(*h))
            .map(|(i, _)| {
                domain::report::FieldViolation::new(
                    format!("attachments[{i}].content_hash"),
                    "unknown file: upload it with MediaService.Upload first",
                )
            })
            .collect();
        if violations.is_empty() {
            Ok(hashes)
        } else {
            Err(ApiError::Invalid(violations))
        }
    }

    /// Every file a report names must have been uploaded (MediaService.Upload); its type and
    /// size, and what a photo's EXIF says of when and where it was taken, are taken as gridd
    /// recorded them, not as the client says.
    async fn known_media(&self, files: &mut [domain::report::Attachment]) -> ApiResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = files
            .iter()
            .map(|a| a.content_hash.to_ascii_lowercase())
            .collect();
        let known = self.store.media(&hashes).await?;
        let mut violations = Vec::new();
        for (i, (a, h)) in files.iter_mut().zip(&hashes).enumerate() {
            match known.get(h) {
                Some(m) => {
                    a.content_hash.clone_from(h);
                    a.media_type.clone_from(&m.media_type);
                    a.size = m.size;
                    a.taken_at = m.taken_at;
                    a.taken_location = m.taken_location;
                }
                None => violations.push(domain::report::FieldViolation::new(
                    format!("attachments[{i}].content_hash"),
                    "unknown file: upload it with MediaService.Upload first",
                )),
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(violations))
        }
    }

    /// A report that does not come from a grid worker may leave its grid to its location:
    /// the grid the point falls in, or the nearest one within reach (ADR 0032).
    async fn place(&self, raw: &mut domain::report::RawReport) -> ApiResult<()> {
        use domain::source::SourceKind;
        if !raw.grid_code.trim().is_empty()
            || matches!(raw.source, None | Some(SourceKind::GridWorker))
        {
            return Ok(());
        }
        // a missing or broken location is reported by the parse, with every other problem
        let Some(p) = raw.location.and_then(domain::report::RawLocation::wgs84) else {
            return Ok(());
        };
        let located = self.locate(p).await?;
        raw.grid_code = located.grid().to_string();
        Ok(())
    }

    /// The grid a WGS-84 point falls in; a point no grid takes is the caller's error.
    pub async fn locate(&self, p: domain::geo::LatLon) -> ApiResult<domain::area::Located> {
        use domain::area::LocateError;
        match self.directory.grid_map().await?.locate(p) {
            Ok(l) => Ok(l),
            Err(LocateError::NoBoundaries) => Err(ApiError::FailedPrecondition(
                "no grid in the registry has a boundary, so no point can be placed: \
                 name grid_code"
                    .into(),
            )),
            Err(e @ LocateError::TooFar { .. }) => Err(ApiError::Invalid(vec![
                domain::report::FieldViolation::new("location", e.to_string()),
            ])),
        }
    }
}

/// A grid worker reports what it finds itself; an intake system files for others; the units'
/// own staff may take down either (a dispatcher answering a call).
fn check_source(who: &Principal, source: &domain::source::Source) -> ApiResult<()> {
    use crate::auth::Role;
    use domain::source::SourceKind;
    match (who.role, source.kind) {
        (Role::GridWorker, SourceKind::GridWorker) => Ok(()),
        (Role::GridWorker, other) => Err(ApiError::PermissionDenied(format!(
            "a grid worker files its own findings: source {other} is for intake systems"
        ))),
        (Role::Intake, SourceKind::GridWorker) => Err(ApiError::PermissionDenied(
            "an intake system files for residents, the hotline or another system: name the source"
                .into(),
        )),
        _ => Ok(()),
    }
}

fn item_error(status: &Status) -> v1::ItemError {
    use tonic_types::StatusExt as _;
    let field_violations = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| v1::FieldViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect()
        })
        .unwrap_or_default();
    v1::ItemError {
        code: crate::error::code_of(status),
        message: status.message().to_owned(),
        field_violations,
    }
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<v1::SyncReportsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl v1::reporting_service_server::ReportingService for Reporting {
    async fn report_event(
        &self,
        req: Request<v1::ReportEventRequest>,
    ) -> Result<Response<v1::ReportEventResponse>, Status> {
        let who = principal(&req)?;
        let span = info_span!("report_event", principal = %who.subject);
        let resp = self
            .ctx
            .report(&who, req.into_inner())
            .instrument(span)
            .await?;
        Ok(Response::new(resp))
    }

    async fn list_categories(
        &self,
        req: Request<v1::ListCategoriesRequest>,
    ) -> Result<Response<v1::ListCategoriesResponse>, Status> {
        principal(&req)?;
        let region = req.into_inner().region_code;
        let mut categories = self
            .ctx
            .store
            .list_categories()
            .await
            .map_err(ApiError::from)?;
        if !region.is_empty() {
            // The phone shows the limits that will really apply where it is: the county's
            // policy for the tier a case of each category starts at.
            let code = domain::region::RegionCode::parse(&region)
                .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
            let county = code
                .county()
                .ok_or_else(|| ApiError::invalid("region_code", "must be a county or below"))?;
            if let Some((policy, _, _)) = self
                .ctx
                .store
                .get_policy(&county)
                .await
                .map_err(ApiError::from)?
            {
                for c in &mut categories {
                    let route = policy.route(c, None);
                    let limits = policy.limits(c, route.severity, route.tier);
                    c.accept_limit = limits.accept;
                    c.handle_limit = limits.handle;
                }
            }
        }
        Ok(Response::new(v1::ListCategoriesResponse {
            categories: categories.iter().map(convert::category_to_wire).collect(),
        }))
    }

    type SyncReportsStream = SyncStream;

    async fn sync_reports(
        &self,
        req: Request<Streaming<v1::SyncReportsRequest>>,
    ) -> Result<Response<Self::SyncReportsStream>, Status> {
        let who = principal(&req)?;
        let permit = self.ctx.open_stream(&who)?;
        let ctx = self.ctx.clone();
        let max = ctx.limits.max_sync_batch;
        let inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(SYNC_BUFFER);
        let span = info_span!("sync_reports", principal = %who.subject);
        // The task ends when the phone closes its side, disconnects (the send fails) or
        // exceeds the batch limit; it owns nothing that needs a shutdown signal.
        tokio::spawn(
            async move {
                let mut results = inbound
                    .take(max + 1)
                    .enumerate()
                    .map(|(i, item)| {
                        let ctx = ctx.clone();
                        let who = who.clone();
                        async move {
                            let item = item?;
                            if i >= max {
                                return Err(Status::resource_exhausted(format!(
                                    "at most {max} reports per stream: open a new stream"
                                )));
                            }
                            let report = item.report.unwrap_or_default();
                            let key = report.idempotency_key.clone();
                            let result = match ctx.report(&who, report).await {
                                Ok(ok) => v1::sync_reports_response::Result::Ok(ok),
                                Err(e) => v1::sync_reports_response::Result::Error(item_error(
                                    &Status::from(e),
                                )),
                            };
                            Ok(v1::SyncReportsResponse {
                                idempotency_key: key,
                                result: Some(result),
                            })
                        }
                    })
                    // One at a time, in order: a resent report later in the stream then
                    // always answers as the replay of the earlier one.
                    .buffered(1);
                let mut sent = 0_usize;
                while let Some(r) = results.next().await {
                    let stop = r.is_err();
                    if tx.send(r).await.is_err() || stop {
                        break;
                    }
                    sent += 1;
                }
                info!(replies = sent, "sync stream done");
            }
            .instrument(span),
        );
        Ok(Response::new(super::streams::held(rx, permit)))
    }

    async fn list_my_reports(
        &self,
        req: Request<v1::ListMyReportsRequest>,
    ) -> Result<Response<v1::ListMyReportsResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let limit = page_size(r.page_size)?;
        let after = decode_report_token(&r.page_token)?;
        let cases = self
            .ctx
            .store
            .list_reports_by(&who.subject, after, limit)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if cases.len() == limit as usize {
            cases
                .last()
                .map(|c| format!("{}.{}", c.reported_at.timestamp_micros(), c.case_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListMyReportsResponse {
            cases: cases.iter().map(convert::case_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn verify_case(
        &self,
        req: Request<v1::VerifyCaseRequest>,
    ) -> Result<Response<v1::VerifyCaseResponse>, Status> {
        let who = principal(&req)?;
        let rec = super::handling::verify(&self.ctx, &who, req.into_inner()).await?;
        Ok(Response::new(v1::VerifyCaseResponse {
            case: Some(convert::case_to_wire(&rec)),
        }))
    }

    async fn rate_case(
        &self,
        req: Request<v1::RateCaseRequest>,
    ) -> Result<Response<v1::RateCaseResponse>, Status> {
        let who = principal(&req)?;
        let rec = super::handling::rate(&self.ctx, &who, req.into_inner()).await?;
        Ok(Response::new(v1::RateCaseResponse {
            case: Some(convert::case_to_wire(&rec)),
        }))
    }
}

fn decode_report_token(
    token: &str,
) -> ApiResult<Option<(chrono::DateTime<chrono::Utc>, domain::CaseId)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "not a token this service issued");
    let (micros, id) = token.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id: domain::CaseId = id.parse().map_err(|_| bad())?;
    Ok(Some((at, id)))
}
