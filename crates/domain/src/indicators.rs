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

/// What one case contributes to one party (the total or a unit): flags for the case counts,
/// so a case counts once however often it qualifies, and sums for the event counts.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    reported: bool,
    self_handled: bool,
    closed: bool,
    closed_on_time: bool,
    overdue_unclosed: bool,
    reworked: bool,
    dispatched: bool,
    redispatched: bool,
    rated: bool,
    satisfied: bool,
    bad_review: bool,
    returns: u64,
    accepted: u64,
    accept_minutes: i64,
    results: u64,
    handle_minutes: i64,
}

impl Marks {
    fn add_to(&self, c: &mut Counts) {
        c.reported += u64::from(self.reported);
        c.self_handled += u64::from(self.self_handled);
        c.closed += u64::from(self.closed);
        c.closed_on_time += u64::from(self.closed_on_time);
        c.overdue_unclosed += u64::from(self.overdue_unclosed);
        c.reworked += u64::from(self.reworked);
        c.dispatched += u64::from(self.dispatched);
        c.redispatched += u64::from(self.redispatched);
        c.rated += u64::from(self.rated);
        c.satisfied += u64::from(self.satisfied);
        c.bad_reviews += u64::from(self.bad_review);
        c.returns += self.returns;
        c.accepted += self.accepted;
        c.accept_minutes += self.accept_minutes;
        c.results += self.results;
        c.handle_minutes += self.handle_minutes;
    }
}

/// One case's marks: for the total, and for each unit it is attributed to.
struct CaseMarks<'a> {
    total: Marks,
    units: Vec<(&'a UnitCode, Marks)>,
}

impl<'a> CaseMarks<'a> {
    /// Applies `f` to the total's marks and to `unit`'s.
    fn mark(&mut self, unit: &'a UnitCode, f: impl Fn(&mut Marks)) {
        f(&mut self.total);
        let i = match self.units.iter().position(|(u, _)| *u == unit) {
            Some(i) => i,
            None => {
                self.units.push((unit, Marks::default()));
                self.units.len() - 1
            }
        };
        f(&mut self.units[i].1);
    }
}

/// The latest time something happened to a unit, for a handful of units.
#[derive(Default)]
struct LatestByUnit<'a>(Vec<(&'a UnitCode, DateTime<Utc>)>);

impl<'a> LatestByUnit<'a> {
    fn set(&mut self, unit: &'a UnitCode, t: DateTime<Utc>) {
        match self.0.iter_mut().find(|(u, _)| *u == unit) {
            Some(e) => e.1 = t,
            None => self.0.push((unit, t)),
        }
    }

    fn get(&self, unit: &UnitCode) -> Option<DateTime<Utc>> {
        self.0.iter().find(|(u, _)| *u == unit).map(|e| e.1)
    }
}

/// What a case contributes, read from its events (see `docs/indicators.md`).
fn case_marks<'a>(period: Period, log: CaseLog<'a>) -> CaseMarks<'a> {
    let mut m = CaseMarks {
        total: Marks::default(),
        units: Vec::new(),
    };
    let cal = log.calendar;
    let minutes = |a: DateTime<Utc>, b: DateTime<Utc>| cal.working_minutes_between(a, b);
    let Some(first_at) = log.events.first().map(|(t, _)| *t) else {
        return m;
    };
    // the unit that submitted the last result: the lead at a check, a closing or a rating
    let mut last_result: Option<&'a UnitCode> = None;
    // when each unit was last handed the case, and last accepted it
    let mut handed = LatestByUnit::default();
    let mut accepted = LatestByUnit::default();
    let mut last_failed_check: Option<DateTime<Utc>> = None;
    let mut last_overdue: Option<&'a UnitCode> = None;
    let mut ended = false;
    // (dispatcher, lead) of the case's first dispatch in the period
    let mut first_dispatch: Option<(&'a UnitCode, &'a UnitCode)> = None;

    for (t, e) in log.events {
        let t = *t;
        if t >= period.to {
            continue;
        }
        let inside = period.contains(t);
        match e {
            Event::Reported { grid, self_handled } => {
                if inside {
                    m.mark(grid, |k| {
                        k.reported = true;
                        k.self_handled |= *self_handled;
                    });
                }
                if *self_handled {
                    ended = true;
                    if inside {
                        // settled on the spot: closed by its grid, before any clock ran
                        let on_time = last_overdue.is_none();
                        m.mark(grid, |k| {
                            k.closed = true;
                            k.closed_on_time |= on_time;
                        });
                    }
                }
            }
            Event::Routed { unit, .. } => handed.set(unit, t),
            Event::CalledUp { to_unit, .. } | Event::Escalated { to_unit, .. } => {
                handed.set(to_unit, t);
            }
            Event::Returned { unit, to_unit, .. } => {
                if let Some(to) = to_unit {
                    handed.set(to, t);
                }
                if inside {
                    m.mark(unit, |k| k.returns += 1);
                }
            }
            Event::Dispatched {
                unit,
                lead,
                assisting,
                ..
            } => {
                handed.set(lead, t);
                for a in assisting {
                    handed.set(a, t);
                }
                if inside {
                    m.mark(unit, |k| k.dispatched = true);
                    match first_dispatch {
                        None => first_dispatch = Some((unit, lead)),
                        Some((first_unit, first_lead)) if first_lead != lead => {
                            m.mark(first_unit, |k| k.redispatched = true);
                        }
                        Some(_) => {}
                    }
                }
            }
            Event::Accepted { unit, .. } => {
                if inside {
                    let since = handed.get(unit).unwrap_or(first_at);
                    let waited = minutes(since, t);
                    m.mark(unit, |k| {
                        k.accepted += 1;
                        k.accept_minutes += waited;
                    });
                }
                accepted.set(unit, t);
            }
            Event::ResultSubmitted { unit, .. } => {
                if inside {
                    let since = match (accepted.get(unit), last_failed_check) {
                        (Some(a), Some(f)) => a.max(f),
                        (Some(a), None) => a,
                        (None, Some(f)) => f,
                        (None, None) => handed.get(unit).unwrap_or(first_at),
                    };
                    let took = minutes(since, t);
                    m.mark(unit, |k| {
                        k.results += 1;
                        k.handle_minutes += took;
                    });
                }
                last_result = Some(unit);
            }
            Event::Verified { passed, .. } => {
                let lead = last_result.unwrap_or(log.grid);
                if *passed {
                    ended = true;
                    if inside {
                        let on_time = last_overdue.is_none();
                        m.mark(lead, |k| {
                            k.closed = true;
                            k.closed_on_time |= on_time;
                        });
                    }
                } else {
                    last_failed_check = Some(t);
                    if inside {
                        m.mark(lead, |k| k.reworked = true);
                    }
                }
            }
            Event::Overdue { unit, .. } => last_overdue = Some(unit),
            Event::Rejected { .. } | Event::Merged { .. } => ended = true,
            Event::Rated { score, .. } => {
                if inside {
                    let lead = last_result.unwrap_or(log.grid);
                    m.mark(lead, |k| {
                        k.rated = true;
                        k.satisfied |= *score >= 4;
                        k.bad_review |= *score <= 2;
                    });
                }
            }
            Event::PartSubmitted { .. }
            | Event::ExtensionRequested { .. }
            | Event::ExtensionDecided { .. }
            | Event::Flagged { .. }
            | Event::Warned { .. } => {}
        }
    }
    if let (Some(unit), false) = (last_overdue, ended) {
        m.mark(unit, |k| k.overdue_unclosed = true);
    }
    m
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

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, TimeZone as _};

    use super::*;
    use crate::case::Clock;

    const G1: &str = "360102001001001";
    const G2: &str = "360102002001001";
    const C1: &str = "360102001001";
    const C2: &str = "360102002001";
    const T1: &str = "360102001";
    const CGJ: &str = "360102-CGJ";
    const ZJJ: &str = "360102-ZJJ";
    const GAFJ: &str = "360102-GAFJ";

    fn u(s: &str) -> UnitCode {
        UnitCode::parse(s).unwrap()
    }

    /// Local time (UTC+8) in 2027: 1 March is a Monday, 26 February the Friday before.
    fn at(month: u32, day: u32, h: u32, m: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(2027, month, day, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Monday 1 March 00:00 to Saturday 6 March 00:00.
    fn week() -> Period {
        Period {
            from: at(3, 1, 0, 0),
            to: at(3, 6, 0, 0),
        }
    }

    fn reported(grid: &str, self_handled: bool) -> Event {
        Event::Reported {
            grid: u(grid),
            self_handled,
        }
    }
    fn routed(unit: &str) -> Event {
        Event::Routed {
            unit: u(unit),
            tier: u(unit).tier().unwrap(),
            accept_due_at: at(12, 31, 0, 0),
            reason: "policy".into(),
        }
    }
    fn accepted(unit: &str) -> Event {
        Event::Accepted {
            unit: u(unit),
            handle_due_at: at(12, 31, 0, 0),
        }
    }
    fn called_up(unit: &str, to: &str) -> Event {
        Event::CalledUp {
            unit: u(unit),
            reason: "beyond us".into(),
            to_unit: u(to),
            to_tier: u(to).tier().unwrap(),
            accept_due_at: at(12, 31, 0, 0),
        }
    }
    fn escalated(from: &str, to: &str) -> Event {
        Event::Escalated {
            from_unit: u(from),
            to_unit: u(to),
            to_tier: u(to).tier().unwrap(),
            accept_due_at: at(12, 31, 0, 0),
        }
    }
    fn dispatched(by: &str, lead: &str, assisting: &[&str]) -> Event {
        Event::Dispatched {
            unit: u(by),
            lead: u(lead),
            lead_tier: u(lead).tier().unwrap(),
            assisting: assisting.iter().map(|a| u(a)).collect(),
            accept_due_at: at(12, 31, 0, 0),
            note: String::new(),
        }
    }
    fn returned(unit: &str, to: Option<&str>) -> Event {
        Event::Returned {
            unit: u(unit),
            reason: "not ours".into(),
            to_unit: to.map(u),
            to_tier: to.map(|t| u(t).tier().unwrap()),
            accept_due_at: to.map(|_| at(12, 31, 0, 0)),
        }
    }
    fn part(unit: &str) -> Event {
        Event::PartSubmitted {
            unit: u(unit),
            note: "done".into(),
        }
    }
    fn result(unit: &str) -> Event {
        Event::ResultSubmitted {
            unit: u(unit),
            note: "done".into(),
        }
    }
    fn verified(grid: &str, passed: bool) -> Event {
        Event::Verified {
            unit: u(grid),
            passed,
            note: "checked".into(),
            handle_due_at: (!passed).then(|| at(12, 31, 0, 0)),
        }
    }
    fn overdue(unit: &str) -> Event {
        Event::Overdue {
            unit: u(unit),
            clock: Clock::Handle,
        }
    }
    fn rated(score: u8) -> Event {
        Event::Rated {
            score,
            comment: String::new(),
        }
    }

    type Log = (&'static str, Vec<(DateTime<Utc>, Event)>);

    fn run(period: Period, cases: &[Log]) -> Report {
        let cal = WorkCalendar::default();
        let grids: Vec<UnitCode> = cases.iter().map(|(g, _)| u(g)).collect();
        compute(
            period,
            cases.iter().zip(&grids).map(|((_, events), grid)| CaseLog {
                grid,
                calendar: &cal,
                events,
            }),
        )
    }

    fn unit<'r>(r: &'r Report, code: &str) -> &'r Indicators {
        &r.units
            .iter()
            .find(|x| x.unit.as_str() == code)
            .unwrap_or_else(|| panic!("no unit {code} in {:?}", r.units))
            .indicators
    }

    fn tier(r: &Report, t: Tier) -> &Indicators {
        &r.tiers.iter().find(|x| x.tier == t).unwrap().indicators
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Reported on Friday before the period, accepted then; in the period: a result, a failed
    /// check, a second result, a passing check and a rating.
    fn straddling_rework() -> Log {
        (
            G1,
            vec![
                (at(2, 26, 9, 0), reported(G1, false)),
                (at(2, 26, 9, 0), routed(C1)),
                (at(2, 26, 9, 40), accepted(C1)),
                (at(3, 1, 9, 0), result(C1)),
                (at(3, 1, 10, 0), verified(G1, false)),
                (at(3, 1, 11, 0), result(C1)),
                (at(3, 1, 15, 0), verified(G1, true)),
                (at(3, 1, 16, 0), rated(5)),
            ],
        )
    }

    #[test]
    fn nothing_counted_is_all_zero_and_grade_e() {
        let r = run(week(), &[]);
        assert_eq!(r.total.counts, Counts::default());
        assert!(r.units.is_empty() && r.tiers.is_empty());
        assert_eq!(r.total.score, 0.0);
        assert_eq!(r.total.grade, Grade::E);
        assert_eq!(r.total.closure_rate, 0.0);
        assert_eq!(r.total.avg_accept_hours, 0.0);
    }

    #[test]
    fn a_case_reported_before_the_period_counts_its_closure_rework_and_rating_inside() {
        let r = run(week(), &[straddling_rework()]);
        let t = &r.total;
        assert_eq!(t.counts.reported, 0, "reported before the period");
        assert_eq!(t.counts.accepted, 0, "accepted before the period");
        assert_eq!(
            (t.counts.closed, t.counts.closed_on_time, t.counts.reworked),
            (1, 1, 1)
        );
        assert_eq!((t.counts.rated, t.counts.satisfied), (1, 1));
        // results: Fri 09:40 → Mon 09:00 is 140 + 210 + 30 = 380 working minutes; the rework
        // runs from the failed check at 10:00 to 11:00: 60
        assert_eq!((t.counts.results, t.counts.handle_minutes), (2, 440));
        assert!(close(t.avg_handle_hours, 440.0 / 2.0 / 60.0));
        assert_eq!(t.due_to_close, 1);
        assert!(close(t.rework_rate, 100.0));
        // everything goes to the community that led; the grid reported before the period
        assert_eq!(r.units.len(), 1);
        let c1 = unit(&r, C1);
        assert_eq!(c1.counts, t.counts);
        // score: on time 100 (4), 100 − rework 0 (2), satisfaction 100 (2) → 1000 / 8
        assert!(close(t.score, 75.0));
        assert_eq!(t.grade, Grade::B);
    }

    #[test]
    fn self_handled_cases_close_at_the_grid_on_the_spot() {
        let r = run(
            week(),
            &[(
                G2,
                vec![
                    (at(3, 2, 9, 0), reported(G2, true)),
                    (at(3, 2, 9, 30), rated(4)),
                ],
            )],
        );
        let g2 = unit(&r, G2);
        assert_eq!(g2.counts, r.total.counts);
        let c = g2.counts;
        assert_eq!(
            (c.reported, c.self_handled, c.closed, c.closed_on_time),
            (1, 1, 1, 1)
        );
        assert_eq!((c.rated, c.satisfied, c.bad_reviews), (1, 1, 0));
        assert!(close(g2.self_handled_rate, 100.0));
        assert!(close(g2.score, 100.0));
        assert_eq!(g2.grade, Grade::A);
        assert_eq!(r.tiers.len(), 1);
        assert_eq!(r.tiers[0].tier, Tier::Grid);
    }

    #[test]
    fn overdue_cases_not_closed_by_the_end_count_at_the_unit_of_the_latest_overdue() {
        let open = (
            G2,
            vec![
                (at(2, 22, 9, 0), reported(G2, false)),
                (at(2, 22, 9, 0), routed(C2)),
                (at(2, 22, 9, 20), accepted(C2)),
                (at(2, 25, 10, 0), overdue(C2)),
                (at(2, 26, 9, 0), called_up(C2, "360102002")),
                (at(2, 26, 9, 30), accepted("360102002")),
                (at(3, 3, 9, 0), overdue("360102002")),
                // closed after the period: still unclosed at its end
                (at(3, 8, 9, 0), result("360102002")),
                (at(3, 8, 10, 0), verified(G2, true)),
            ],
        );
        let rejected = (
            G2,
            vec![
                (at(2, 22, 9, 0), reported(G2, false)),
                (at(2, 22, 9, 0), routed(C2)),
                (at(2, 22, 9, 20), accepted(C2)),
                (at(2, 25, 10, 0), overdue(C2)),
                (
                    at(2, 26, 9, 0),
                    Event::Rejected {
                        unit: u(C2),
                        reason: "not a case".into(),
                    },
                ),
            ],
        );
        let closed_late = (
            G1,
            vec![
                (at(3, 1, 14, 10), reported(G1, false)),
                (at(3, 1, 14, 10), routed(C1)),
                (at(3, 1, 14, 40), accepted(C1)),
                (at(3, 4, 15, 0), overdue(C1)),
                (at(3, 4, 16, 0), result(C1)),
                (at(3, 5, 9, 0), verified(G1, true)),
            ],
        );
        let r = run(week(), &[open, rejected, closed_late]);
        let t = r.total.counts;
        assert_eq!(t.overdue_unclosed, 1);
        assert_eq!(
            (t.closed, t.closed_on_time),
            (1, 0),
            "closed after an overdue"
        );
        assert_eq!(r.total.due_to_close, 2);
        assert!(close(r.total.closure_rate, 50.0));
        assert!(close(r.total.on_time_closure_rate, 0.0));
        assert_eq!(unit(&r, "360102002").counts.overdue_unclosed, 1);
        assert_eq!(unit(&r, "360102002").counts.results, 0, "after the period");
        assert!(r.units.iter().all(|x| x.unit.as_str() != C2));
        let c1 = unit(&r, C1).counts;
        assert_eq!(
            (c1.closed, c1.closed_on_time, c1.overdue_unclosed),
            (1, 0, 0)
        );
        // Mon 14:40 → Thu 16:00: 170 + 420 + 420 + 210 + 120
        assert_eq!((c1.results, c1.handle_minutes), (1, 1340));
        assert_eq!((c1.accepted, c1.accept_minutes), (1, 30));
    }

    #[test]
    fn a_redispatch_to_another_lead_counts_once_at_the_first_dispatcher() {
        let log = (
            G1,
            vec![
                (at(3, 1, 9, 5), reported(G1, false)),
                (at(3, 1, 9, 5), routed(C1)),
                (at(3, 1, 9, 30), called_up(C1, T1)),
                (at(3, 1, 10, 5), dispatched(T1, CGJ, &[])),
                (at(3, 1, 10, 30), returned(CGJ, Some(T1))),
                (at(3, 1, 11, 5), dispatched(T1, ZJJ, &[GAFJ])),
                (at(3, 1, 11, 20), returned(GAFJ, None)),
                (at(3, 1, 11, 35), accepted(ZJJ)),
                (at(3, 1, 15, 5), result(ZJJ)),
                (at(3, 1, 16, 5), verified(G1, true)),
                (at(3, 1, 16, 35), rated(2)),
            ],
        );
        let same_lead = (
            G2,
            vec![
                (at(3, 1, 9, 0), reported(G2, false)),
                (at(3, 1, 9, 0), routed(C2)),
                (at(3, 1, 9, 10), dispatched(C2, CGJ, &[])),
                (at(3, 1, 9, 20), dispatched(C2, CGJ, &[ZJJ])),
            ],
        );
        let r = run(week(), &[log, same_lead]);
        let t = r.total.counts;
        assert_eq!((t.dispatched, t.redispatched), (2, 1));
        assert!(close(r.total.accurate_dispatch_rate, 50.0));
        assert_eq!(t.returns, 2, "returns are events");
        assert!(close(r.total.return_rate, 100.0));
        let t1 = unit(&r, T1).counts;
        assert_eq!((t1.dispatched, t1.redispatched), (1, 1));
        let c2 = unit(&r, C2).counts;
        assert_eq!((c2.dispatched, c2.redispatched), (1, 0));
        assert_eq!(unit(&r, CGJ).counts.returns, 1);
        assert_eq!(unit(&r, GAFJ).counts.returns, 1);
        let zjj = unit(&r, ZJJ);
        assert_eq!(
            (zjj.counts.closed, zjj.counts.rated, zjj.counts.bad_reviews),
            (1, 1, 1)
        );
        // waited from the second dispatch (11:05) to 11:35; handled 11:35 → 15:05 with the
        // lunch break left out: 25 + 65
        assert_eq!((zjj.counts.accepted, zjj.counts.accept_minutes), (1, 30));
        assert_eq!((zjj.counts.results, zjj.counts.handle_minutes), (1, 90));
        assert!(close(zjj.bad_review_rate, 100.0));
        // on time 100 (4), 100 − rework 0 → 100 (2), satisfaction 0 (2): 600 / 8 = 75
        assert!(close(zjj.score, 75.0));
        assert_eq!(zjj.grade, Grade::B);
    }

    #[test]
    fn acceptance_waits_from_the_latest_hand_over_in_working_minutes() {
        let log = (
            G1,
            vec![
                // Friday 17:00: routed; escalated on Monday 08:45 to the township
                (at(2, 26, 17, 0), reported(G1, false)),
                (at(2, 26, 17, 0), routed(C1)),
                (at(3, 1, 8, 45), escalated(C1, T1)),
                (at(3, 1, 9, 15), accepted(T1)),
                (at(3, 1, 9, 30), dispatched(T1, CGJ, &[ZJJ])),
                // an assisting unit reports in for its part: also an acceptance
                (at(3, 1, 11, 30), accepted(ZJJ)),
                (at(3, 1, 14, 30), accepted(CGJ)),
                (at(3, 1, 15, 0), part(ZJJ)),
            ],
        );
        let r = run(week(), &[log]);
        assert_eq!(unit(&r, T1).counts.accept_minutes, 30);
        assert_eq!(unit(&r, ZJJ).counts.accept_minutes, 120);
        // 09:30 → 12:00 is 150, 14:00 → 14:30 is 30
        assert_eq!(unit(&r, CGJ).counts.accept_minutes, 180);
        let t = r.total.counts;
        assert_eq!((t.accepted, t.accept_minutes), (3, 330));
        assert!(close(r.total.avg_accept_hours, 330.0 / 3.0 / 60.0));
        assert_eq!(t.results, 0, "a part is not a result");
        // departments are at the county tier
        let county = tier(&r, Tier::County);
        assert_eq!(
            (county.counts.accepted, county.counts.accept_minutes),
            (2, 300)
        );
        assert!(close(county.avg_accept_hours, 2.5));
    }

    #[test]
    fn events_after_the_end_are_ignored_and_before_the_start_only_inform() {
        let log = (
            G1,
            vec![
                (at(3, 5, 10, 0), reported(G1, false)),
                (at(3, 5, 10, 0), routed(C1)),
                (at(3, 5, 10, 20), accepted(C1)),
                (at(3, 8, 9, 0), result(C1)),
                (at(3, 8, 10, 0), verified(G1, true)),
                (at(3, 8, 11, 0), rated(1)),
            ],
        );
        let r = run(week(), std::slice::from_ref(&log));
        let t = r.total.counts;
        assert_eq!((t.reported, t.accepted, t.accept_minutes), (1, 1, 20));
        assert_eq!((t.results, t.closed, t.rated), (0, 0, 0));
        // the next week sees the rest, and not the report or the acceptance
        let next = Period {
            from: at(3, 8, 0, 0),
            to: at(3, 15, 0, 0),
        };
        let r = run(next, &[log]);
        let t = r.total.counts;
        assert_eq!((t.reported, t.accepted), (0, 0));
        // Fri 10:20 → Mon 09:00: 100 + 210 + 30
        assert_eq!((t.results, t.handle_minutes), (1, 340));
        assert_eq!(
            (t.closed, t.closed_on_time, t.rated, t.bad_reviews),
            (1, 1, 1, 1)
        );
        assert_eq!(unit(&r, C1).counts.closed, 1);
    }

    #[test]
    fn units_are_sorted_and_tiers_sum_their_units() {
        let r = run(
            week(),
            &[
                straddling_rework(),
                (
                    G2,
                    vec![
                        (at(3, 2, 9, 0), reported(G2, true)),
                        (at(3, 2, 9, 30), rated(4)),
                    ],
                ),
                (
                    G1,
                    vec![
                        (at(3, 1, 9, 0), reported(G1, false)),
                        (at(3, 1, 9, 0), routed(C1)),
                        (at(3, 1, 9, 10), accepted(C1)),
                        (at(3, 4, 9, 30), overdue(C1)),
                    ],
                ),
            ],
        );
        let codes: Vec<&str> = r.units.iter().map(|x| x.unit.as_str()).collect();
        assert_eq!(codes, [C1, G1, G2]);
        assert_eq!(r.units[0].tier, Some(Tier::Community));
        let tiers: Vec<Tier> = r.tiers.iter().map(|x| x.tier).collect();
        assert_eq!(tiers, [Tier::Grid, Tier::Community]);
        let grid = tier(&r, Tier::Grid);
        assert_eq!(grid.counts.reported, 2);
        assert_eq!(grid.counts.self_handled, 1);
        assert!(close(grid.self_handled_rate, 50.0));
        let community = tier(&r, Tier::Community);
        assert_eq!(
            (
                community.counts.closed,
                community.counts.overdue_unclosed,
                community.due_to_close
            ),
            (1, 1, 2)
        );
        assert!(close(community.closure_rate, 50.0));
        assert!(close(community.rework_rate, 50.0));
        // on time 50 (4), 100 − 50 (2), satisfaction 100 (2): 500 / 8
        assert!(close(community.score, 62.5));
        assert_eq!(community.grade, Grade::C);
        // the total counts each case once: 3 cases, 2 closed, 1 overdue and open
        let t = &r.total;
        assert_eq!((t.counts.closed, t.counts.overdue_unclosed), (2, 1));
        assert!(close(t.closure_rate, 200.0 / 3.0));
    }

    #[test]
    fn the_score_leaves_out_what_has_no_denominator() {
        // only dispatches: the score is the accurate dispatch rate
        let i = Indicators::from_counts(Counts {
            dispatched: 4,
            redispatched: 1,
            ..Counts::default()
        });
        assert!(close(i.accurate_dispatch_rate, 75.0));
        assert!(close(i.score, 75.0));
        assert_eq!(i.grade, Grade::B);
        // all four: 0.4 × 90 + 0.2 × 50 + 0.2 × (100 − 10) + 0.2 × 80
        let i = Indicators::from_counts(Counts {
            closed: 9,
            closed_on_time: 9,
            overdue_unclosed: 1,
            reworked: 1,
            dispatched: 2,
            redispatched: 1,
            rated: 5,
            satisfied: 4,
            ..Counts::default()
        });
        assert!(close(i.score, 36.0 + 10.0 + 18.0 + 16.0));
        assert_eq!(i.grade, Grade::B);
        // more reworked than due: the rework part bottoms out at 0
        let i = Indicators::from_counts(Counts {
            closed: 1,
            overdue_unclosed: 0,
            reworked: 3,
            ..Counts::default()
        });
        assert!(close(i.rework_rate, 300.0));
        assert!(close(i.score, 0.0));
        for (s, g) in [
            (90.0, Grade::A),
            (89.99, Grade::B),
            (75.0, Grade::B),
            (74.999_999_999_99, Grade::B),
            (60.0, Grade::C),
            (40.0, Grade::D),
            (39.9, Grade::E),
            (0.0, Grade::E),
        ] {
            assert_eq!(Grade::of(s), g, "{s}");
        }
    }
}
