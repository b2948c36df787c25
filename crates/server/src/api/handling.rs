//! HandlingService: 協同處置 — parts and results, extensions.

use domain::case::{Clock, Event};
use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status};
use tracing::info;

use super::escalation::{case_and_unit, text_arg};
use super::{Ctx, parse_case_id};
use crate::auth::principal;
use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Handling {
    ctx: Ctx,
}

impl Handling {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl v1::handling_service_server::HandlingService for Handling {
    async fn submit_result(
        &self,
        req: Request<v1::SubmitResultRequest>,
    ) -> Result<Response<v1::SubmitResultResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let note = text_arg(&r.note, "note", 4000)?;
        let photos = self.ctx.uploaded(&r.attachments).await?;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "submit_result",
                move |_, rec, plan| {
                    let event = if rec.state.parts.iter().any(|p| p.unit == unit) {
                        Event::PartSubmitted {
                            unit: unit.clone(),
                            note,
                            photos,
                        }
                    } else {
                        Event::ResultSubmitted {
                            unit: unit.clone(),
                            note,
                            photos,
                        }
                    };
                    plan.push(event)?;
                    Ok(())
                },
            )
            .await?;
        info!(%case_id, unit = %r.unit_code, "result submitted");
        Ok(Response::new(v1::SubmitResultResponse {
            case: super::case_reply(&rec),
        }))
    }

    async fn request_extension(
        &self,
        req: Request<v1::RequestExtensionRequest>,
    ) -> Result<Response<v1::RequestExtensionResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let reason = text_arg(&r.reason, "reason", 1000)?;
        let until = convert::opt_time(r.until.as_ref(), "until")
            .map_err(|v| ApiError::Invalid(vec![v]))?
            .ok_or_else(|| ApiError::invalid("until", "required"))?;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "request_extension",
                move |env, rec, plan| {
                    // the dispatcher decides for a dispatched case, otherwise the tier above
                    let decider = match &rec.state.dispatcher {
                        Some(d) => d.clone(),
                        None => env
                            .above(&unit, rec.state.tier)
                            .map(|(u, _)| u)
                            .ok_or_else(|| {
                                ApiError::FailedPrecondition(
                                    "there is no tier above to decide".into(),
                                )
                            })?,
                    };
                    plan.push(Event::ExtensionRequested {
                        unit: unit.clone(),
                        until,
                        reason,
                        decider,
                    })?;
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(v1::RequestExtensionResponse {
            case: super::case_reply(&rec),
        }))
    }

    async fn decide_extension(
        &self,
        req: Request<v1::DecideExtensionRequest>,
    ) -> Result<Response<v1::DecideExtensionResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let (case_id, unit) = case_and_unit(&who, &r.case_id, &r.unit_code)?;
        let note = r.note.trim().to_owned();
        let approved = r.approved;
        let rec = self
            .ctx
            .command(
                &who,
                case_id,
                r.expected_version,
                "decide_extension",
                move |env, rec, plan| {
                    let ext = rec.state.extension.clone();
                    plan.push(Event::ExtensionDecided {
                        unit: unit.clone(),
                        approved,
                        note,
                    })?;
                    if approved && let (Some(ext), Some(lead)) = (ext, rec.state.lead.clone()) {
                        // the warning keeps its place at 80 % of the time left
                        let warn = env.now + (ext.until - env.now) * 4 / 5;
                        plan.arm(&lead, Clock::Handle, ext.until, warn);
                    }
                    Ok(())
                },
            )
            .await?;
        Ok(Response::new(v1::DecideExtensionResponse {
            case: super::case_reply(&rec),
        }))
    }
}

/// Checks and records a grid's on-site verification; used by ReportingService.
pub(crate) async fn verify(
    ctx: &Ctx,
    who: &crate::auth::Principal,
    r: v1::VerifyCaseRequest,
) -> ApiResult<domain::record::CaseRecord> {
    let case_id = parse_case_id(&r.case_id, "case_id")?;
    let unit_text = if r.unit_code.is_empty() {
        who.unit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    } else {
        r.unit_code.clone()
    };
    let unit = super::escalation::unit_arg(&unit_text, "unit_code")?;
    who.require_acts_for(&unit)?;
    let passed = r.passed;
    let note = r.note.trim().to_owned();
    if !passed && note.is_empty() {
        return Err(ApiError::invalid(
            "note",
            "required when the check fails: what is still wrong",
        ));
    }
    ctx.command(
        who,
        case_id,
        r.expected_version,
        "verify",
        move |env, rec, plan| {
            let handle_due = if passed {
                None
            } else {
                let lead =
                    rec.state.lead.clone().ok_or_else(|| {
                        ApiError::FailedPrecondition("the case has no lead".into())
                    })?;
                let tier = lead.tier().unwrap_or(rec.state.tier);
                let (due, warn) = env.start(env.limits(rec, tier).handle);
                plan.arm(&lead, Clock::Handle, due, warn);
                Some(due)
            };
            plan.push(Event::Verified {
                unit: unit.clone(),
                passed,
                note,
                handle_due_at: handle_due,
            })?;
            Ok(())
        },
    )
    .await
}

/// Records a rating; used by ReportingService.
pub(crate) async fn rate(
    ctx: &Ctx,
    who: &crate::auth::Principal,
    r: v1::RateCaseRequest,
) -> ApiResult<domain::record::CaseRecord> {
    let case_id = parse_case_id(&r.case_id, "case_id")?;
    let score = u8::try_from(r.score)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| ApiError::invalid("score", "1 (very unsatisfied) to 5 (very satisfied)"))?;
    if r.comment.chars().count() > 1000 {
        return Err(ApiError::invalid("comment", "at most 1000 characters"));
    }
    let comment = r.comment.trim().to_owned();
    let subject = who.subject.clone();
    let admin = who.role == crate::auth::Role::Admin;
    let caller_unit = who.unit.clone();
    ctx.command(who, case_id, 0, "rate", move |_, rec, plan| {
        if !admin
            && rec.reported_by != subject
            && caller_unit.as_ref() != Some(&rec.grid.clone().into())
        {
            return Err(ApiError::PermissionDenied(
                "only the reporter or the reporting grid rates a case".into(),
            ));
        }
        plan.push(Event::Rated { score, comment })?;
        Ok(())
    })
    .await
}
