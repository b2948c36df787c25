use chrono::{FixedOffset, TimeZone as _};

use super::*;

fn p(id: &str) -> Person {
    Person {
        id: id.into(),
        name: format!("值班员{id}"),
    }
}

/// Local time (UTC+8).
fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A county command centre around the clock: four teams on 12-hour shifts, two days each.
fn command_centre() -> Roster {
    let teams = ["A", "B", "C", "D"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                (*t).to_owned(),
                vec![p(&format!("{t}1")), p(&format!("{t}{}", i + 2))],
            )
        })
        .collect();
    let shift = |name: &str, h: u32, rotation: [&str; 8]| Shift {
        name: name.into(),
        start: NaiveTime::from_hms_opt(h, 0, 0).unwrap(),
        hours: 12,
        days: Days::EveryDay,
        anchor: date(2027, 1, 4),
        rotation: rotation.iter().map(|t| (*t).to_owned()).collect(),
    };
    Roster {
        unit: UnitCode::parse("360102").unwrap(),
        teams,
        shifts: vec![
            shift("白班", 8, ["A", "A", "B", "B", "C", "C", "D", "D"]),
            shift("夜班", 20, ["C", "C", "D", "D", "A", "A", "B", "B"]),
        ],
        swaps: vec![Swap {
            date: date(2027, 1, 5),
            shift: "夜班".into(),
            out: "C1".into(),
            replacement: p("E9"),
        }],
        head: p("H1"),
    }
}

/// A community: its office on working days, one person on duty on rest days.
fn community() -> Roster {
    Roster {
        unit: UnitCode::parse("360102001001").unwrap(),
        teams: [
            ("office".to_owned(), vec![p("O1"), p("O2")]),
            ("x".to_owned(), vec![p("X1")]),
            ("y".to_owned(), vec![p("Y1")]),
        ]
        .into_iter()
        .collect(),
        shifts: vec![
            Shift {
                name: "办公".into(),
                start: NaiveTime::from_hms_opt(8, 30, 0).unwrap(),
                hours: 9,
                days: Days::WorkingDays,
                anchor: date(2027, 1, 1),
                rotation: vec!["office".into()],
            },
            Shift {
                name: "节假日值班".into(),
                start: NaiveTime::from_hms_opt(8, 30, 0).unwrap(),
                hours: 24,
                days: Days::RestDays,
                anchor: date(2027, 1, 1),
                rotation: vec!["x".into(), "y".into()],
            },
        ],
        swaps: Vec::new(),
        head: p("H2"),
    }
}

fn ids(v: &[OnDuty]) -> Vec<&str> {
    v.iter().map(|o| o.person.id.as_str()).collect()
}

#[test]
fn the_rotation_hands_over_at_each_shift_change_and_swaps_apply() {
    let r = command_centre();
    r.validate().unwrap();
    let cal = WorkCalendar::default();
    // Monday 4 January, the anchor: A by day, C by night
    assert_eq!(
        ids(&r.on_duty(&cal, at(2027, 1, 4, 7, 59))),
        ["B1", "B3"],
        "Sunday's night, day 7 of the cycle"
    );
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 4, 8, 0))), ["A1", "A2"]);
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 4, 19, 59))), ["A1", "A2"]);
    let night = r.on_duty(&cal, at(2027, 1, 4, 20, 0));
    assert_eq!(ids(&night), ["C1", "C4"]);
    assert_eq!(night[0].to, at(2027, 1, 5, 8, 0));
    // past midnight the night shift that started the day before still runs
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 5, 3, 0))), ["C1", "C4"]);
    // Tuesday night C1 has swapped with E9
    let swapped = r.on_duty(&cal, at(2027, 1, 5, 23, 0));
    assert_eq!(ids(&swapped), ["E9", "C4"]);
    assert!(swapped[0].swapped && !swapped[1].swapped);
    // the cycle repeats every eight days, before the anchor too
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 12, 9, 0))), ["A1", "A2"]);
    assert_eq!(ids(&r.on_duty(&cal, at(2026, 12, 27, 9, 0))), ["A1", "A2"]);
    // a week is 14 shifts
    assert_eq!(
        r.between(&cal, date(2027, 1, 4), date(2027, 1, 10))
            .iter()
            .filter(|o| o.person.id.ends_with('1') || o.person.id == "E9")
            .count(),
        14
    );
}

#[test]
fn holidays_and_make_up_days_follow_the_calendar() {
    let r = community();
    r.validate().unwrap();
    let cal = WorkCalendar {
        // New Year's Day, a Friday, is a holiday; Saturday the 9th is worked instead
        holidays: vec![date(2027, 1, 1)],
        makeup_workdays: vec![date(2027, 1, 9)],
        ..WorkCalendar::default()
    };
    // Thursday 31 December: the office, then nobody after hours
    assert_eq!(ids(&r.on_duty(&cal, at(2026, 12, 31, 10, 0))), ["O1", "O2"]);
    assert!(r.on_duty(&cal, at(2026, 12, 31, 20, 0)).is_empty());
    // the holiday, a weekday: the rest-day duty, X then Y on Saturday, X on Sunday
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 1, 10, 0))), ["X1"]);
    assert_eq!(
        ids(&r.on_duty(&cal, at(2027, 1, 2, 8, 0))),
        ["X1"],
        "until 08:30 the next day"
    );
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 2, 9, 0))), ["Y1"]);
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 3, 9, 0))), ["X1"]);
    // Monday: the office again
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 4, 9, 0))), ["O1", "O2"]);
    // the make-up Saturday is a working day; the Sunday after it a rest day
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 9, 9, 0))), ["O1", "O2"]);
    assert_eq!(ids(&r.on_duty(&cal, at(2027, 1, 10, 9, 0))), ["Y1"]);
}

#[test]
fn a_roster_that_cannot_be_followed_is_refused() {
    let mut r = command_centre();
    r.shifts[0].rotation.push("Z".into());
    assert_eq!(r.validate().unwrap_err().field, "shifts[0].rotation");
    let mut r = command_centre();
    r.shifts[1].hours = 25;
    assert_eq!(r.validate().unwrap_err().field, "shifts[1].hours");
    let mut r = command_centre();
    r.swaps[0].shift = "早班".into();
    assert_eq!(r.validate().unwrap_err().field, "swaps[0].shift");
    let mut r = command_centre();
    r.shifts[1].name = "白班".into();
    assert_eq!(r.validate().unwrap_err().field, "shifts[1].name");
}
