//! EscalationService: 社區呼叫、分級響應 — units take cases, call the tier above, return them,
//! dispatch joint handling, and watch their queues.

use std::pin::Pin;
use std::time::Duration;

use domain::case::{Clock, Event};
use domain::effects::ItemKind;
use domain::region::UnitCode;
use futures::Stream;
use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status};
use tracing::{debug, info};

use super::{Ctx, parse_case_id};
use crate::auth::{Principal, principal};
use crate::error::{ApiError, ApiResult};

pub(crate) fn unit_arg(s: &str, field: &str) -> ApiResult<UnitCode> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    UnitCode::parse(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub(crate) fn text_arg(s: &str, field: &str, max: usize) -> ApiResult<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    if t.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(t.to_owned())
}

/// The acting unit: parsed, and one the caller may act for.
pub(crate) fn acting(who: &Principal, unit: &str) -> ApiResult<UnitCode> {
    let unit = unit_arg(unit, "unit_code")?;
    who.require_acts_for(&unit)?;
    Ok(unit)
}

/// The two arguments every unit command starts with: the case, and the unit acting on it.
pub(crate) fn case_and_unit(
    who: &Principal,
    case_id: &str,
    unit_code: &str,
) -> ApiResult<(domain::CaseId, UnitCode)> {
    Ok((parse_case_id(case_id, "case_id")?, acting(who, unit_code)?))
}

#[derive(Clone)]
pub struct Escalation {
    ctx: Ctx,
}

impl Escalation {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

type QueueStream = Pin<Box<dyn Stream<Item = Result<v1::QueueItem, Status>> + Send>>;

fn kind_to_wire(k: ItemKind) -> v1::QueueItemKind {
    match k {
        ItemKind::ToAccept => v1::QueueItemKind::ToAccept,
        ItemKind::Supervise => v1::QueueItemKind::Supervise,
        ItemKind::Warning | ItemKind::Rework => v1::QueueItemKind::Warning,
        ItemKind::Withdrawn => v1::QueueItemKind::Withdrawn,
    }
}

impl Ctx {
    /// Queue items for `(kind, case, version)` triples, with their cases read in one query; a
    /// case that no longer exists is skipped.
    async fn queue_items(
        &self,
        wanted: &[(v1::QueueItemKind, domain::CaseId, u64)],
    ) -> ApiResult<Vec<v1::QueueItem>> {
        let ids: Vec<domain::CaseId> = wanted.iter().map(|(_, id, _)| *id).collect();
        let cases = self.store.get_cases(&ids).await?;
        Ok(wanted
            .iter()
            .filter_map(|(kind, case_id, version)| {
                let rec = cases.get(case_id)?;
                Some(v1::QueueItem {
                    kind: (*kind).into(),
                    case_id: case_id.to_string(),
                    assignment_id: String::new(),
                    version: *version,
                    due_at: rec.state.accept_due_at.map(convert::timestamp),
                    case: Some(convert::case_to_wire(rec)),
                })
            })
            .collect())
    }

    /// The pending items of `unit` now, then every new item as it is published.
    async fn watch(
        self,
        unit: UnitCode,
        tx: tokio::sync::mpsc::Sender<Result<v1::QueueItem, Status>>,
    ) -> ApiResult<()> {
        let key = self.queue.key(&queue::Stream::Inbox(unit.clone()));
        // The stream position is taken before the snapshot, so nothing published in between
        // is missed (it may be seen twice; items carry the case version).
        let mut last = self
            .queue
            .last_id(&key)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let pending = self.store.pending_for_unit(&unit).await?;
        for page in pending.chunks(500) {
            let wanted: Vec<_> = page
                .iter()
                .map(|p| (v1::QueueItemKind::ToAccept, p.case_id, 0))
                .collect();
            let items = self.queue_items(&wanted).await?;
            let assignments: std::collections::HashMap<String, String> = page
                .iter()
                .map(|p| (p.case_id.to_string(), p.assignment_id.to_string()))
                .collect();
            for mut item in items {
                item.assignment_id = assignments.get(&item.case_id).cloned().unwrap_or_default();
                item.version = item.case.as_ref().map_or(0, |c| c.version);
                if tx.send(Ok(item)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let end = v1::QueueItem {
            kind: v1::QueueItemKind::SnapshotEnd.into(),
            ..Default::default()
        };
        if tx.send(Ok(end)).await.is_err() {
            return Ok(());
        }
        let mut conn = self
            .queue
            .blocking_conn()
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        loop {
            let read = self
                .queue
                .read_after(&mut conn, &key, &last, 100, Duration::from_secs(2));
            let entries = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tx.closed() => return Ok(()),
                r = read => r.map_err(|e| ApiError::Unavailable(e.to_string()))?,
            };
            if let Some(e) = entries.last() {
                last.clone_from(&e.id);
            }
            let wanted: Vec<_> = entries
                .iter()
                .filter_map(|e| e.inbox().ok())
                .map(|m| (kind_to_wire(m.kind), m.case_id, m.version))
                .collect();
            for item in self.queue_items(&wanted).await? {
                if tx.send(Ok(item)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[tonic::async_trait]
impl v1::escalation_service_server::EscalationService for Escalation {
    type WatchQueueStream = QueueStream;

    async fn watch_queue(
        &self,
        req: Request<v1::WatchQueueRequest>,
    ) -> Result<Response<Self::WatchQueueStream>, Status> {
        let who = principal(&req)?;
        let unit = unit_arg(&req.get_ref().unit_code, "unit_code")?;
        if !(who.covers(&unit) || who.require_acts_for(&unit).is_ok()) {
            return Err(ApiError::PermissionDenied(
                "not allowed to watch this unit's queue".into(),
            )
            .into());
        }
        let permit = self.ctx.open_stream(&who)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = ctx.watch(unit, tx).await {
                let _ = err_tx.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(super::streams::held(rx, permit)))
    }

    async fn accept(
        &self,
        req: Request<v1::AcceptRequest>,
    ) -> Result<Response<v1::AcceptResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "accept",
                move |env, rec, plan| {
                    let tier = unit.tier().unwrap_or(rec.state.tier);
                    let (due, warn) = env.start(env.limits(rec, tier).handle);
                    plan.push(Event::Accepted {
                        unit: unit.clone(),
                        handle_due_at: due,
                    })?;
                    plan.arm(&unit, Clock::Handle, due, warn);
                    Ok(())
                },
            )
            .await?;
        info!(%case_id, unit = %r.unit_code, "accepted");
        Ok(Response::new(v1::AcceptResponse {
            case: super::case_reply(&rec),
        }))
    }

    async fn call_up(
        &self,
        req: Request<v1::CallUpRequest>,
    ) -> Result<Response<v1::CallUpResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let reason = text_arg(&r.reason, "reason", 1000)?;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "call_up",
                move |env, rec, plan| {
                    if plan.call_up(env, rec, &unit, reason)? {
                        Ok(())
                    } else {
                        Err(ApiError::FailedPrecondition(
                            "there is no tier above to call".into(),
                        ))
                    }
                },
            )
            .await?;
        info!(%case_id, unit = %r.unit_code, "called up");
        Ok(Response::new(v1::CallUpResponse {
            case: super::case_reply(&rec),
        }))
    }

    async fn merge(
        &self,
        req: Request<v1::MergeRequest>,
    ) -> Result<Response<v1::MergeResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let into = parse_case_id(&r.into_case_id, "into_case_id")?;
        let reason = text_arg(&r.reason, "reason", 1000)?;
        let (case, into) = self
            .ctx
            .link(
                &who,
                case_id,
                unit,
                r.expected_version,
                super::repeats::Link::Merge { into, reason },
            )
            .await?;
        Ok(Response::new(v1::MergeResponse {
            case: super::case_reply(&case),
            into: super::case_reply(&into),
        }))
    }

    async fn split(
        &self,
        req: Request<v1::SplitRequest>,
    ) -> Result<Response<v1::SplitResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let reason = text_arg(&r.reason, "reason", 1000)?;
        let (case, from) = self
            .ctx
            .link(
                &who,
                case_id,
                unit,
                r.expected_version,
                super::repeats::Link::Split { reason },
            )
            .await?;
        Ok(Response::new(v1::SplitResponse {
            case: super::case_reply(&case),
            from: super::case_reply(&from),
        }))
    }

    async fn r#return(
        &self,
        req: Request<v1::ReturnRequest>,
    ) -> Result<Response<v1::ReturnResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let reason = text_arg(&r.reason, "reason", 1000)?;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "return",
                move |env, rec, plan| {
                    let s = &rec.state;
                    if s.holder.as_ref() == Some(&unit) {
                        // the dispatcher re-routes a dispatched case; otherwise the tier above
                        let target = match &s.dispatcher {
                            Some(d) => d.tier().map(|t| (d.clone(), t)),
                            None => env.above(&unit, s.tier),
                        };
                        let (to_unit, to_tier) = target.ok_or_else(|| {
                            ApiError::FailedPrecondition(
                                "there is no tier above to return to".into(),
                            )
                        })?;
                        let (due, warn) = env.start(env.limits(rec, to_tier).accept);
                        plan.push(Event::Returned {
                            unit: unit.clone(),
                            reason,
                            to_unit: Some(to_unit.clone()),
                            to_tier: Some(to_tier),
                            accept_due_at: Some(due),
                        })?;
                        plan.arm(&to_unit, Clock::Accept, due, warn);
                    } else {
                        plan.push(Event::Returned {
                            unit: unit.clone(),
                            reason,
                            to_unit: None,
                            to_tier: None,
                            accept_due_at: None,
                        })?;
                    }
                    Ok(())
                },
            )
            .await?;
        info!(%case_id, unit = %r.unit_code, "returned");
        Ok(Response::new(v1::ReturnResponse {
            case: super::case_reply(&rec),
        }))
    }

    async fn dispatch(
        &self,
        req: Request<v1::DispatchRequest>,
    ) -> Result<Response<v1::DispatchResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let lead = unit_arg(&r.lead_unit, "lead_unit")?;
        let assisting = r
            .assisting_units
            .iter()
            .enumerate()
            .map(|(i, a)| unit_arg(a, &format!("assisting_units[{i}]")))
            .collect::<ApiResult<Vec<_>>>()?;
        if assisting.len() > 20 {
            return Err(ApiError::invalid("assisting_units", "at most 20").into());
        }
        let note = r.note.trim().to_owned();
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "dispatch",
                move |env, rec, plan| {
                    let mut missing = Vec::new();
                    if !env.exists(&lead) {
                        missing.push(domain::report::FieldViolation::new(
                            "lead_unit",
                            "unknown unit",
                        ));
                    }
                    for (i, a) in assisting.iter().enumerate() {
                        if !env.exists(a) {
                            missing.push(domain::report::FieldViolation::new(
                                format!("assisting_units[{i}]"),
                                "unknown unit",
                            ));
                        }
                    }
                    if !missing.is_empty() {
                        return Err(ApiError::Invalid(missing));
                    }
                    let lead_tier = lead.tier().ok_or_else(|| {
                        ApiError::invalid("lead_unit", "not a unit that handles cases")
                    })?;
                    // 網格事項準入: a matter not admitted for grid staff is never handed down
                    let to_grid = std::iter::once(&lead)
                        .chain(&assisting)
                        .find(|u| u.tier() == Some(domain::Tier::Grid));
                    if let (Some(grid), Some(rule)) =
                        (to_grid, env.policy.refuses_for_grid(&env.category.code))
                    {
                        return Err(ApiError::FailedPrecondition(format!(
                            "{rule}: it cannot be dispatched down to grid {grid}"
                        )));
                    }
                    let (due, warn) = env.start(env.limits(rec, lead_tier).accept);
                    plan.push(Event::Dispatched {
                        unit: unit.clone(),
                        lead: lead.clone(),
                        lead_tier,
                        assisting: assisting.clone(),
                        accept_due_at: due,
                        note,
                    })?;
                    for u in std::iter::once(&lead).chain(&assisting) {
                        plan.arm(u, Clock::Accept, due, warn);
                    }
                    Ok(())
                },
            )
            .await?;
        debug!(%case_id, lead = %r.lead_unit, assisting = r.assisting_units.len(), "dispatched");
        Ok(Response::new(v1::DispatchResponse {
            case: super::case_reply(&rec),
        }))
    }
}
