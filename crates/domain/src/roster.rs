//! 365天服務不打烊: each unit's duty roster, and who is on duty at it at any moment.
//!
//! A roster names its teams and their members, its shifts (a local start time and a length, on
//! every day, on working days or on rest days of the county's calendar, so that holidays and
//! make-up working days follow the official notice), each shift's rotation of teams by day,
//! swaps of one person for another on one shift, and the unit's head, who is called when nobody
//! on duty answers. Members are staff ids and display names: how to reach them is kept by the
//! notifier, not here.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkCalendar;
use crate::region::UnitCode;

/// One member of staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The staff id in the unit's own system.
    pub id: String,
    pub name: String,
}

/// Which days a shift runs on, by the county's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Days {
    EveryDay,
    /// Working days: weekdays that are not holidays, and make-up working days.
    WorkingDays,
    /// Weekends and public holidays, except make-up working days.
    RestDays,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    pub name: String,
    /// Local start time.
    pub start: NaiveTime,
    /// Length in hours, 1 to 24; a shift may run past midnight.
    pub hours: u32,
    pub days: Days,
    /// The team on duty each day, cycling from `anchor`: on day `d` it is
    /// `rotation[(d - anchor) mod len]` (e.g. four teams on 12-hour shifts, two days each).
    pub anchor: NaiveDate,
    pub rotation: Vec<String>,
}

/// One person standing in for another on one shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    /// The local date the shift starts on.
    pub date: NaiveDate,
    pub shift: String,
    /// The id of the member who is off.
    pub out: String,
    /// Who is on duty instead.
    pub replacement: Person,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub unit: UnitCode,
    pub teams: BTreeMap<String, Vec<Person>>,
    pub shifts: Vec<Shift>,
    #[serde(default)]
    pub swaps: Vec<Swap>,
    /// Called when nobody on duty answers.
    pub head: Person,
}

/// Someone on duty, and the shift that puts them there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDuty {
    pub person: Person,
    pub team: String,
    pub shift: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Standing in for a member by a swap.
    pub swapped: bool,
}

/// A roster that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RosterError {
    pub field: String,
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> RosterError {
    RosterError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Roster {
    pub fn validate(&self) -> Result<(), RosterError> {
        if self.shifts.is_empty() {
            return Err(err("shifts", "a roster has at least one shift"));
        }
        let person = |p: &Person, f: &str| {
            if p.id.trim().is_empty() || p.name.trim().is_empty() {
                return Err(err(f, "a person has an id and a name"));
            }
            Ok(())
        };
        person(&self.head, "head")?;
        for (name, members) in &self.teams {
            if members.is_empty() {
                return Err(err(format!("teams.{name}"), "a team has members"));
            }
            for (i, p) in members.iter().enumerate() {
                person(p, &format!("teams.{name}[{i}]"))?;
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.shifts.iter().enumerate() {
            let f = format!("shifts[{i}]");
            if s.name.trim().is_empty() || !names.insert(s.name.as_str()) {
                return Err(err(
                    format!("{f}.name"),
                    "shift names are given and distinct",
                ));
            }
            if !(1..=24).contains(&s.hours) {
                return Err(err(format!("{f}.hours"), "from 1 to 24"));
            }
            if s.rotation.is_empty() {
                return Err(err(format!("{f}.rotation"), "at least one team"));
            }
            if let Some(t) = s.rotation.iter().find(|t| !self.teams.contains_key(*t)) {
                return Err(err(format!("{f}.rotation"), format!("unknown team {t}")));
            }
        }
        for (i, w) in self.swaps.iter().enumerate() {
            if !names.contains(w.shift.as_str()) {
                return Err(err(format!("swaps[{i}].shift"), "unknown shift"));
            }
            person(&w.replacement, &format!("swaps[{i}].replacement"))?;
        }
        Ok(())
    }

    /// Everyone on duty at `at`: the members of each shift running then, swaps applied.
    #[must_use]
    pub fn on_duty(&self, cal: &WorkCalendar, at: DateTime<Utc>) -> Vec<OnDuty> {
        let local = at.with_timezone(&cal.offset()).date_naive();
        let mut out = Vec::new();
        // a shift that started yesterday may still run
        for d in [local - Duration::days(1), local] {
            for s in &self.shifts {
                out.extend(
                    self.occurrence(cal, s, d)
                        .into_iter()
                        .flatten()
                        .filter(|o| o.from <= at && at < o.to),
                );
            }
        }
        out
    }

    /// Whom to call at `at`, in order: each person on duty once, then the head.
    #[must_use]
    pub fn call_order(&self, cal: &WorkCalendar, at: DateTime<Utc>) -> Vec<Person> {
        let mut out: Vec<Person> = Vec::new();
        for p in self
            .on_duty(cal, at)
            .into_iter()
            .map(|o| o.person)
            .chain(std::iter::once(self.head.clone()))
        {
            if !out.iter().any(|q| q.id == p.id) {
                out.push(p);
            }
        }
        out
    }

    /// Every shift that starts on a local date from `from` to `to` inclusive, in order, with
    /// who works it: a unit's week as `gridctl roster` shows it.
    #[must_use]
    pub fn between(&self, cal: &WorkCalendar, from: NaiveDate, to: NaiveDate) -> Vec<OnDuty> {
        let mut out: Vec<OnDuty> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .flat_map(|d| {
                self.shifts
                    .iter()
                    .filter_map(move |s| self.occurrence(cal, s, d))
                    .flatten()
            })
            .collect();
        out.sort_by(|a, b| a.from.cmp(&b.from).then(a.shift.cmp(&b.shift)));
        out
    }

    /// The shift `s` starting on local date `d`, with its people; `None` when it does not run
    /// that day.
    fn occurrence(&self, cal: &WorkCalendar, s: &Shift, d: NaiveDate) -> Option<Vec<OnDuty>> {
        let runs = match s.days {
            Days::EveryDay => true,
            Days::WorkingDays => cal.is_working_day(d),
            Days::RestDays => !cal.is_working_day(d),
        };
        if !runs {
            return None;
        }
        let from = cal
            .offset()
            .from_local_datetime(&d.and_time(s.start))
            .single()?
            .with_timezone(&Utc);
        let to = from + Duration::hours(i64::from(s.hours));
        let len = i64::try_from(s.rotation.len()).ok()?;
        let day = (d - s.anchor).num_days().rem_euclid(len);
        let team = &s.rotation[usize::try_from(day).ok()?];
        let members = self.teams.get(team)?;
        Some(
            members
                .iter()
                .map(|p| {
                    let swap = self
                        .swaps
                        .iter()
                        .find(|w| w.date == d && w.shift == s.name && w.out == p.id);
                    OnDuty {
                        person: swap.map_or_else(|| p.clone(), |w| w.replacement.clone()),
                        team: team.clone(),
                        shift: s.name.clone(),
                        from,
                        to,
                        swapped: swap.is_some(),
                    }
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
