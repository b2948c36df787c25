//! Wire ⇄ domain conversions. A missing or malformed field is an error naming the field;
//! nothing past this module sees a prost struct. Times and enums are here; reports and cases
//! in [`report`], the registry (units, categories, policies) in [`registry`].

use chrono::{DateTime, Utc};
use domain::geo::Crs;
use domain::report::FieldViolation;
use domain::{CaseStatus, Severity, Tier, UnitKind};

use crate::v1;

mod registry;
mod report;
mod roster;

pub use registry::*;
pub use report::*;
pub use roster::*;

type Violations = Vec<FieldViolation>;

fn fv(field: impl Into<String>, d: impl Into<String>) -> FieldViolation {
    FieldViolation::new(field, d)
}
// ---- times ---------------------------------------------------------------------------------

#[must_use]
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A wire timestamp as a UTC time; `None` when it is out of range or malformed.
#[must_use]
pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.nanos).ok()?;
    DateTime::from_timestamp(t.seconds, nanos)
}

/// An optional wire timestamp; a present but malformed one is a violation of `field`.
pub fn opt_time(
    t: Option<&prost_types::Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    t.map(|t| from_timestamp(t).ok_or_else(|| fv(field, "not a valid timestamp")))
        .transpose()
}

// ---- enums ---------------------------------------------------------------------------------

#[must_use]
pub fn tier_to_wire(t: Tier) -> v1::Tier {
    match t {
        Tier::Grid => v1::Tier::Grid,
        Tier::Community => v1::Tier::Community,
        Tier::Township => v1::Tier::Township,
        Tier::County => v1::Tier::County,
        Tier::City => v1::Tier::City,
    }
}

/// `Ok(None)` for unspecified; an error for a number the contract does not know.
pub fn tier_from_wire(n: i32, field: &str) -> Result<Option<Tier>, FieldViolation> {
    match v1::Tier::try_from(n) {
        Ok(v1::Tier::Unspecified) => Ok(None),
        Ok(v1::Tier::Grid) => Ok(Some(Tier::Grid)),
        Ok(v1::Tier::Community) => Ok(Some(Tier::Community)),
        Ok(v1::Tier::Township) => Ok(Some(Tier::Township)),
        Ok(v1::Tier::County) => Ok(Some(Tier::County)),
        Ok(v1::Tier::City) => Ok(Some(Tier::City)),
        Err(_) => Err(fv(field, format!("unknown tier {n}"))),
    }
}

#[must_use]
pub fn severity_to_wire(s: Severity) -> v1::Severity {
    match s {
        Severity::General => v1::Severity::General,
        Severity::Larger => v1::Severity::Larger,
        Severity::Major => v1::Severity::Major,
        Severity::EspeciallyMajor => v1::Severity::EspeciallyMajor,
    }
}

pub fn severity_from_wire(n: i32, field: &str) -> Result<Option<Severity>, FieldViolation> {
    match v1::Severity::try_from(n) {
        Ok(v1::Severity::Unspecified) => Ok(None),
        Ok(v1::Severity::General) => Ok(Some(Severity::General)),
        Ok(v1::Severity::Larger) => Ok(Some(Severity::Larger)),
        Ok(v1::Severity::Major) => Ok(Some(Severity::Major)),
        Ok(v1::Severity::EspeciallyMajor) => Ok(Some(Severity::EspeciallyMajor)),
        Err(_) => Err(fv(field, format!("unknown severity {n}"))),
    }
}

#[must_use]
pub fn status_to_wire(s: CaseStatus) -> v1::CaseStatus {
    match s {
        CaseStatus::Reported => v1::CaseStatus::Reported,
        CaseStatus::PendingAccept => v1::CaseStatus::PendingAccept,
        CaseStatus::InProgress => v1::CaseStatus::InProgress,
        CaseStatus::PendingVerification => v1::CaseStatus::PendingVerification,
        CaseStatus::Closed => v1::CaseStatus::Closed,
        CaseStatus::Rejected => v1::CaseStatus::Rejected,
        CaseStatus::Merged => v1::CaseStatus::Merged,
    }
}

pub fn status_from_wire(n: i32, field: &str) -> Result<Option<CaseStatus>, FieldViolation> {
    match v1::CaseStatus::try_from(n) {
        Ok(v1::CaseStatus::Unspecified) => Ok(None),
        Ok(w) => Ok(CaseStatus::ALL
            .iter()
            .copied()
            .find(|s| status_to_wire(*s) == w)),
        Err(_) => Err(fv(field, format!("unknown status {n}"))),
    }
}

#[must_use]
pub fn kind_to_wire(k: UnitKind) -> v1::UnitKind {
    match k {
        UnitKind::Grid => v1::UnitKind::UnitGrid,
        UnitKind::Community => v1::UnitKind::UnitCommunity,
        UnitKind::Township => v1::UnitKind::UnitTownship,
        UnitKind::County => v1::UnitKind::UnitCounty,
        UnitKind::City => v1::UnitKind::UnitCity,
        UnitKind::Department => v1::UnitKind::UnitDepartment,
    }
}

pub fn kind_from_wire(n: i32, field: &str) -> Result<Option<UnitKind>, FieldViolation> {
    match v1::UnitKind::try_from(n) {
        Ok(v1::UnitKind::Unspecified) => Ok(None),
        Ok(w) => Ok(UnitKind::ALL
            .iter()
            .copied()
            .find(|k| kind_to_wire(*k) == w)),
        Err(_) => Err(fv(field, format!("unknown unit kind {n}"))),
    }
}

#[must_use]
pub fn crs_to_wire(c: Crs) -> v1::Crs {
    match c {
        Crs::Wgs84 => v1::Crs::Wgs84,
        Crs::Gcj02 => v1::Crs::Gcj02,
        Crs::Bd09 => v1::Crs::Bd09,
        Crs::Cgcs2000 => v1::Crs::Cgcs2000,
    }
}

fn crs_from_wire(n: i32) -> Option<Crs> {
    match v1::Crs::try_from(n).ok()? {
        v1::Crs::Unspecified => None,
        v1::Crs::Wgs84 => Some(Crs::Wgs84),
        v1::Crs::Gcj02 => Some(Crs::Gcj02),
        v1::Crs::Bd09 => Some(Crs::Bd09),
        v1::Crs::Cgcs2000 => Some(Crs::Cgcs2000),
    }
}
