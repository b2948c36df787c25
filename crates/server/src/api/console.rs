//! ConsoleService: the case file and lists for consoles.

use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status};

use super::{Ctx, parse_case_id};
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

fn assignment_to_wire(a: &store::Assignment) -> v1::Assignment {
    use domain::effects::{AssignmentStatus, Role};
    let role = match a.role {
        Role::Holder => v1::AssignmentRole::Holder,
        Role::Lead => v1::AssignmentRole::Lead,
        Role::Assisting => v1::AssignmentRole::Assisting,
    };
    let status = match a.status {
        AssignmentStatus::PendingAccept => v1::AssignmentStatus::AssignmentPendingAccept,
        AssignmentStatus::Accepted => v1::AssignmentStatus::AssignmentAccepted,
        AssignmentStatus::Submitted => v1::AssignmentStatus::AssignmentSubmitted,
        AssignmentStatus::Ended => v1::AssignmentStatus::AssignmentEnded,
    };
    v1::Assignment {
        assignment_id: a.assignment_id.to_string(),
        case_id: a.case_id.to_string(),
        unit_code: a.unit.to_string(),
        tier: convert::tier_to_wire(a.tier).into(),
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

/// A list's page token: where the next page starts, and a digest of the filters it was made
/// for, so a token is never applied to another question.
fn page_token(key: store::PageKey, filters: &[u8]) -> String {
    let raw = format!(
        "{}.{}.{}",
        key.0.timestamp_micros(),
        key.1.uuid().simple(),
        filter_digest(filters)
    );
    hex::encode(raw)
}

fn filter_digest(filters: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(filters)[..8])
}

fn parse_page_token(token: &str, filters: &[u8]) -> ApiResult<Option<store::PageKey>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "not a token this list gave out");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.split('.');
    let (Some(at), Some(id), Some(digest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if digest != filter_digest(filters) {
        return Err(ApiError::invalid(
            "page_token",
            "the token belongs to a list with other filters",
        ));
    }
    let at = at
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    let id: domain::CaseId = id.parse().map_err(|_| bad())?;
    Ok(Some((at, id)))
}

impl Ctx {
    /// ListCases: the filters become a [`store::CaseFilter`] inside the caller's area.
    async fn list_cases(
        &self,
        who: &crate::auth::Principal,
        r: &v1::ListCasesRequest,
    ) -> ApiResult<v1::ListCasesResponse> {
        use domain::report::FieldViolation;
        let mut bad: Vec<FieldViolation> = Vec::new();
        let region =
            super::export::parse_region(&r.region_code, "region_code").unwrap_or_else(|_| {
                bad.push(FieldViolation::new(
                    "region_code",
                    "not a region, grid or unit code",
                ));
                None
            });
        let mut statuses = Vec::new();
        for (i, s) in r.statuses.iter().enumerate() {
            match convert::status_from_wire(*s, &format!("statuses[{i}]")) {
                Ok(Some(s)) => statuses.push(s),
                Ok(None) => bad.push(FieldViolation::new(format!("statuses[{i}]"), "unspecified")),
                Err(v) => bad.push(v),
            }
        }
        let tier = convert::tier_from_wire(r.tier, "tier").unwrap_or_else(|v| {
            bad.push(v);
            None
        });
        let severity = convert::severity_from_wire(r.severity, "severity").unwrap_or_else(|v| {
            bad.push(v);
            None
        });
        let source = convert::source_from_wire(r.source).unwrap_or_else(|n| {
            bad.push(FieldViolation::new("source", format!("unknown source {n}")));
            None
        });
        let category = (!r.category.is_empty()).then(|| r.category.clone());
        if let Some(c) = &category
            && (c.len() > 8 || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            bad.push(FieldViolation::new("category", "not a category code"));
        }
        let unit = if r.unit_code.is_empty() {
            None
        } else {
            domain::region::UnitCode::parse(&r.unit_code)
                .map(Some)
                .unwrap_or_else(|_| {
                    bad.push(FieldViolation::new("unit_code", "not a unit code"));
                    None
                })
        };
        let after =
            convert::opt_time(r.reported_after.as_ref(), "reported_after").unwrap_or_else(|v| {
                bad.push(v);
                None
            });
        let before = convert::opt_time(r.reported_before.as_ref(), "reported_before")
            .unwrap_or_else(|v| {
                bad.push(v);
                None
            });
        if let (Some(a), Some(b)) = (after, before)
            && a >= b
        {
            bad.push(FieldViolation::new(
                "reported_before",
                "must be after reported_after",
            ));
        }
        let limit = super::page_size(r.page_size).unwrap_or_else(|e| {
            if let ApiError::Invalid(v) = e {
                bad.extend(v);
            }
            0
        });
        let mut key_fields = r.clone();
        key_fields.page_size = 0;
        key_fields.page_token.clear();
        let filters = prost::Message::encode_to_vec(&key_fields);
        let page = parse_page_token(&r.page_token, &filters).unwrap_or_else(|e| {
            if let ApiError::Invalid(v) = e {
                bad.extend(v);
            }
            None
        });
        if !bad.is_empty() {
            return Err(ApiError::Invalid(bad));
        }
        // scope: a region outside the caller's area is refused, not answered empty
        if let Some(region) = &region {
            who.require_region(region)?;
        }
        let region = region.or_else(|| who.department().map_or_else(|| who.area(), |_| None));
        let unit = match (who.department(), unit) {
            (Some(d), Some(u)) if &u != d => {
                return Err(ApiError::PermissionDenied(
                    "a department lists only its own cases".into(),
                ));
            }
            (Some(d), _) => Some(d.clone()),
            (None, Some(u)) => {
                if !who.covers(&u) && !u.is_department() {
                    return Err(ApiError::PermissionDenied(format!(
                        "unit {u} is outside the caller's area"
                    )));
                }
                Some(u)
            }
            (None, None) => None,
        };
        let filter = store::CaseFilter {
            region,
            statuses,
            tier,
            category,
            severity,
            overdue: r.overdue,
            unit,
            reported_after: after,
            reported_before: before,
            source,
        };
        let cases = self.store.list_cases(&filter, page, limit + 1).await?;
        let more = cases.len() > limit as usize;
        let cases = &cases[..cases.len().min(limit as usize)];
        let next_page_token = match cases.last() {
            Some(c) if more => page_token((c.reported_at, c.case_id), &filters),
            _ => String::new(),
        };
        Ok(v1::ListCasesResponse {
            cases: cases.iter().map(convert::case_to_wire).collect(),
            next_page_token,
        })
    }

    /// The reporter's contact for a caller that may see the case: in full to the roles that
    /// call reporters back, masked to the others (and when no key opens it).
    async fn reporter(
        &self,
        who: &crate::auth::Principal,
        case_id: domain::CaseId,
    ) -> ApiResult<Option<v1::Reporter>> {
        let Some(stored) = self.store.contact(case_id).await? else {
            return Ok(None);
        };
        let masked = || Some(convert::reporter_to_wire(&stored.contact.masked, true));
        if !who.role.sees_contacts() {
            return Ok(masked());
        }
        let Some(keys) = &self.contacts.keys else {
            return Ok(masked());
        };
        match keys.open(&stored.contact) {
            Ok(c) => {
                tracing::info!(case_id = %case_id, principal = %who.subject, "reporter's contact shown");
                Ok(Some(convert::reporter_to_wire(&c, false)))
            }
            Err(e) => {
                tracing::warn!(case_id = %case_id, error = %e, "reporter's contact does not open");
                Ok(masked())
            }
        }
    }

    async fn case_file(
        &self,
        who: &crate::auth::Principal,
        id: &str,
    ) -> ApiResult<v1::GetCaseResponse> {
        let case_id = parse_case_id(id, "case_id")?;
        let rec = self
            .store
            .get_case(case_id)
            .await?
            // outside the caller's scope reads as absent (the access table's NOT_FOUND)
            .filter(|r| who.can_see(r))
            .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
        let events = self.store.case_events(case_id).await?;
        let assignments = self.store.case_assignments(case_id).await?;
        let mut case = convert::case_to_wire(&rec);
        case.reporter = self.reporter(who, case_id).await?;
        Ok(v1::GetCaseResponse {
            case: Some(case),
            events: events.iter().map(convert::event_to_wire).collect(),
            assignments: assignments.iter().map(assignment_to_wire).collect(),
        })
    }
}

#[tonic::async_trait]
impl v1::console_service_server::ConsoleService for Console {
    type WatchCasesStream = super::streams::ServerStream<v1::CaseChange>;

    async fn list_cases(
        &self,
        req: Request<v1::ListCasesRequest>,
    ) -> Result<Response<v1::ListCasesResponse>, Status> {
        let who = principal(&req)?;
        Ok(Response::new(
            self.ctx.list_cases(&who, req.get_ref()).await?,
        ))
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
        req: Request<v1::WatchCasesRequest>,
    ) -> Result<Response<Self::WatchCasesStream>, Status> {
        let who = principal(&req)?;
        let permit = self.ctx.open_stream(&who)?;
        let rx = self.ctx.watch_cases(who, req.get_ref()).await?;
        Ok(Response::new(super::streams::held(rx, permit)))
    }

    async fn get_stats(
        &self,
        req: Request<v1::GetStatsRequest>,
    ) -> Result<Response<v1::GetStatsResponse>, Status> {
        let who = principal(&req)?;
        Ok(Response::new(self.ctx.stats(&who, req.get_ref()).await?))
    }
}
