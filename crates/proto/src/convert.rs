//! Wire ⇄ domain conversions. A missing or malformed field is an error naming the field;
//! nothing past this module sees a prost struct.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::calendar::{Clock, TimeLimit, WorkCalendar, WorkPeriod};
use domain::geo::Crs;
use domain::policy::{Category, CategoryCode, DepartmentRule, Policy, SlaRule};
use domain::record::{CaseRecord, EventRecord};
use domain::region::{RegionCode, UnitCode};
use domain::report::{Attachment, FieldViolation, RawLocation, RawReport};
use domain::source::{Contact, SourceKind};
use domain::unit::Unit;
use domain::{CaseStatus, Severity, Tier, UnitKind};

use crate::v1;

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

/// `Ok(None)` for unspecified; `Err` for a number this version does not know.
pub fn source_from_wire(n: i32) -> Result<Option<SourceKind>, i32> {
    match v1::ReportSource::try_from(n) {
        Ok(v1::ReportSource::Unspecified) => Ok(None),
        Ok(v1::ReportSource::GridWorker) => Ok(Some(SourceKind::GridWorker)),
        Ok(v1::ReportSource::Resident) => Ok(Some(SourceKind::Resident)),
        Ok(v1::ReportSource::Hotline12345) => Ok(Some(SourceKind::Hotline12345)),
        Ok(v1::ReportSource::OtherSystem) => Ok(Some(SourceKind::OtherSystem)),
        Err(_) => Err(n),
    }
}

#[must_use]
pub fn source_to_wire(k: SourceKind) -> v1::ReportSource {
    match k {
        SourceKind::GridWorker => v1::ReportSource::GridWorker,
        SourceKind::Resident => v1::ReportSource::Resident,
        SourceKind::Hotline12345 => v1::ReportSource::Hotline12345,
        SourceKind::OtherSystem => v1::ReportSource::OtherSystem,
    }
}

/// A contact for the wire; `masked` says which form it is.
#[must_use]
pub fn reporter_to_wire(c: &Contact, masked: bool) -> v1::Reporter {
    v1::Reporter {
        name: c.name.clone(),
        phone: c.phone.clone(),
        id_number: c.id_number.clone(),
        email: c.email.clone(),
        masked,
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

// ---- reports -------------------------------------------------------------------------------

/// The wire report as unchecked domain input; [`domain::report::NewReport::parse`] checks it.
/// Only a malformed timestamp is reported here, since the domain never sees wire timestamps.
pub fn raw_report(r: v1::ReportEventRequest) -> Result<RawReport, Violations> {
    let mut v = Vec::new();
    let (severity, severity_unknown) = match severity_from_wire(r.severity, "severity") {
        Ok(s) => (s, None),
        Err(_) => (None, Some(r.severity)),
    };
    let occurred_at = match opt_time(r.occurred_at.as_ref(), "occurred_at") {
        Ok(t) => t,
        Err(e) => {
            v.push(e);
            None
        }
    };
    if !v.is_empty() {
        return Err(v);
    }
    let (source, source_unknown) = match source_from_wire(r.source) {
        Ok(s) => (s, None),
        Err(n) => (None, Some(n)),
    };
    let reporter = r.reporter.map_or_else(Contact::default, |c| Contact {
        name: c.name,
        phone: c.phone,
        id_number: c.id_number,
        email: c.email,
    });
    Ok(RawReport {
        source,
        source_unknown,
        source_ref: r.source_ref,
        reporter,
        idempotency_key: r.idempotency_key,
        grid_code: r.grid_code,
        category: r.category,
        severity,
        severity_unknown,
        title: r.title,
        description: r.description,
        location: r.location.map(|l| RawLocation {
            lat: l.lat,
            lon: l.lon,
            crs: crs_from_wire(l.crs),
        }),
        occurred_at,
        self_handled: r.self_handled,
        attachments: r
            .attachments
            .into_iter()
            .map(attachment_from_wire)
            .collect(),
    })
}

fn attachment_from_wire(a: v1::Attachment) -> Attachment {
    Attachment {
        content_hash: a.content_hash.to_ascii_lowercase(),
        media_type: a.media_type,
        size: a.size,
        url: a.url,
    }
}

fn attachment_to_wire(a: &Attachment) -> v1::Attachment {
    v1::Attachment {
        content_hash: a.content_hash.clone(),
        media_type: a.media_type.clone(),
        size: a.size,
        url: a.url.clone(),
    }
}

// ---- cases ---------------------------------------------------------------------------------

#[must_use]
pub fn case_to_wire(c: &CaseRecord) -> v1::Case {
    let s = &c.state;
    v1::Case {
        case_id: c.case_id.to_string(),
        case_number: c.case_number.clone(),
        status: status_to_wire(s.status).into(),
        tier: tier_to_wire(s.tier).into(),
        grid_code: c.grid.to_string(),
        category: c.category.to_string(),
        severity: severity_to_wire(c.severity).into(),
        title: c.title.clone(),
        description: c.description.clone(),
        location: Some(v1::Location {
            lat: c.location.lat,
            lon: c.location.lon,
            crs: v1::Crs::Wgs84.into(),
        }),
        reported_at: Some(timestamp(c.reported_at)),
        lead_unit: s.lead.as_ref().map(ToString::to_string).unwrap_or_default(),
        assisting_units: s.parts.iter().map(|p| p.unit.to_string()).collect(),
        accept_due_at: s.accept_due_at.map(timestamp),
        handle_due_at: s.handle_due_at.map(timestamp),
        overdue: s.overdue,
        rework_count: s.rework_count,
        version: s.version,
        holder_unit: s
            .holder
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        occurred_at: Some(timestamp(c.occurred_at)),
        self_handled: s.self_handled,
        rating: s.rating.map_or(0, u32::from),
        attachments: c.attachments.iter().map(attachment_to_wire).collect(),
        updated_at: Some(timestamp(c.updated_at)),
        reported_by: c.reported_by.clone(),
        county_code: c.county.to_string(),
        source: source_to_wire(c.source.kind).into(),
        source_ref: c.source.reference.clone().unwrap_or_default(),
        reporter: None,
    }
}

#[must_use]
pub fn event_to_wire(e: &EventRecord) -> v1::CaseEvent {
    v1::CaseEvent {
        case_id: e.case_id.to_string(),
        version: e.version,
        event_type: e.event_type.clone(),
        recorded_at: Some(timestamp(e.recorded_at)),
        actor_unit: e
            .actor_unit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        actor: e.actor.clone(),
        data_json: e.data.to_string(),
    }
}

// ---- registry ------------------------------------------------------------------------------

#[must_use]
pub fn unit_to_wire(u: &Unit) -> v1::Unit {
    v1::Unit {
        code: u.code.to_string(),
        name: u.name.clone(),
        kind: kind_to_wire(u.kind).into(),
        parent_code: u
            .parent_code
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

pub fn unit_from_wire(u: v1::Unit, field: &str) -> Result<Unit, FieldViolation> {
    let code = UnitCode::parse(&u.code).map_err(|e| fv(format!("{field}.code"), e.to_string()))?;
    let kind = kind_from_wire(u.kind, &format!("{field}.kind"))?
        .ok_or_else(|| fv(format!("{field}.kind"), "required"))?;
    let parent_code = if u.parent_code.is_empty() {
        None
    } else {
        Some(
            UnitCode::parse(&u.parent_code)
                .map_err(|e| fv(format!("{field}.parent_code"), e.to_string()))?,
        )
    };
    Ok(Unit {
        code,
        name: u.name,
        kind,
        parent_code,
    })
}

fn limit_to_wire(l: TimeLimit) -> v1::TimeLimit {
    v1::TimeLimit {
        minutes: l.minutes,
        natural: l.clock == Clock::Natural,
    }
}

fn limit_from_wire(l: Option<v1::TimeLimit>, field: &str) -> Result<TimeLimit, FieldViolation> {
    let l = l.ok_or_else(|| fv(field, "required"))?;
    let limit = if l.natural {
        TimeLimit::natural(l.minutes)
    } else {
        TimeLimit::working(l.minutes)
    };
    limit.validate().map_err(|e| fv(field, e.to_string()))?;
    Ok(limit)
}

#[must_use]
pub fn category_to_wire(c: &Category) -> v1::Category {
    v1::Category {
        code: c.code.to_string(),
        name: c.name.clone(),
        parent_code: c
            .parent_code
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        default_severity: severity_to_wire(c.default_severity).into(),
        accept_limit: Some(limit_to_wire(c.accept_limit)),
        handle_limit: Some(limit_to_wire(c.handle_limit)),
    }
}

pub fn category_from_wire(c: v1::Category, field: &str) -> Result<Category, FieldViolation> {
    let code = CategoryCode::parse(&c.code).map_err(|e| fv(format!("{field}.code"), e))?;
    let parent_code = if c.parent_code.is_empty() {
        None
    } else {
        Some(
            CategoryCode::parse(&c.parent_code)
                .map_err(|e| fv(format!("{field}.parent_code"), e))?,
        )
    };
    let default_severity =
        severity_from_wire(c.default_severity, &format!("{field}.default_severity"))?
            .ok_or_else(|| fv(format!("{field}.default_severity"), "required"))?;
    Ok(Category {
        code,
        name: c.name,
        parent_code,
        default_severity,
        accept_limit: limit_from_wire(c.accept_limit, &format!("{field}.accept_limit"))?,
        handle_limit: limit_from_wire(c.handle_limit, &format!("{field}.handle_limit"))?,
    })
}

#[must_use]
pub fn policy_to_wire(p: &Policy, version: u64, updated_at: DateTime<Utc>) -> v1::Policy {
    v1::Policy {
        county_code: p.county_code.to_string(),
        severity_tiers: p
            .severity_tiers
            .iter()
            .map(|(s, t)| v1::SeverityTier {
                severity: severity_to_wire(*s).into(),
                tier: tier_to_wire(*t).into(),
            })
            .collect(),
        category_tiers: p
            .category_tiers
            .iter()
            .map(|(c, t)| v1::TierOverride {
                category: c.to_string(),
                tier: tier_to_wire(*t).into(),
            })
            .collect(),
        departments: p
            .departments
            .iter()
            .map(|d| v1::DepartmentRule {
                category: d.category.to_string(),
                lead: d.lead.to_string(),
                assisting: d.assisting.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        sla: p
            .sla
            .iter()
            .map(|r| v1::SlaRule {
                tier: tier_to_wire(r.tier).into(),
                category: r
                    .category
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                severity: r.severity.map_or(0, |s| severity_to_wire(s).into()),
                accept: r.accept.map(limit_to_wire),
                handle: r.handle.map(limit_to_wire),
            })
            .collect(),
        calendar: Some(v1::WorkCalendar {
            utc_offset_minutes: p.calendar.utc_offset_minutes,
            periods: p
                .calendar
                .periods
                .iter()
                .map(|w| v1::WorkPeriod {
                    start: w.start.format("%H:%M:%S").to_string(),
                    end: w.end.format("%H:%M:%S").to_string(),
                })
                .collect(),
            holidays: p
                .calendar
                .holidays
                .iter()
                .map(ToString::to_string)
                .collect(),
            makeup_workdays: p
                .calendar
                .makeup_workdays
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        version,
        updated_at: Some(timestamp(updated_at)),
    }
}

fn time_of_day(s: &str, field: &str) -> Result<NaiveTime, FieldViolation> {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map_err(|_| fv(field, "a local time HH:MM or HH:MM:SS"))
}

fn date(s: &str, field: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| fv(field, "a date YYYY-MM-DD"))
}

fn req_tier(n: i32, field: &str) -> Result<Tier, FieldViolation> {
    tier_from_wire(n, field)?.ok_or_else(|| fv(field, "required"))
}

fn category_code(s: &str, field: &str) -> Result<CategoryCode, FieldViolation> {
    CategoryCode::parse(s).map_err(|e| fv(field, e))
}

fn unit_code(s: &str, field: &str) -> Result<UnitCode, FieldViolation> {
    UnitCode::parse(s).map_err(|e| fv(field, e.to_string()))
}

/// The wire policy as a domain policy (its consistency is checked by `Policy::validate`).
pub fn policy_from_wire(p: v1::Policy) -> Result<Policy, FieldViolation> {
    let county_code =
        RegionCode::parse(&p.county_code).map_err(|e| fv("policy.county_code", e.to_string()))?;
    let mut severity_tiers = std::collections::BTreeMap::new();
    for (i, st) in p.severity_tiers.into_iter().enumerate() {
        let f = format!("policy.severity_tiers[{i}]");
        let s = severity_from_wire(st.severity, &format!("{f}.severity"))?
            .ok_or_else(|| fv(format!("{f}.severity"), "required"))?;
        severity_tiers.insert(s, req_tier(st.tier, &format!("{f}.tier"))?);
    }
    let mut category_tiers = std::collections::BTreeMap::new();
    for (i, ct) in p.category_tiers.into_iter().enumerate() {
        let f = format!("policy.category_tiers[{i}]");
        category_tiers.insert(
            category_code(&ct.category, &format!("{f}.category"))?,
            req_tier(ct.tier, &format!("{f}.tier"))?,
        );
    }
    let mut departments = Vec::new();
    for (i, d) in p.departments.into_iter().enumerate() {
        let f = format!("policy.departments[{i}]");
        departments.push(DepartmentRule {
            category: category_code(&d.category, &format!("{f}.category"))?,
            lead: unit_code(&d.lead, &format!("{f}.lead"))?,
            assisting: d
                .assisting
                .iter()
                .enumerate()
                .map(|(j, a)| unit_code(a, &format!("{f}.assisting[{j}]")))
                .collect::<Result<_, _>>()?,
        });
    }
    let mut sla = Vec::new();
    for (i, r) in p.sla.into_iter().enumerate() {
        let f = format!("policy.sla[{i}]");
        sla.push(SlaRule {
            tier: req_tier(r.tier, &format!("{f}.tier"))?,
            category: if r.category.is_empty() {
                None
            } else {
                Some(category_code(&r.category, &format!("{f}.category"))?)
            },
            severity: severity_from_wire(r.severity, &format!("{f}.severity"))?,
            accept: r
                .accept
                .map(|l| limit_from_wire(Some(l), &format!("{f}.accept")))
                .transpose()?,
            handle: r
                .handle
                .map(|l| limit_from_wire(Some(l), &format!("{f}.handle")))
                .transpose()?,
        });
    }
    let calendar = match p.calendar {
        None => WorkCalendar::default(),
        Some(c) => WorkCalendar {
            utc_offset_minutes: c.utc_offset_minutes,
            periods: c
                .periods
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let f = format!("policy.calendar.periods[{i}]");
                    Ok(WorkPeriod {
                        start: time_of_day(&w.start, &format!("{f}.start"))?,
                        end: time_of_day(&w.end, &format!("{f}.end"))?,
                    })
                })
                .collect::<Result<_, FieldViolation>>()?,
            holidays: c
                .holidays
                .iter()
                .enumerate()
                .map(|(i, d)| date(d, &format!("policy.calendar.holidays[{i}]")))
                .collect::<Result<_, _>>()?,
            makeup_workdays: c
                .makeup_workdays
                .iter()
                .enumerate()
                .map(|(i, d)| date(d, &format!("policy.calendar.makeup_workdays[{i}]")))
                .collect::<Result<_, _>>()?,
        },
    };
    Ok(Policy {
        county_code,
        severity_tiers,
        category_tiers,
        departments,
        sla,
        calendar,
    })
}
