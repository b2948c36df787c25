//! Repeated reports: the same broken street lamp reported ten times is one case.
//!
//! A county's policy may keep a [`RepeatRule`]: a new report of the same category within
//! `distance_m` and `window_hours` of an open case is linked to that case as a repeat instead
//! of opening a new one, and a spot reported `recurrence.reports` times within
//! `recurrence.days` raises the case's severity or calls it up.
//!
//! Places are found by geohash: every case keeps the geohash cell of its point ([`spot`]), and
//! the candidates near a point are the cases in the cells that cover the circle around it
//! ([`cells_around`]), checked by their exact distance ([`nearest_open`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::case::{CaseState, Event, TransitionError};
use crate::geo::{LatLon, distance_m};
use crate::policy::PolicyError;
use crate::region::UnitCode;
use crate::{CaseId, CaseStatus, Severity};

/// Characters of a case's geohash cell: about 150 m by 150 m at the equator, 130 m east-west
/// in the south of China and 90 m in the north.
pub const SPOT_PRECISION: usize = 7;
/// The widest linking distance a policy may set: the cells around a point stay about a hundred.
pub const MAX_DISTANCE_M: u32 = 500;
/// The longest a case waits for its repeats, and the longest recurrence window.
pub const MAX_WINDOW_HOURS: u32 = 24 * 30;
pub const MAX_RECURRENCE_DAYS: u32 = 365;

/// What a recurring spot does to its open case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecurrenceAction {
    /// One severity level up (一般 → 較大 → 重大 → 特別重大).
    RaiseSeverity,
    /// To the tier above the unit holding it, as the holder's call-up would.
    CallUp,
}

/// The same spot reported `reports` times within `days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub reports: u32,
    pub days: u32,
    pub action: RecurrenceAction,
}

/// A county's rule for repeated reports, kept in its policy (versioned and audited with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatRule {
    /// How near a new report must be to an open case of the same category, in metres.
    pub distance_m: u32,
    /// How long after its report an open case takes repeats, in hours.
    pub window_hours: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
}

impl RepeatRule {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |field: &str, reason: String| PolicyError {
            field: format!("repeats.{field}"),
            reason,
        };
        if !(1..=MAX_DISTANCE_M).contains(&self.distance_m) {
            return Err(err(
                "distance_m",
                format!("must be 1 to {MAX_DISTANCE_M} metres"),
            ));
        }
        if !(1..=MAX_WINDOW_HOURS).contains(&self.window_hours) {
            return Err(err(
                "window_hours",
                format!("must be 1 to {MAX_WINDOW_HOURS} hours"),
            ));
        }
        if let Some(r) = &self.recurrence {
            if r.reports < 2 {
                return Err(err(
                    "recurrence.reports",
                    "a spot recurs from its second report on".into(),
                ));
            }
            if !(1..=MAX_RECURRENCE_DAYS).contains(&r.days) {
                return Err(err(
                    "recurrence.days",
                    format!("must be 1 to {MAX_RECURRENCE_DAYS} days"),
                ));
            }
        }
        Ok(())
    }

    /// The earliest report time a search around `now` needs: open cases within the window,
    /// and every report within the recurrence period.
    #[must_use]
    pub fn since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let window = now - Duration::hours(i64::from(self.window_hours));
        match &self.recurrence {
            Some(r) => window.min(now - Duration::days(i64::from(r.days))),
            None => window,
        }
    }
}

/// The geohash cell a point lies in, at [`SPOT_PRECISION`].
#[must_use]
pub fn spot(p: LatLon) -> String {
    geohash::encode(
        geohash::Coord {
            x: p.lon.clamp(-180.0, 180.0),
            y: p.lat.clamp(-90.0, 90.0),
        },
        SPOT_PRECISION,
    )
    .unwrap_or_default()
}

/// Every cell at [`SPOT_PRECISION`] that meets the box around the circle of `radius_m` about
/// `p`: a case within the radius lies in one of them.
#[must_use]
pub fn cells_around(p: LatLon, radius_m: u32) -> Vec<String> {
    const M_PER_DEG: f64 = 111_320.0;
    let r = f64::from(radius_m.min(MAX_DISTANCE_M));
    let dlat = r / M_PER_DEG;
    let dlon = r / (M_PER_DEG * p.lat.to_radians().cos().max(0.01));
    let (south, north) = ((p.lat - dlat).max(-90.0), (p.lat + dlat).min(90.0));
    let (west, east) = ((p.lon - dlon).max(-180.0), (p.lon + dlon).min(180.0));
    let mut cells = Vec::new();
    let mut row = spot(LatLon::new(south, west));
    // rows south to north, each west to east; the bounds keep a bad point from looping
    for _ in 0..64 {
        let Ok(first) = geohash::decode_bbox(&row) else {
            break;
        };
        let mut cell = row.clone();
        for _ in 0..64 {
            let Ok(b) = geohash::decode_bbox(&cell) else {
                break;
            };
            cells.push(cell.clone());
            if b.max().x >= east {
                break;
            }
            match geohash::neighbor(&cell, geohash::Direction::E) {
                Ok(next) => cell = next,
                Err(_) => break,
            }
        }
        if first.max().y >= north {
            break;
        }
        match geohash::neighbor(&row, geohash::Direction::N) {
            Ok(next) => row = next,
            Err(_) => break,
        }
    }
    cells
}

/// A case found near a new report.
#[derive(Debug, Clone, PartialEq)]
pub struct Nearby {
    pub case_id: CaseId,
    pub location: LatLon,
    pub reported_at: DateTime<Utc>,
    pub status: CaseStatus,
}

/// Whether a case still takes repeats: reported or in hand, not yet handled.
#[must_use]
pub fn takes_repeats(status: CaseStatus) -> bool {
    matches!(
        status,
        CaseStatus::Reported | CaseStatus::PendingAccept | CaseStatus::InProgress
    )
}

/// The open case a report at `p` repeats: the nearest within the rule's distance reported
/// within its window (the earliest of equally near ones), with its distance in whole metres.
#[must_use]
pub fn nearest_open(
    rule: &RepeatRule,
    p: LatLon,
    nearby: &[Nearby],
    now: DateTime<Utc>,
) -> Option<(CaseId, u32)> {
    let since = now - Duration::hours(i64::from(rule.window_hours));
    nearby
        .iter()
        .filter(|n| takes_repeats(n.status) && n.reported_at >= since)
        .map(|n| (n, distance_m(p, n.location)))
        .filter(|(_, d)| *d <= f64::from(rule.distance_m))
        .min_by(|(a, da), (b, db)| {
            da.total_cmp(db)
                .then(a.reported_at.cmp(&b.reported_at))
                .then(a.case_id.cmp(&b.case_id))
        })
        .map(|(n, d)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let metres = d.round() as u32;
            (n.case_id, metres)
        })
}

/// How many times the spot of a report at `p` has been reported within the recurrence period,
/// this report included: every report of the category within the rule's distance, whether its
/// case is open, closed or itself a repeat; voided reports do not count.
#[must_use]
pub fn reports_at_spot(rule: &RepeatRule, p: LatLon, nearby: &[Nearby], now: DateTime<Utc>) -> u32 {
    let Some(r) = &rule.recurrence else {
        return 1;
    };
    let since = now - Duration::days(i64::from(r.days));
    let earlier = nearby
        .iter()
        .filter(|n| n.status != CaseStatus::Rejected && n.reported_at >= since)
        .filter(|n| distance_m(p, n.location) <= f64::from(rule.distance_m))
        .count();
    u32::try_from(earlier).unwrap_or(u32::MAX).saturating_add(1)
}

/// What recurrence does to the open case now, if anything: once per case, when the spot's
/// reports reach the rule's count.
#[must_use]
pub fn recurrence_due(
    rule: &RepeatRule,
    spot_reports: u32,
    already: bool,
) -> Option<RecurrenceAction> {
    let r = rule.recurrence.as_ref()?;
    (!already && spot_reports >= r.reports).then_some(r.action)
}

/// One severity level up; the top level stays.
#[must_use]
pub fn raised(s: Severity) -> Severity {
    match s {
        Severity::General => Severity::Larger,
        Severity::Larger => Severity::Major,
        Severity::Major | Severity::EspeciallyMajor => Severity::EspeciallyMajor,
    }
}

/// Two cases after a merge or a split, each with the one event that changed it.
#[derive(Debug, Clone)]
pub struct Linked {
    pub case: (CaseState, Event),
    pub other: (CaseState, Event),
}

/// 合并: `unit` merges case `from` into case `into` (ids `from_id`, `into_id`). The unit must
/// have authority over both (their holder, or a region unit above), and `into` must still
/// take repeats; `into` then counts `from`'s reporters as its own.
pub fn merge(
    unit: &UnitCode,
    reason: &str,
    (from_id, from): (CaseId, &CaseState),
    (into_id, into): (CaseId, &CaseState),
    now: DateTime<Utc>,
) -> Result<Linked, TransitionError> {
    if from_id == into_id {
        return Err(TransitionError::Invalid {
            field: "into_case_id",
            reason: "a case cannot be merged into itself",
        });
    }
    if !takes_repeats(into.status) {
        return Err(TransitionError::Precondition(
            "the case to merge into is no longer open (reported, pending acceptance or in \
             progress)",
        ));
    }
    if !into.has_authority(unit) {
        return Err(TransitionError::NotYourTurn {
            event: "merged",
            unit: unit.to_string(),
        });
    }
    let merged = Event::Merged {
        unit: unit.clone(),
        into: into_id,
        reason: reason.to_owned(),
    };
    let case = from.apply(&merged, now)?;
    let added = Event::RepeatAdded {
        case: from_id,
        reports: from.reports,
    };
    let other = into.apply(&added, now)?;
    Ok(Linked {
        case: (case, merged),
        other: (other, added),
    })
}

/// 拆分: `unit` splits case `repeat` off the case it was linked into (`from`, id `from_id`):
/// it is REPORTED again, to be routed afresh, and `from` no longer counts its reporters. The
/// unit must have authority over `from`.
pub fn split(
    unit: &UnitCode,
    reason: &str,
    (repeat_id, repeat): (CaseId, &CaseState),
    (from_id, from): (CaseId, &CaseState),
    now: DateTime<Utc>,
) -> Result<Linked, TransitionError> {
    if repeat.merged_into != Some(from_id) {
        return Err(TransitionError::Precondition(
            "the case is not linked into another case",
        ));
    }
    if !from.has_authority(unit) && from.lead.as_ref() != Some(unit) {
        return Err(TransitionError::NotYourTurn {
            event: "split",
            unit: unit.to_string(),
        });
    }
    let split = Event::Split {
        unit: unit.clone(),
        reason: reason.to_owned(),
    };
    let case = repeat.apply(&split, now)?;
    let removed = Event::RepeatRemoved {
        case: repeat_id,
        reports: repeat.reports,
    };
    let other = from.apply(&removed, now)?;
    Ok(Linked {
        case: (case, split),
        other: (other, removed),
    })
}

#[cfg(test)]
mod tests;
