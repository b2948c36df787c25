//! Duty rosters (ADR 0042) on the wire.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::region::UnitCode;
use domain::report::FieldViolation;
use domain::roster::{Days, OnDuty, Person, Roster, Shift, Swap};

use super::{fv, timestamp};
use crate::v1;

fn person_to_wire(p: &Person) -> v1::Person {
    v1::Person {
        id: p.id.clone(),
        name: p.name.clone(),
    }
}

fn person_from_wire(p: Option<v1::Person>, field: &str) -> Result<Person, FieldViolation> {
    let p = p.ok_or_else(|| fv(field, "required"))?;
    Ok(Person {
        id: p.id,
        name: p.name,
    })
}

fn days_to_wire(d: Days) -> v1::ShiftDays {
    match d {
        Days::EveryDay => v1::ShiftDays::EveryDay,
        Days::WorkingDays => v1::ShiftDays::WorkingDays,
        Days::RestDays => v1::ShiftDays::RestDays,
    }
}

#[must_use]
pub fn roster_to_wire(r: &Roster, version: u64, updated_at: DateTime<Utc>) -> v1::Roster {
    v1::Roster {
        unit_code: r.unit.to_string(),
        teams: r
            .teams
            .iter()
            .map(|(name, members)| v1::Team {
                name: name.clone(),
                members: members.iter().map(person_to_wire).collect(),
            })
            .collect(),
        shifts: r
            .shifts
            .iter()
            .map(|s| v1::Shift {
                name: s.name.clone(),
                start: s.start.format("%H:%M").to_string(),
                hours: s.hours,
                days: days_to_wire(s.days).into(),
                anchor: s.anchor.to_string(),
                rotation: s.rotation.clone(),
            })
            .collect(),
        swaps: r
            .swaps
            .iter()
            .map(|w| v1::Swap {
                date: w.date.to_string(),
                shift: w.shift.clone(),
                out: w.out.clone(),
                replacement: Some(person_to_wire(&w.replacement)),
            })
            .collect(),
        head: Some(person_to_wire(&r.head)),
        version,
        updated_at: Some(timestamp(updated_at)),
    }
}

fn date(s: &str, field: &str) -> Result<NaiveDate, FieldViolation> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| fv(field, "a date YYYY-MM-DD"))
}

/// The wire roster as a domain roster (its consistency is checked by `Roster::validate`).
pub fn roster_from_wire(r: v1::Roster) -> Result<Roster, FieldViolation> {
    let unit = UnitCode::parse(&r.unit_code).map_err(|e| fv("roster.unit_code", e.to_string()))?;
    let mut teams = std::collections::BTreeMap::new();
    for (i, t) in r.teams.into_iter().enumerate() {
        if teams.contains_key(&t.name) {
            return Err(fv(
                format!("roster.teams[{i}].name"),
                "team names are distinct",
            ));
        }
        let members = t
            .members
            .into_iter()
            .map(|p| Person {
                id: p.id,
                name: p.name,
            })
            .collect();
        teams.insert(t.name, members);
    }
    let shifts = r
        .shifts
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let f = format!("roster.shifts[{i}]");
            Ok(Shift {
                start: NaiveTime::parse_from_str(&s.start, "%H:%M")
                    .map_err(|_| fv(format!("{f}.start"), "a local time HH:MM"))?,
                hours: s.hours,
                days: match v1::ShiftDays::try_from(s.days) {
                    Ok(v1::ShiftDays::EveryDay) => Days::EveryDay,
                    Ok(v1::ShiftDays::WorkingDays) => Days::WorkingDays,
                    Ok(v1::ShiftDays::RestDays) => Days::RestDays,
                    _ => return Err(fv(format!("{f}.days"), "required")),
                },
                anchor: date(&s.anchor, &format!("{f}.anchor"))?,
                rotation: s.rotation,
                name: s.name,
            })
        })
        .collect::<Result<_, FieldViolation>>()?;
    let swaps = r
        .swaps
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let f = format!("roster.swaps[{i}]");
            Ok(Swap {
                date: date(&w.date, &format!("{f}.date"))?,
                replacement: person_from_wire(w.replacement, &format!("{f}.replacement"))?,
                shift: w.shift,
                out: w.out,
            })
        })
        .collect::<Result<_, FieldViolation>>()?;
    Ok(Roster {
        unit,
        teams,
        shifts,
        swaps,
        head: person_from_wire(r.head, "roster.head")?,
    })
}

#[must_use]
pub fn duty_to_wire(d: &OnDuty) -> v1::Duty {
    v1::Duty {
        person: Some(person_to_wire(&d.person)),
        team: d.team.clone(),
        shift: d.shift.clone(),
        from: Some(timestamp(d.from)),
        to: Some(timestamp(d.to)),
        swapped: d.swapped,
    }
}

#[must_use]
pub fn head_to_wire(r: &Roster) -> v1::Person {
    person_to_wire(&r.head)
}
