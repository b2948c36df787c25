//! GB/T 30428 performance indicators (考核指标) of a region and period, computed from case
//! event logs: closure, on-time closure, rework, accurate dispatch, self-handling,
//! satisfaction, returns, bad reviews, acceptance and handling times, a composite score and
//! its grade. `docs/indicators.md` states every formula and which events each count reads.
//!
//! Pure: the store loads, for every case that can count, its events recorded before the end
//! of the period (in version order); [`Tally`] folds them. A case's figures go to the case
//! total once, and to the units that did what is counted (the reporting grid, the lead, the
//! dispatcher, the returning, accepting or submitting unit), once per unit.

use std::collections::HashMap;
use std::fmt;
use std::ops::AddAssign;

use chrono::{DateTime, Utc};

use crate::Tier;
use crate::calendar::WorkCalendar;
use crate::case::Event;
use crate::region::UnitCode;

/// The period `[from, to)` on the time an event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    #[must_use]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// The counts behind the indicators. Case counts are of distinct cases; `returns`,
/// `accepted` and `results` count events. Waiting and handling times are kept as sums of
/// working minutes, so that averages over several units are weighted by their counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub reported: u64,
    /// Of `reported`: matters not admitted for grid staff (網格事項準入).
    pub non_admitted: u64,
    /// Reports in the period linked to an open case as repeats: not in `reported` or any
    /// other count, since they are not cases of their own.
    pub repeats: u64,
    pub self_handled: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    pub overdue_unclosed: u64,
    pub reworked: u64,
    pub dispatched: u64,
    pub redispatched: u64,
    pub returns: u64,
    pub rated: u64,
    pub satisfied: u64,
    pub bad_reviews: u64,
    pub accepted: u64,
    /// Sum over `accepted` of the working minutes each acceptance waited.
    pub accept_minutes: i64,
    pub results: u64,
    /// Sum over `results` of the working minutes each result took.
    pub handle_minutes: i64,
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, o: &Counts) {
        self.reported += o.reported;
        self.non_admitted += o.non_admitted;
        self.repeats += o.repeats;
        self.self_handled += o.self_handled;
        self.closed += o.closed;
        self.closed_on_time += o.closed_on_time;
        self.overdue_unclosed += o.overdue_unclosed;
        self.reworked += o.reworked;
        self.dispatched += o.dispatched;
        self.redispatched += o.redispatched;
        self.returns += o.returns;
        self.rated += o.rated;
        self.satisfied += o.satisfied;
        self.bad_reviews += o.bad_reviews;
        self.accepted += o.accepted;
        self.accept_minutes += o.accept_minutes;
        self.results += o.results;
        self.handle_minutes += o.handle_minutes;
    }
}

/// A (≥ 90), B (≥ 75), C (≥ 60), D (≥ 40), E: of the composite score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grade {
    A,
    B,
    C,
    D,
    E,
}

impl Grade {
    /// A score within 1e-9 of a threshold reaches it, so that floating-point noise in a
    /// score of exactly 75 does not drop it a grade.
    #[must_use]
    pub fn of(score: f64) -> Grade {
        let s = score + 1e-9;
        if s >= 90.0 {
            Grade::A
        } else if s >= 75.0 {
            Grade::B
        } else if s >= 60.0 {
            Grade::C
        } else if s >= 40.0 {
            Grade::D
        } else {
            Grade::E
        }
    }

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::E => "E",
        }
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The indicators of one set of counts: rates in percent (0 when the denominator is 0),
/// averages in working hours (0 when nothing was counted), the score and its grade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Indicators {
    pub counts: Counts,
    /// 應結案數 = closed + overdue not closed.
    pub due_to_close: u64,
    pub closure_rate: f64,
    pub on_time_closure_rate: f64,
    pub rework_rate: f64,
    pub accurate_dispatch_rate: f64,
    pub self_handled_rate: f64,
    pub satisfaction_rate: f64,
    pub return_rate: f64,
    pub bad_review_rate: f64,
    pub avg_accept_hours: f64,
    pub avg_handle_hours: f64,
    pub score: f64,
    pub grade: Grade,
}

/// `n / d` in percent; 0 when `d` is 0.
#[must_use]
#[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
pub fn percent(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 * 100.0 / d as f64
    }
}

/// Mean of `minutes` over `n` items, in hours; 0 when `n` is 0.
#[allow(clippy::cast_precision_loss)] // minutes and counts stay far below 2^52
fn mean_hours(minutes: i64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        minutes as f64 / n as f64 / 60.0
    }
}

impl Indicators {
    #[must_use]
    pub fn from_counts(c: Counts) -> Indicators {
        let due = c.closed + c.overdue_unclosed;
        let on_time = percent(c.closed_on_time, due);
        let rework = percent(c.reworked, due);
        let accurate = percent(c.dispatched.saturating_sub(c.redispatched), c.dispatched);
        let satisfaction = percent(c.satisfied, c.rated);
        // Integer weights (4, 2, 2, 2 for 0.4, 0.2, 0.2, 0.2) keep the renormalisation
        // exact: 60 / 0.8 in floating point is not 75.
        let mut parts: Vec<(u32, f64)> = Vec::with_capacity(4);
        if due > 0 {
            parts.push((4, on_time));
            parts.push((2, (100.0 - rework).max(0.0)));
        }
        if c.dispatched > 0 {
            parts.push((2, accurate));
        }
        if c.rated > 0 {
            parts.push((2, satisfaction));
        }
        let weight: u32 = parts.iter().map(|(w, _)| w).sum();
        let score = if weight == 0 {
            0.0
        } else {
            parts.iter().map(|(w, v)| f64::from(*w) * v).sum::<f64>() / f64::from(weight)
        };
        Indicators {
            counts: c,
            due_to_close: due,
            closure_rate: percent(c.closed, due),
            on_time_closure_rate: on_time,
            rework_rate: rework,
            accurate_dispatch_rate: accurate,
            self_handled_rate: percent(c.self_handled, c.reported),
            satisfaction_rate: satisfaction,
            return_rate: percent(c.returns, c.reported),
            bad_review_rate: percent(c.bad_reviews, c.rated),
            avg_accept_hours: mean_hours(c.accept_minutes, c.accepted),
            avg_handle_hours: mean_hours(c.handle_minutes, c.results),
            score,
            grade: Grade::of(score),
        }
    }
}

/// One case as the indicators read it: its grid, the working calendar of its county, and its
/// events recorded before the end of the period, in version order. Events recorded at or
/// after the end are ignored.
#[derive(Debug, Clone, Copy)]
pub struct CaseLog<'a> {
    pub grid: &'a UnitCode,
    pub calendar: &'a WorkCalendar,
    pub events: &'a [(DateTime<Utc>, Event)],
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnitIndicators {
    pub unit: UnitCode,
    /// The unit's tier (a department's is its county's); `None` for a province code.
    pub tier: Option<Tier>,
    pub indicators: Indicators,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierIndicators {
    pub tier: Tier,
    pub indicators: Indicators,
}

/// The answer: over cases, per unit (sorted by code), per tier (bottom up).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub total: Indicators,
    pub units: Vec<UnitIndicators>,
    pub tiers: Vec<TierIndicators>,
}

/// Folds cases one at a time; [`Tally::finish`] computes the indicators.
#[derive(Debug, Clone)]
pub struct Tally {
    period: Period,
    total: Counts,
    units: HashMap<UnitCode, Counts>,
}

impl Tally {
    #[must_use]
    pub fn new(period: Period) -> Tally {
        Tally {
            period,
            total: Counts::default(),
            units: HashMap::new(),
        }
    }

    #[must_use]
    pub fn period(&self) -> Period {
        self.period
    }

    pub fn add(&mut self, log: CaseLog<'_>) {
        let m = case_marks(self.period, log);
        m.total.add_to(&mut self.total);
        for (unit, marks) in &m.units {
            let c = match self.units.get_mut(*unit) {
                Some(c) => c,
                None => self.units.entry((*unit).clone()).or_default(),
            };
            marks.add_to(c);
        }
    }

    #[must_use]
    pub fn finish(self) -> Report {
        let mut units: Vec<(UnitCode, Counts)> = self.units.into_iter().collect();
        units.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tiers: Vec<(Tier, Counts)> = Vec::new();
        for (unit, c) in &units {
            let Some(tier) = unit.tier() else { continue };
            match tiers.iter_mut().find(|(t, _)| *t == tier) {
                Some((_, sum)) => *sum += c,
                None => tiers.push((tier, *c)),
            }
        }
        tiers.sort_by_key(|(t, _)| *t);
        Report {
            total: Indicators::from_counts(self.total),
            units: units
                .into_iter()
                .map(|(unit, c)| UnitIndicators {
                    tier: unit.tier(),
                    unit,
                    indicators: Indicators::from_counts(c),
                })
                .collect(),
            tiers: tiers
                .into_iter()
                .map(|(tier, c)| TierIndicators {
                    tier,
                    indicators: Indicators::from_counts(c),
                })
                .collect(),
        }
    }
}

/// The indicators of `cases` over `period`.
pub fn compute<'a>(period: Period, cases: impl IntoIterator<Item = CaseLog<'a>>) -> Report {
    let mut tally = Tally::new(period);
    for c in cases {
        tally.add(c);
    }
    tally.finish()
}

mod marks;

use marks::case_marks;

#[cfg(test)]
mod tests;
