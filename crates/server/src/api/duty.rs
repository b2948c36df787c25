//! DutyService (ADR 0042): each unit's duty roster, and who is on duty at it at a time, by its
//! county's calendar (holidays and make-up working days included).

use chrono::{DateTime, Utc};
use domain::calendar::WorkCalendar;
use domain::region::UnitCode;
use proto::convert;
use proto::v1;
use tonic::{Request, Response, Status};
use tracing::info;

use super::Ctx;
use crate::auth::{Principal, principal};
use crate::error::{ApiError, ApiResult};

/// The longest period one `WhoIsOnDuty` lists.
const MAX_DAYS: i64 = 31;

pub struct Duty {
    ctx: Ctx,
}

impl Duty {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Duty { ctx }
    }

    /// The unit named by `field`, which must lie in the caller's area.
    fn unit(who: &Principal, code: &str, field: &str) -> ApiResult<UnitCode> {
        let unit = UnitCode::parse(code).map_err(|e| ApiError::invalid(field, e.to_string()))?;
        if !who.covers(&unit) {
            return Err(ApiError::PermissionDenied(
                "the unit is outside the caller's area".into(),
            ));
        }
        Ok(unit)
    }

    async fn calendar(&self, unit: &UnitCode) -> ApiResult<WorkCalendar> {
        match unit.county() {
            None => Ok(WorkCalendar::default()),
            Some(county) => Ok(self.ctx.directory.calendar(&county).await?),
        }
    }

    /// The unit's roster, with its version and time.
    async fn roster(
        &self,
        unit: &UnitCode,
    ) -> ApiResult<(domain::roster::Roster, u64, DateTime<Utc>)> {
        self.ctx
            .store
            .get_roster(unit)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("unit {unit} has no roster")))
    }
}

fn violation(v: domain::report::FieldViolation) -> ApiError {
    ApiError::Invalid(vec![v])
}

#[tonic::async_trait]
impl v1::duty_service_server::DutyService for Duty {
    async fn put_roster(
        &self,
        req: Request<v1::PutRosterRequest>,
    ) -> Result<Response<v1::PutRosterResponse>, Status> {
        let who = principal(&req)?;
        let wire = req
            .into_inner()
            .roster
            .ok_or_else(|| ApiError::invalid("roster", "required"))?;
        let roster = convert::roster_from_wire(wire).map_err(violation)?;
        Self::unit(&who, roster.unit.as_str(), "roster.unit_code")?;
        let (version, at) = self
            .ctx
            .store
            .put_roster(&roster, &who.actor())
            .await
            .map_err(ApiError::from)?;
        info!(unit = %roster.unit, version, "roster stored");
        Ok(Response::new(v1::PutRosterResponse {
            roster: Some(convert::roster_to_wire(&roster, version, at)),
        }))
    }

    async fn get_roster(
        &self,
        req: Request<v1::GetRosterRequest>,
    ) -> Result<Response<v1::GetRosterResponse>, Status> {
        let who = principal(&req)?;
        let unit = Self::unit(&who, &req.get_ref().unit_code, "unit_code")?;
        let (roster, version, at) = self.roster(&unit).await?;
        Ok(Response::new(v1::GetRosterResponse {
            roster: Some(convert::roster_to_wire(&roster, version, at)),
        }))
    }

    async fn who_is_on_duty(
        &self,
        req: Request<v1::WhoIsOnDutyRequest>,
    ) -> Result<Response<v1::WhoIsOnDutyResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let unit = Self::unit(&who, &r.unit_code, "unit_code")?;
        let at: DateTime<Utc> = convert::opt_time(r.at.as_ref(), "at")
            .map_err(violation)?
            .unwrap_or_else(|| self.ctx.clock.now());
        let until = convert::opt_time(r.until.as_ref(), "until").map_err(violation)?;
        if until.is_some_and(|u| u < at || u - at > chrono::Duration::days(MAX_DAYS)) {
            return Err(ApiError::invalid(
                "until",
                format!("after `at`, by at most {MAX_DAYS} days"),
            )
            .into());
        }
        let (roster, _, _) = self.roster(&unit).await?;
        let cal = self.calendar(&unit).await?;
        let duties = match until {
            None => roster.on_duty(&cal, at),
            Some(u) => {
                let day = |t: DateTime<Utc>| t.with_timezone(&cal.offset()).date_naive();
                roster.between(&cal, day(at), day(u))
            }
        };
        Ok(Response::new(v1::WhoIsOnDutyResponse {
            on_duty: duties.iter().map(convert::duty_to_wire).collect(),
            head: Some(convert::head_to_wire(&roster)),
        }))
    }
}
