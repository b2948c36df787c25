//! Row types and their explicit conversions to domain types.

use chrono::{DateTime, Utc};
use domain::case::CaseState;
use domain::geo::{Crs, LatLon};
use domain::policy::CategoryCode;
use domain::record::{CaseRecord, EventRecord};
use domain::region::{RegionCode, UnitCode};
use uuid::Uuid;

use crate::StoreError;

/// The columns of `cases` that [`CaseRow`] reads, in its order.
pub(crate) const CASE_COLUMNS: &str = "case_id, case_number, county_code, grid_code, category, \
     severity, title, description, lat, lon, reported_crs, attachments, occurred_at, \
     reported_at, reported_by, state, updated_at, trace, source, source_ref";

#[derive(sqlx::FromRow)]
pub(crate) struct CaseRow {
    case_id: Uuid,
    case_number: String,
    county_code: String,
    grid_code: String,
    category: String,
    severity: String,
    title: String,
    description: String,
    lat: f64,
    lon: f64,
    reported_crs: String,
    attachments: serde_json::Value,
    occurred_at: DateTime<Utc>,
    reported_at: DateTime<Utc>,
    reported_by: String,
    state: serde_json::Value,
    updated_at: DateTime<Utc>,
    trace: serde_json::Value,
    source: String,
    source_ref: Option<String>,
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl TryFrom<CaseRow> for CaseRecord {
    type Error = StoreError;
    fn try_from(r: CaseRow) -> Result<Self, StoreError> {
        let crs: Crs = serde_json::from_value(serde_json::Value::String(r.reported_crs))
            .map_err(|e| corrupt("reported_crs", e))?;
        Ok(CaseRecord {
            case_id: r.case_id.into(),
            case_number: r.case_number,
            county: RegionCode::parse(&r.county_code).map_err(|e| corrupt("county_code", e))?,
            grid: RegionCode::parse(&r.grid_code).map_err(|e| corrupt("grid_code", e))?,
            category: CategoryCode::parse(&r.category).map_err(|e| corrupt("category", e))?,
            severity: r.severity.parse().map_err(|e| corrupt("severity", e))?,
            title: r.title,
            description: r.description,
            location: LatLon {
                lat: r.lat,
                lon: r.lon,
            },
            reported_crs: crs,
            attachments: serde_json::from_value(r.attachments)
                .map_err(|e| corrupt("attachments", e))?,
            occurred_at: r.occurred_at,
            reported_at: r.reported_at,
            reported_by: r.reported_by,
            source: domain::source::Source {
                kind: domain::source::SourceKind::parse(&r.source)
                    .ok_or_else(|| corrupt("source", &r.source))?,
                reference: r.source_ref,
            },
            state: serde_json::from_value::<CaseState>(r.state).map_err(|e| corrupt("state", e))?,
            updated_at: r.updated_at,
            trace: serde_json::from_value(r.trace).unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    case_id: Uuid,
    version: i64,
    event_type: String,
    data: serde_json::Value,
    actor: String,
    actor_unit: Option<String>,
    recorded_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(EventRecord {
            case_id: r.case_id.into(),
            version: u64::try_from(r.version).map_err(|e| corrupt("version", e))?,
            event_type: r.event_type,
            data: r.data,
            actor: r.actor,
            actor_unit: r
                .actor_unit
                .map(|u| UnitCode::parse(&u))
                .transpose()
                .map_err(|e| corrupt("actor_unit", e))?,
            recorded_at: r.recorded_at,
        })
    }
}
