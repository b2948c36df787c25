//! What one case contributes to the indicators: its marks, read from its events.

use chrono::{DateTime, Utc};

use super::{CaseLog, Counts, Period};
use crate::case::Event;
use crate::region::UnitCode;

/// What one case contributes to one party (the total or a unit): flags for the case counts,
/// so a case counts once however often it qualifies, and sums for the event counts.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Marks {
    reported: bool,
    self_handled: bool,
    non_admitted: bool,
    repeat: bool,
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
    pub(super) fn add_to(&self, c: &mut Counts) {
        c.reported += u64::from(self.reported);
        c.non_admitted += u64::from(self.non_admitted);
        c.repeats += u64::from(self.repeat);
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
pub(super) struct CaseMarks<'a> {
    pub(super) total: Marks,
    pub(super) units: Vec<(&'a UnitCode, Marks)>,
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
pub(super) fn case_marks<'a>(period: Period, log: CaseLog<'a>) -> CaseMarks<'a> {
    let mut m = CaseMarks {
        total: Marks::default(),
        units: Vec::new(),
    };
    let cal = log.calendar;
    let minutes = |a: DateTime<Utc>, b: DateTime<Utc>| cal.working_minutes_between(a, b);
    let Some(first_at) = log.events.first().map(|(t, _)| *t) else {
        return m;
    };
    // a repeat (linked on arrival and not split off since) is not a case of its own: it
    // counts as a repeat of its grid's, and nothing else
    let repeat = log
        .events
        .iter()
        .filter(|(t, _)| *t < period.to)
        .rev()
        .find_map(|(_, e)| match e {
            Event::Repeated { .. } => Some(true),
            Event::Split { .. } => Some(false),
            _ => None,
        })
        .unwrap_or(false);
    if repeat {
        if period.contains(first_at) {
            m.mark(log.grid, |k| k.repeat = true);
        }
        return m;
    }
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
    // the grid of a case reported in the period (its matter is counted there)
    let mut reported_in_period: Option<&'a UnitCode> = None;

    for (t, e) in log.events {
        let t = *t;
        if t >= period.to {
            continue;
        }
        let inside = period.contains(t);
        match e {
            Event::Reported { grid, self_handled } => {
                if inside {
                    reported_in_period = Some(grid);
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
            Event::Routed { unit, admitted, .. } => {
                handed.set(unit, t);
                if let (false, Some(grid)) = (*admitted, reported_in_period) {
                    m.mark(grid, |k| k.non_admitted = true);
                }
            }
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
            | Event::Warned { .. }
            | Event::Repeated { .. }
            | Event::RepeatAdded { .. }
            | Event::RepeatRemoved { .. }
            | Event::Split { .. }
            | Event::Recurred { .. } => {}
        }
    }
    if let (Some(unit), false) = (last_overdue, ended) {
        m.mark(unit, |k| k.overdue_unclosed = true);
    }
    m
}
