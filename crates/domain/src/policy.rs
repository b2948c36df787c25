//! County routing policy and the category catalogue: where a case starts, which departments
//! handle it, and how long each tier has. The format is the seed file's (docs/seed-format.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{TimeLimit, WorkCalendar};
use crate::region::{Level, RegionCode, UnitCode};
use crate::{Severity, Tier};

/// A category code: two digits for a top-level category (大類), four for a sub-category (小類).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CategoryCode(String);

impl CategoryCode {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if (s.len() == 2 || s.len() == 4) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err("a category code has 2 or 4 digits")
        }
    }
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The top-level category of a sub-category.
    #[must_use]
    pub fn parent(&self) -> Option<CategoryCode> {
        (self.0.len() == 4).then(|| Self(self.0[..2].to_owned()))
    }
    /// This code, then its parent: the order in which rules are looked up.
    #[must_use]
    pub fn lineage(&self) -> Vec<CategoryCode> {
        std::iter::once(self.clone()).chain(self.parent()).collect()
    }
}

impl std::fmt::Display for CategoryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CategoryCode {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CategoryCode> for String {
    fn from(c: CategoryCode) -> String {
        c.0
    }
}

/// An entry of the category picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub code: CategoryCode,
    pub name: String,
    pub parent_code: Option<CategoryCode>,
    pub default_severity: Severity,
    pub accept_limit: TimeLimit,
    pub handle_limit: TimeLimit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentRule {
    pub category: CategoryCode,
    pub lead: UnitCode,
    #[serde(default)]
    pub assisting: Vec<UnitCode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaRule {
    pub tier: Tier,
    #[serde(default)]
    pub category: Option<CategoryCode>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub accept: Option<TimeLimit>,
    #[serde(default)]
    pub handle: Option<TimeLimit>,
}

/// 網格事項準入: the matters that may be pushed down to grid staff. A matter not on the list
/// never lands on a grid or a grid worker: it starts at `non_admitted_tier` (or higher, by its
/// severity or category), is never settled on the spot by the grid, and is never dispatched
/// down to a grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// Admitted categories; a top-level code admits its sub-categories.
    pub categories: std::collections::BTreeSet<CategoryCode>,
    /// Where a matter not on the list starts at the earliest.
    #[serde(default = "community")]
    pub non_admitted_tier: Tier,
}

fn community() -> Tier {
    Tier::Community
}

/// One county's routing policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub county_code: RegionCode,
    pub severity_tiers: BTreeMap<Severity, Tier>,
    #[serde(default)]
    pub category_tiers: BTreeMap<CategoryCode, Tier>,
    #[serde(default)]
    pub departments: Vec<DepartmentRule>,
    #[serde(default)]
    pub sla: Vec<SlaRule>,
    #[serde(default)]
    pub calendar: WorkCalendar,
    /// The county's admitted list; `None`: the county keeps none and every matter is admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Admission>,
    /// The county's rule for repeated reports; `None`: every report opens its own case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<crate::repeat::RepeatRule>,
}

/// Where a new case goes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub tier: Tier,
    pub severity: Severity,
    pub lead: Option<UnitCode>,
    pub assisting: Vec<UnitCode>,
    /// Whether grid staff may be given the matter (網格事項準入).
    pub admitted: bool,
    pub reasons: Vec<String>,
}

/// A policy that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    pub field: String,
    pub reason: String,
}

fn perr(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Policy {
    /// Checks the policy on its own (that named units and categories exist is the registry's
    /// business).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.county_code.level() != Level::County {
            return Err(perr("county_code", "must be a 6-digit county code"));
        }
        for s in Severity::ALL {
            let t = self
                .severity_tiers
                .get(s)
                .ok_or_else(|| perr("severity_tiers", format!("no tier for {s}")))?;
            if *t == Tier::Grid {
                return Err(perr("severity_tiers", "a case cannot start at the grid"));
            }
        }
        if self.category_tiers.values().any(|t| *t == Tier::Grid) {
            return Err(perr("category_tiers", "a case cannot start at the grid"));
        }
        for (i, d) in self.departments.iter().enumerate() {
            let f = format!("departments[{i}]");
            if !d.lead.is_department() || d.lead.county().as_ref() != Some(&self.county_code) {
                return Err(perr(f, "lead must be a department of this county"));
            }
            if d.assisting
                .iter()
                .any(|a| a == &d.lead || !a.is_department())
            {
                return Err(perr(f, "assisting units are other departments"));
            }
        }
        for (i, r) in self.sla.iter().enumerate() {
            let f = format!("sla[{i}]");
            if r.accept.is_none() && r.handle.is_none() {
                return Err(perr(f, "a rule sets accept, handle or both"));
            }
            for l in r.accept.iter().chain(r.handle.iter()) {
                l.validate().map_err(|e| perr(&f, e.to_string()))?;
            }
        }
        self.calendar
            .validate()
            .map_err(|e| perr("calendar", e.to_string()))?;
        if self
            .admission
            .as_ref()
            .is_some_and(|a| a.non_admitted_tier == Tier::Grid)
        {
            return Err(perr(
                "admission.non_admitted_tier",
                "a matter not admitted for grids cannot start at the grid",
            ));
        }
        if let Some(r) = &self.repeats {
            r.validate()?;
        }
        Ok(())
    }

    /// Whether grid staff may be given matters of `category` (網格事項準入): always, when the
    /// county keeps no list; else when the category or its parent is on it.
    #[must_use]
    pub fn admits(&self, category: &CategoryCode) -> bool {
        self.admission
            .as_ref()
            .is_none_or(|a| category.lineage().iter().any(|c| a.categories.contains(c)))
    }

    /// Why a grid may not be given a matter of `category`, naming the rule; `None` when it may.
    #[must_use]
    pub fn refuses_for_grid(&self, category: &CategoryCode) -> Option<String> {
        (!self.admits(category)).then(|| {
            format!(
                "網格事項準入: category {category} is not on county {}'s list of matters admitted \
                 for grid staff",
                self.county_code
            )
        })
    }

    /// The first tier and the departments of a new case. The starting tier is the more senior
    /// of the severity's tier and the category's: a category override can raise where a case
    /// starts (fires go to the county) but never lower a severe case below its severity.
    #[must_use]
    pub fn route(&self, category: &Category, severity: Option<Severity>) -> RouteDecision {
        let mut reasons = Vec::new();
        let severity = severity.unwrap_or_else(|| {
            reasons.push(format!(
                "severity {} is the default of category {}",
                category.default_severity, category.code
            ));
            category.default_severity
        });
        let by_severity = self
            .severity_tiers
            .get(&severity)
            .copied()
            .unwrap_or(Tier::Community);
        reasons.push(format!("severity {severity} starts at {by_severity}"));
        let mut tier = by_severity;
        if let Some((code, t)) = category
            .code
            .lineage()
            .into_iter()
            .find_map(|c| self.category_tiers.get(&c).map(|t| (c, *t)))
        {
            if t > tier {
                reasons.push(format!("category {code} starts at {t}"));
                tier = t;
            } else {
                reasons.push(format!(
                    "category {code} would start at {t}, below the severity's tier"
                ));
            }
        }
        let admitted = self.admits(&category.code);
        if let (false, Some(a)) = (admitted, &self.admission) {
            if a.non_admitted_tier > tier {
                reasons.push(format!(
                    "category {} is not admitted for grid staff (網格事項準入): it starts at {}",
                    category.code, a.non_admitted_tier
                ));
                tier = a.non_admitted_tier;
            } else {
                reasons.push(format!(
                    "category {} is not admitted for grid staff (網格事項準入)",
                    category.code
                ));
            }
        }
        let dept = category.code.lineage().into_iter().find_map(|c| {
            self.departments
                .iter()
                .find(|d| d.category == c)
                .map(|d| (c, d))
        });
        let (lead, assisting) = match dept {
            Some((c, d)) => {
                reasons.push(format!("departments for category {c}: lead {}", d.lead));
                (Some(d.lead.clone()), d.assisting.clone())
            }
            None => (None, Vec::new()),
        };
        RouteDecision {
            tier,
            severity,
            lead,
            assisting,
            admitted,
            reasons,
        }
    }

    /// The accept and handle limits of a case at `tier`. Each is looked up on its own, most
    /// specific first: a category+severity rule, a category rule (a sub-category's before its
    /// parent's), a severity rule, then the category's own limits (every category has them;
    /// the tier's default rule is for callers without a category, see [`Policy::tier_default`]).
    #[must_use]
    pub fn limits(&self, category: &Category, severity: Severity, tier: Tier) -> Limits {
        let lineage = category.code.lineage();
        let pick = |get: fn(&SlaRule) -> Option<TimeLimit>, own: TimeLimit| -> TimeLimit {
            let at_tier = || self.sla.iter().filter(|r| r.tier == tier);
            for c in &lineage {
                if let Some(l) = at_tier()
                    .filter(|r| r.category.as_ref() == Some(c) && r.severity == Some(severity))
                    .find_map(get)
                {
                    return l;
                }
            }
            for c in &lineage {
                if let Some(l) = at_tier()
                    .filter(|r| r.category.as_ref() == Some(c) && r.severity.is_none())
                    .find_map(get)
                {
                    return l;
                }
            }
            if let Some(l) = at_tier()
                .filter(|r| r.category.is_none() && r.severity == Some(severity))
                .find_map(get)
            {
                return l;
            }
            own
        };
        Limits {
            accept: pick(|r| r.accept, category.accept_limit),
            handle: pick(|r| r.handle, category.handle_limit),
        }
    }

    /// Limits for a unit at `tier` when the category is unknown to the catalogue: the tier's
    /// default rule (used for departments and callers without a category).
    #[must_use]
    pub fn tier_default(&self, tier: Tier) -> Option<Limits> {
        let r = self
            .sla
            .iter()
            .find(|r| r.tier == tier && r.category.is_none() && r.severity.is_none())?;
        Some(Limits {
            accept: r.accept?,
            handle: r.handle?,
        })
    }
}

/// The two clocks of an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub accept: TimeLimit,
    pub handle: TimeLimit,
}

impl Limits {
    #[must_use]
    pub fn accept_due(&self, cal: &WorkCalendar, from: DateTime<Utc>) -> DateTime<Utc> {
        self.accept.due_at(cal, from)
    }
    #[must_use]
    pub fn handle_due(&self, cal: &WorkCalendar, from: DateTime<Utc>) -> DateTime<Utc> {
        self.handle.due_at(cal, from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(code: &str, sev: Severity) -> Category {
        Category {
            code: CategoryCode::parse(code).unwrap(),
            name: "x".into(),
            parent_code: CategoryCode::parse(code).unwrap().parent(),
            default_severity: sev,
            accept_limit: TimeLimit::working(45),
            handle_limit: TimeLimit::working(240),
        }
    }

    fn policy() -> Policy {
        serde_json::from_value(serde_json::json!({
            "county_code": "360102",
            "severity_tiers": {"GENERAL": "COMMUNITY", "LARGER": "TOWNSHIP", "MAJOR": "COUNTY", "ESPECIALLY_MAJOR": "CITY"},
            "category_tiers": {"0601": "TOWNSHIP", "08": "COUNTY"},
            "departments": [
                {"category": "06", "lead": "360102-CGJ", "assisting": []},
                {"category": "0601", "lead": "360102-CGJ", "assisting": ["360102-ZJJ"]}
            ],
            "sla": [
                {"tier": "COMMUNITY", "accept": {"minutes": 60, "clock": "WORKING"}, "handle": {"minutes": 1260, "clock": "WORKING"}},
                {"tier": "COMMUNITY", "severity": "MAJOR", "accept": {"minutes": 30, "clock": "NATURAL"}},
                {"tier": "COMMUNITY", "category": "06", "handle": {"minutes": 600, "clock": "WORKING"}},
                {"tier": "COMMUNITY", "category": "0601", "severity": "LARGER", "accept": {"minutes": 20, "clock": "NATURAL"}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_policy_validates() {
        policy().validate().unwrap();
        let mut p = policy();
        p.severity_tiers.remove(&Severity::Major);
        assert!(p.validate().is_err());
        let mut p = policy();
        p.departments[0].lead = UnitCode::parse("360103-CGJ").unwrap();
        assert_eq!(p.validate().unwrap_err().field, "departments[0]");
    }

    #[test]
    fn matters_not_admitted_for_grids_start_higher_and_say_so() {
        let mut p = policy();
        assert!(
            p.admits(&CategoryCode::parse("0201").unwrap()),
            "no list: all admitted"
        );
        p.admission = Some(
            serde_json::from_value(serde_json::json!({
                "categories": ["05", "0303"], "non_admitted_tier": "TOWNSHIP"
            }))
            .unwrap(),
        );
        p.validate().unwrap();
        // a top-level code admits its sub-categories; a sub-category only itself
        assert!(p.admits(&CategoryCode::parse("0501").unwrap()));
        assert!(p.admits(&CategoryCode::parse("0303").unwrap()));
        assert!(!p.admits(&CategoryCode::parse("0301").unwrap()));
        let admitted = p.route(&cat("0501", Severity::General), None);
        assert!(admitted.admitted);
        assert_eq!(admitted.tier, Tier::Community);
        let not = p.route(&cat("0301", Severity::General), None);
        assert!(!not.admitted);
        assert_eq!(not.tier, Tier::Township);
        assert!(not.reasons.iter().any(|r| r.contains("網格事項準入")));
        // a severe matter keeps its own higher tier
        assert_eq!(
            p.route(&cat("0301", Severity::Major), None).tier,
            Tier::County
        );
        let rule = p
            .refuses_for_grid(&CategoryCode::parse("0301").unwrap())
            .unwrap();
        assert!(rule.contains("網格事項準入") && rule.contains("0301") && rule.contains("360102"));
        assert!(
            p.refuses_for_grid(&CategoryCode::parse("0502").unwrap())
                .is_none()
        );
        // the list never sends a matter to the grid itself
        p.admission.as_mut().unwrap().non_admitted_tier = Tier::Grid;
        assert_eq!(
            p.validate().unwrap_err().field,
            "admission.non_admitted_tier"
        );
    }

    #[test]
    fn routes_by_severity_and_category() {
        let p = policy();
        let r = p.route(&cat("0502", Severity::General), None);
        assert_eq!(r.tier, Tier::Community);
        assert_eq!(r.severity, Severity::General);
        assert!(r.lead.is_none());
        let r = p.route(&cat("0601", Severity::General), Some(Severity::General));
        assert_eq!(r.tier, Tier::Township);
        assert_eq!(r.lead.unwrap().as_str(), "360102-CGJ");
        assert_eq!(r.assisting.len(), 1, "the sub-category's own rule wins");
        let r = p.route(&cat("0603", Severity::General), None);
        assert!(r.assisting.is_empty(), "the parent's rule applies");
        assert_eq!(
            p.route(&cat("0801", Severity::Larger), None).tier,
            Tier::County
        );
        // an override never lowers a severe case
        let r = p.route(
            &cat("0601", Severity::General),
            Some(Severity::EspeciallyMajor),
        );
        assert_eq!(r.tier, Tier::City);
        assert!(r.reasons.iter().any(|x| x.contains("below")));
    }

    #[test]
    fn limits_most_specific_first() {
        let p = policy();
        let l = p.limits(
            &cat("0502", Severity::General),
            Severity::General,
            Tier::Community,
        );
        assert_eq!(l.accept, TimeLimit::working(45), "the category's own limit");
        let l = p.limits(
            &cat("0502", Severity::General),
            Severity::Major,
            Tier::Community,
        );
        assert_eq!(
            l.accept,
            TimeLimit::natural(30),
            "a severity rule beats the category"
        );
        let l = p.limits(
            &cat("0603", Severity::General),
            Severity::General,
            Tier::Community,
        );
        assert_eq!(
            l.handle,
            TimeLimit::working(600),
            "the parent category's rule"
        );
        let l = p.limits(
            &cat("0601", Severity::General),
            Severity::Larger,
            Tier::Community,
        );
        assert_eq!(l.accept, TimeLimit::natural(20));
        assert_eq!(
            l.handle,
            TimeLimit::working(600),
            "handle falls through on its own"
        );
        let l = p.limits(
            &cat("0601", Severity::General),
            Severity::Larger,
            Tier::Township,
        );
        assert_eq!(l.accept, TimeLimit::working(45), "rules are per tier");
        assert_eq!(
            p.tier_default(Tier::Community).unwrap().handle,
            TimeLimit::working(1260)
        );
        assert!(p.tier_default(Tier::City).is_none());
    }

    #[test]
    fn category_codes() {
        assert!(CategoryCode::parse("0").is_err());
        assert!(CategoryCode::parse("05a1").is_err());
        let c = CategoryCode::parse("0501").unwrap();
        assert_eq!(c.parent().unwrap().as_str(), "05");
        assert_eq!(c.lineage().len(), 2);
    }
}
