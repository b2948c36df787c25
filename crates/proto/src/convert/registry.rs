//! The registry on the wire: units, categories, time limits and county policies.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::Tier;
use domain::area::Boundary;
use domain::calendar::{Clock, TimeLimit, WorkCalendar, WorkPeriod};
use domain::policy::{Category, CategoryCode, DepartmentRule, Policy, SlaRule};
use domain::region::{RegionCode, UnitCode};
use domain::repeat::{Recurrence, RecurrenceAction, RepeatRule};
use domain::report::FieldViolation;
use domain::unit::Unit;

use super::{
    fv, kind_from_wire, kind_to_wire, severity_from_wire, severity_to_wire, tier_from_wire,
    tier_to_wire, timestamp,
};
use crate::v1;

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
        boundary: u
            .boundary
            .as_ref()
            .map(|b| b.to_geojson().to_string())
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
    let boundary = if u.boundary.is_empty() {
        None
    } else {
        Some(
            Boundary::from_geojson_text(&u.boundary)
                .map_err(|e| fv(format!("{field}.boundary"), e))?,
        )
    };
    Ok(Unit {
        code,
        name: u.name,
        kind,
        parent_code,
        boundary,
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
        admission: p.admission.as_ref().map(|a| v1::MatterAdmission {
            categories: a.categories.iter().map(ToString::to_string).collect(),
            non_admitted_tier: tier_to_wire(a.non_admitted_tier).into(),
        }),
        repeats: p.repeats.as_ref().map(repeat_rule_to_wire),
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
    let admission = match p.admission {
        None => None,
        Some(a) => Some(domain::policy::Admission {
            categories: a
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| category_code(c, &format!("policy.admission.categories[{i}]")))
                .collect::<Result<_, _>>()?,
            non_admitted_tier: if a.non_admitted_tier == 0 {
                Tier::Community
            } else {
                req_tier(a.non_admitted_tier, "policy.admission.non_admitted_tier")?
            },
        }),
    };
    let repeats = p.repeats.map(repeat_rule).transpose()?;
    Ok(Policy {
        county_code,
        severity_tiers,
        category_tiers,
        departments,
        sla,
        calendar,
        admission,
        repeats,
    })
}

fn repeat_rule_to_wire(r: &RepeatRule) -> v1::RepeatRule {
    let (reports, days, action) = match &r.recurrence {
        None => (0, 0, v1::RecurrenceAction::Unspecified),
        Some(c) => (
            c.reports,
            c.days,
            match c.action {
                RecurrenceAction::RaiseSeverity => v1::RecurrenceAction::RaiseSeverity,
                RecurrenceAction::CallUp => v1::RecurrenceAction::CallUp,
            },
        ),
    };
    v1::RepeatRule {
        distance_m: r.distance_m,
        window_hours: r.window_hours,
        recurrence_reports: reports,
        recurrence_days: days,
        recurrence_action: action.into(),
    }
}

/// A repeat rule from the wire: recurrence is set by its count, and then needs its action.
fn repeat_rule(r: v1::RepeatRule) -> Result<RepeatRule, FieldViolation> {
    let recurrence = if r.recurrence_reports == 0 && r.recurrence_days == 0 {
        None
    } else {
        let action = match v1::RecurrenceAction::try_from(r.recurrence_action) {
            Ok(v1::RecurrenceAction::RaiseSeverity) => RecurrenceAction::RaiseSeverity,
            Ok(v1::RecurrenceAction::CallUp) => RecurrenceAction::CallUp,
            _ => {
                return Err(FieldViolation::new(
                    "policy.repeats.recurrence_action",
                    "RAISE_SEVERITY or CALL_UP when recurrence is set",
                ));
            }
        };
        Some(Recurrence {
            reports: r.recurrence_reports,
            days: r.recurrence_days,
            action,
        })
    };
    Ok(RepeatRule {
        distance_m: r.distance_m,
        window_hours: r.window_hours,
        recurrence,
    })
}
