//! RoutingService: the registry, the category catalogue and county policies.

use domain::region::{Level, RegionCode, UnitCode};
use domain::report::FieldViolation;
use proto::convert;
use proto::v1;
use store::UnitFilter;
use tonic::{Request, Response, Status};
use tracing::info;

use super::{Ctx, page_size};
use crate::auth::principal;
use crate::error::{ApiError, ApiResult};

/// Most units or categories one upsert may carry.
const MAX_BATCH: usize = 5_000;

#[derive(Clone)]
pub struct Routing {
    ctx: Ctx,
}

impl Routing {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

fn batch_limit(n: usize, field: &str) -> ApiResult<()> {
    if n == 0 {
        Err(ApiError::invalid(field, "at least one entry"))
    } else if n > MAX_BATCH {
        Err(ApiError::invalid(
            field,
            format!("at most {MAX_BATCH} per request"),
        ))
    } else {
        Ok(())
    }
}

fn violation(v: FieldViolation) -> ApiError {
    ApiError::Invalid(vec![v])
}

#[tonic::async_trait]
impl v1::routing_service_server::RoutingService for Routing {
    async fn upsert_units(
        &self,
        req: Request<v1::UpsertUnitsRequest>,
    ) -> Result<Response<v1::UpsertUnitsResponse>, Status> {
        let who = principal(&req)?;
        let units = req.into_inner().units;
        batch_limit(units.len(), "units")?;
        let units = units
            .into_iter()
            .enumerate()
            .map(|(i, u)| convert::unit_from_wire(u, &format!("units[{i}]")).map_err(violation))
            .collect::<ApiResult<Vec<_>>>()?;
        if let Some(u) = units.iter().find(|u| !who.covers(&u.code)) {
            return Err(ApiError::PermissionDenied(format!(
                "unit {} is outside the caller's area",
                u.code
            ))
            .into());
        }
        check_inside_parents(&self.ctx, &units).await?;
        let changed = self
            .ctx
            .store
            .upsert_units(&units, &who.actor())
            .await
            .map_err(ApiError::from)?;
        // this process sees its own registry change at once; others within the cache TTL
        self.ctx.directory.invalidate().await;
        info!(units = units.len(), changed, "units upserted");
        Ok(Response::new(v1::UpsertUnitsResponse {
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
        }))
    }

    async fn list_units(
        &self,
        req: Request<v1::ListUnitsRequest>,
    ) -> Result<Response<v1::ListUnitsResponse>, Status> {
        principal(&req)?;
        let r = req.into_inner();
        let limit = page_size(r.page_size)?;
        let parent = if r.parent_code.is_empty() {
            None
        } else {
            Some(
                UnitCode::parse(&r.parent_code)
                    .map_err(|e| ApiError::invalid("parent_code", e.to_string()))?,
            )
        };
        let kind = convert::kind_from_wire(r.kind, "kind").map_err(violation)?;
        let region = super::export::parse_region(&r.region_code, "region_code")?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            UnitCode::parse(&r.page_token)
                .map_err(|_| ApiError::invalid("page_token", "not a token this service issued"))?;
            Some(r.page_token)
        };
        let units = self
            .ctx
            .store
            .list_units(&UnitFilter {
                parent,
                kind,
                region: region.map(|r| r.as_str().to_owned()),
                after,
                limit,
            })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if units.len() == limit as usize {
            units.last().map(|u| u.code.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListUnitsResponse {
            units: units.iter().map(convert::unit_to_wire).collect(),
            next_page_token,
        }))
    }

    async fn upsert_categories(
        &self,
        req: Request<v1::UpsertCategoriesRequest>,
    ) -> Result<Response<v1::UpsertCategoriesResponse>, Status> {
        // installation-wide: the access layer admits only an admin whose token names no unit
        let who = principal(&req)?;
        let cats = req.into_inner().categories;
        batch_limit(cats.len(), "categories")?;
        let cats = cats
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                convert::category_from_wire(c, &format!("categories[{i}]")).map_err(violation)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let changed = self
            .ctx
            .store
            .upsert_categories(&cats, &who.actor())
            .await
            .map_err(ApiError::from)?;
        // this process sees its own registry change at once; others within the cache TTL
        self.ctx.directory.invalidate().await;
        Ok(Response::new(v1::UpsertCategoriesResponse {
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
        }))
    }

    async fn put_policy(
        &self,
        req: Request<v1::PutPolicyRequest>,
    ) -> Result<Response<v1::PutPolicyResponse>, Status> {
        let who = principal(&req)?;
        let wire = req
            .into_inner()
            .policy
            .ok_or_else(|| ApiError::invalid("policy", "required"))?;
        let policy = convert::policy_from_wire(wire).map_err(violation)?;
        if !who.covers(&policy.county_code.clone().into()) {
            return Err(ApiError::PermissionDenied(
                "the county is outside the caller's area".into(),
            )
            .into());
        }
        let (version, at) = self
            .ctx
            .store
            .put_policy(&policy, &who.actor())
            .await
            .map_err(ApiError::from)?;
        // this process sees its own registry change at once; others within the cache TTL
        self.ctx.directory.invalidate().await;
        info!(county = %policy.county_code, version, "policy stored");
        Ok(Response::new(v1::PutPolicyResponse {
            policy: Some(convert::policy_to_wire(&policy, version, at)),
        }))
    }

    async fn get_policy(
        &self,
        req: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::GetPolicyResponse>, Status> {
        principal(&req)?;
        let county = parse_county(&req.into_inner().county_code)?;
        let (p, v, at) = self
            .ctx
            .store
            .get_policy(&county)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no policy for county {county}")))?;
        Ok(Response::new(v1::GetPolicyResponse {
            policy: Some(convert::policy_to_wire(&p, v, at)),
        }))
    }

    async fn resolve_route(
        &self,
        req: Request<v1::ResolveRouteRequest>,
    ) -> Result<Response<v1::ResolveRouteResponse>, Status> {
        principal(&req)?;
        let r = req.into_inner();
        let now = self.ctx.clock.now();
        let at = convert::opt_time(r.at.as_ref(), "at")
            .map_err(violation)?
            .unwrap_or(now);
        let grid = RegionCode::parse_at(&r.grid_code, Level::Grid)
            .map_err(|e| ApiError::invalid("grid_code", e.to_string()))?;
        let code = domain::policy::CategoryCode::parse(&r.category)
            .map_err(|e| ApiError::invalid("category", e))?;
        let severity = convert::severity_from_wire(r.severity, "severity").map_err(violation)?;
        let store = &self.ctx.store;
        if store
            .get_unit(grid.as_str())
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::invalid("grid_code", "unknown grid").into());
        }
        let category = store
            .get_category(&code)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::invalid("category", "unknown category"))?;
        let county = grid.county().expect("a grid lies in a county");
        let (policy, _, _) = store
            .get_policy(&county)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::FailedPrecondition(format!("county {county} has no policy"))
            })?;
        let decision = policy.route(&category, severity);
        // the same choice the router makes: the policy's tier, or the nearest unit above it
        // that the registry holds
        let units = self.ctx.directory.units().await.map_err(ApiError::from)?;
        let (unit, tier) =
            domain::region::unit_taking(&grid, decision.tier, |r| units.contains(r.as_str()))
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(format!(
                        "no unit above grid {grid} in the registry"
                    ))
                })?;
        let limits = policy.limits(&category, decision.severity, tier);
        let accept_due = limits.accept_due(&policy.calendar, at);
        let mut reasons = decision.reasons;
        if tier == decision.tier {
            reasons.push(format!(
                "unit {unit} is the grid's {}",
                tier.as_str().to_lowercase()
            ));
        } else {
            reasons.push(format!(
                "the registry has no {} unit for the grid; unit {unit} is the nearest above it",
                decision.tier.as_str().to_lowercase()
            ));
        }
        Ok(Response::new(v1::ResolveRouteResponse {
            tier: convert::tier_to_wire(tier).into(),
            unit_code: unit.to_string(),
            lead_department: decision.lead.map(|u| u.to_string()).unwrap_or_default(),
            assisting_departments: decision.assisting.iter().map(ToString::to_string).collect(),
            accept_due_at: Some(convert::timestamp(accept_due)),
            handle_due_at: Some(convert::timestamp(
                limits.handle_due(&policy.calendar, accept_due),
            )),
            reasons: reasons
                .into_iter()
                .map(|r| r.trim_end().to_owned())
                .collect(),
            severity: convert::severity_to_wire(decision.severity).into(),
            admitted: decision.admitted,
        }))
    }

    async fn locate_point(
        &self,
        req: Request<v1::LocatePointRequest>,
    ) -> Result<Response<v1::LocatePointResponse>, Status> {
        principal(&req)?;
        let raw = req
            .into_inner()
            .location
            .as_ref()
            .map(convert::location_from_wire)
            .ok_or_else(|| ApiError::invalid("location", "required"))?;
        let p = raw.parse().map_err(ApiError::Invalid)?;
        let located = self.ctx.locate(p).await?;
        let grid = located.grid();
        let (inside, distance_m) = match &located {
            domain::area::Located::Inside { .. } => (true, 0.0),
            domain::area::Located::Near { distance_m, .. } => (false, *distance_m),
        };
        Ok(Response::new(v1::LocatePointResponse {
            grid_code: grid.to_string(),
            community_code: grid.parent().map(|c| c.to_string()).unwrap_or_default(),
            inside,
            distance_m,
        }))
    }
}

/// Each unit's boundary lies inside its parent's, where the parent has one: the parent as
/// this batch sets it, else as the registry holds it.
async fn check_inside_parents(ctx: &Ctx, units: &[domain::unit::Unit]) -> ApiResult<()> {
    use std::collections::HashMap;
    let in_batch: HashMap<&str, Option<&domain::area::Boundary>> = units
        .iter()
        .map(|u| (u.code.as_str(), u.boundary.as_ref()))
        .collect();
    let stored_parents: Vec<&str> = units
        .iter()
        .filter(|u| u.boundary.is_some())
        .filter_map(|u| u.parent_code.as_ref().map(UnitCode::as_str))
        .filter(|p| !in_batch.contains_key(p))
        .collect();
    let stored: HashMap<String, domain::area::Boundary> = if stored_parents.is_empty() {
        HashMap::new()
    } else {
        ctx.store
            .unit_boundaries(&stored_parents)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .collect()
    };
    let mut violations = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let (Some(b), Some(parent)) = (&u.boundary, &u.parent_code) else {
            continue;
        };
        let outer = match in_batch.get(parent.as_str()) {
            Some(in_batch) => *in_batch,
            None => stored.get(parent.as_str()),
        };
        if let Some(outer) = outer
            && !outer.covers(b)
        {
            violations.push(FieldViolation::new(
                format!("units[{i}].boundary"),
                format!("reaches outside the boundary of its parent {parent}"),
            ));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(violations))
    }
}

fn parse_county(s: &str) -> ApiResult<RegionCode> {
    RegionCode::parse_at(s, Level::County)
        .map_err(|e| ApiError::invalid("county_code", e.to_string()))
}
