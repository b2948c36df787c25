//! ConsoleService: the case file and lists for consoles.

use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status};

use super::{Ctx, parse_uuid};
use crate::auth::principal;
use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Console {
    ctx: Ctx,
}

impl Console {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

fn assignment_to_wire(a: &store::AssignmentRow) -> v1::Assignment {
    let role = match a.role.as_str() {
        "HOLDER" => v1::AssignmentRole::Holder,
        "LEAD" => v1::AssignmentRole::Lead,
        _ => v1::AssignmentRole::Assisting,
    };
    let status = match a.status.as_str() {
        "PENDING_ACCEPT" => v1::AssignmentStatus::AssignmentPendingAccept,
        "ACCEPTED" => v1::AssignmentStatus::AssignmentAccepted,
        "SUBMITTED" => v1::AssignmentStatus::AssignmentSubmitted,
        _ => v1::AssignmentStatus::AssignmentEnded,
    };
    v1::Assignment {
        assignment_id: a.assignment_id.to_string(),
        case_id: a.case_id.to_string(),
        unit_code: a.unit_code.clone(),
        tier: a
            .tier
            .parse::<domain::Tier>()
            .map_or(0, |t| convert::tier_to_wire(t).into()),
        role: role.into(),
        status: status.into(),
        accept_due_at: a.accept_due_at.map(convert::timestamp),
        handle_due_at: a.handle_due_at.map(convert::timestamp),
        created_at: Some(convert::timestamp(a.created_at)),
        accepted_at: a.accepted_at.map(convert::timestamp),
        submitted_at: a.submitted_at.map(convert::timestamp),
        overdue: a.overdue,
        note: a.note.clone(),
    }
}

impl Ctx {
    async fn case_file(
        &self,
        who: &crate::auth::Principal,
        id: &str,
    ) -> ApiResult<v1::GetCaseResponse> {
        let case_id = parse_uuid(id, "case_id")?;
        let rec = self
            .store
            .get_case(case_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
        if !who.can_see(&rec) {
            return Err(ApiError::PermissionDenied(
                "the case is outside the caller's area".into(),
            ));
        }
        let events = self.store.case_events(case_id).await?;
        let assignments = self.store.case_assignments(case_id).await?;
        Ok(v1::GetCaseResponse {
            case: Some(convert::case_to_wire(&rec)),
            events: events.iter().map(convert::event_to_wire).collect(),
            assignments: assignments.iter().map(assignment_to_wire).collect(),
        })
    }
}

#[tonic::async_trait]
impl v1::console_service_server::ConsoleService for Console {
    type WatchCasesStream = super::pending::ServerStream<v1::CaseChange>;

    async fn list_cases(
        &self,
        _: Request<v1::ListCasesRequest>,
    ) -> Result<Response<v1::ListCasesResponse>, Status> {
        Err(ApiError::Unimplemented("ListCases").into())
    }

    async fn get_case(
        &self,
        req: Request<v1::GetCaseRequest>,
    ) -> Result<Response<v1::GetCaseResponse>, Status> {
        let who = principal(&req)?;
        Ok(Response::new(
            self.ctx.case_file(&who, &req.get_ref().case_id).await?,
        ))
    }

    async fn watch_cases(
        &self,
        _: Request<v1::WatchCasesRequest>,
    ) -> Result<Response<Self::WatchCasesStream>, Status> {
        Err(ApiError::Unimplemented("WatchCases").into())
    }

    async fn get_stats(
        &self,
        _: Request<v1::GetStatsRequest>,
    ) -> Result<Response<v1::GetStatsResponse>, Status> {
        Err(ApiError::Unimplemented("GetStats").into())
    }
}
