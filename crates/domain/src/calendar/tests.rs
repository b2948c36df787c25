//! The calendar against hand-computed instants, including the 2026 Spring Festival.
use super::*;
use chrono::TimeZone;

/// A local (UTC+8) wall-clock instant.
fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    at_s(y, mo, d, h, mi, 0)
}

fn at_s(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn period(sh: u32, sm: u32, eh: u32, em: u32) -> WorkPeriod {
    WorkPeriod {
        start: hm(sh, sm),
        end: hm(eh, em),
    }
}

/// The State Council's 2026 Spring Festival arrangement: nine days off from Sunday 15 Feb
/// to Monday 23 Feb, with Saturdays 14 Feb and 28 Feb worked in exchange.
fn spring_festival_2026() -> WorkCalendar {
    WorkCalendar {
        holidays: (15..=23).map(|d| date(2026, 2, d)).collect(),
        makeup_workdays: vec![date(2026, 2, 14), date(2026, 2, 28)],
        ..WorkCalendar::default()
    }
}

const HOUR: i64 = 60;
const DAY: i64 = 7 * HOUR;

#[test]
fn defaults() {
    let cal = WorkCalendar::default();
    assert_eq!(cal.utc_offset_minutes, 480);
    assert_eq!(
        cal.periods,
        vec![period(8, 30, 12, 0), period(14, 0, 17, 30)]
    );
    assert_eq!(cal.working_minutes_per_day(), 420);
    assert_eq!(cal.offset().local_minus_utc(), 8 * 3600);
    assert_eq!(cal.validate(), Ok(()));
    assert_eq!(spring_festival_2026().validate(), Ok(()));
}

#[test]
fn working_days_in_spring_festival_2026() {
    let cal = spring_festival_2026();
    assert_eq!(date(2026, 2, 13).weekday(), Weekday::Fri);
    assert!(cal.is_working_day(date(2026, 2, 13)));
    assert!(cal.is_working_day(date(2026, 2, 14))); // Saturday, make-up day
    for d in 15..=23 {
        assert!(!cal.is_working_day(date(2026, 2, d)), "Feb {d}");
    }
    assert!(cal.is_working_day(date(2026, 2, 24)));
    assert!(cal.is_working_day(date(2026, 2, 28))); // Saturday, make-up day
    assert!(!cal.is_working_day(date(2026, 3, 1))); // ordinary Sunday
    assert!(!cal.is_working_day(date(2026, 3, 7))); // ordinary Saturday
    // The make-up list wins if a date were on both (validate forbids that).
    let both = WorkCalendar {
        holidays: vec![date(2026, 3, 7)],
        makeup_workdays: vec![date(2026, 3, 7)],
        ..WorkCalendar::default()
    };
    assert!(both.is_working_day(date(2026, 3, 7)));
}

#[test]
fn eight_hours_from_friday_afternoon_runs_into_makeup_saturday() {
    let cal = spring_festival_2026();
    // Fri 16:00–17:30 = 90 min, Sat 08:30–12:00 = 210 min, then 180 min from 14:00.
    let due = TimeLimit::working(8 * HOUR).due_at(&cal, at(2026, 2, 13, 16, 0));
    assert_eq!(due, at(2026, 2, 14, 17, 0));
    // Without the holiday arrangement the same case is due on Monday.
    let plain = WorkCalendar::default();
    assert_eq!(
        plain.add_working_minutes(at(2026, 2, 13, 16, 0), 8 * HOUR),
        at(2026, 2, 16, 17, 0)
    );
}

#[test]
fn three_working_days_span_the_spring_festival() {
    let cal = spring_festival_2026();
    let limit = TimeLimit::working(3 * DAY);
    // Fri 90 + Sat 420 + Tue 420 = 930; the last 330 are Wed 210 + 120 after 14:00.
    assert_eq!(
        limit.due_at(&cal, at(2026, 2, 13, 16, 0)),
        at(2026, 2, 25, 16, 0)
    );
    // From Friday's opening: Fri, Sat and Tue are the three days, due at Tuesday's close.
    assert_eq!(
        limit.due_at(&cal, at(2026, 2, 13, 8, 30)),
        at(2026, 2, 24, 17, 30)
    );
    // Reported during the holiday: counting starts Tue 24 08:30; Tue, Wed, Thu.
    assert_eq!(
        limit.due_at(&cal, at(2026, 2, 18, 10, 0)),
        at(2026, 2, 26, 17, 30)
    );
    // Reported Thu 26 at 10:00: Thu 330 (rest of day) + Fri 420 + Sat 28 (make-up) 420
    // = 1170, then 90 on Monday 2 March.
    assert_eq!(
        limit.due_at(&cal, at(2026, 2, 26, 10, 0)),
        at(2026, 3, 2, 10, 0)
    );
    assert_eq!(
        cal.working_minutes_between(at(2026, 2, 13, 16, 0), at(2026, 2, 25, 16, 0)),
        3 * DAY
    );
}

#[test]
fn natural_clock_ignores_holidays_and_hours() {
    let cal = spring_festival_2026();
    let start = at(2026, 2, 14, 10, 0);
    assert_eq!(
        TimeLimit::natural(24 * HOUR).due_at(&cal, start),
        at(2026, 2, 15, 10, 0)
    );
    assert_eq!(
        TimeLimit::natural(2 * HOUR).due_at(&cal, at(2026, 2, 17, 23, 30)),
        at(2026, 2, 18, 1, 30)
    );
    assert_eq!(
        TimeLimit::natural(2 * HOUR).warn_at(&cal, at(2026, 2, 17, 10, 0), 80),
        at(2026, 2, 17, 11, 36)
    );
}

#[test]
fn start_outside_working_time() {
    let cal = WorkCalendar::default();
    assert_eq!(date(2026, 3, 2).weekday(), Weekday::Mon);
    // Lunch break: counting starts at 14:00.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 12, 30), 60),
        at(2026, 3, 2, 15, 0)
    );
    // Before opening.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 7, 0), 30),
        at(2026, 3, 2, 9, 0)
    );
    // At night: next morning.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 22, 0), 60),
        at(2026, 3, 3, 9, 30)
    );
    // Just after midnight.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 3, 0, 5), 60),
        at(2026, 3, 3, 9, 30)
    );
    // Weekend: Monday morning.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 7, 10, 0), 30),
        at(2026, 3, 9, 9, 0)
    );
    // Friday night to Monday.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 6, 20, 0), 240),
        at(2026, 3, 9, 14, 30)
    );
}

#[test]
fn period_boundaries() {
    let cal = WorkCalendar::default();
    // Used up exactly at the end of the morning: due 12:00, not 14:00.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 8, 30), 210),
        at(2026, 3, 2, 12, 0)
    );
    // A whole day ends at 17:30 the same day.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 8, 30), DAY),
        at(2026, 3, 2, 17, 30)
    );
    // Starting exactly at a period end counts from the next period.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 12, 0), 30),
        at(2026, 3, 2, 14, 30)
    );
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 17, 30), 1),
        at(2026, 3, 3, 8, 31)
    );
    // One minute past the morning's end.
    assert_eq!(
        cal.add_working_minutes(at(2026, 3, 2, 8, 30), 211),
        at(2026, 3, 2, 14, 1)
    );
    // Seconds in the start instant are carried through.
    assert_eq!(
        cal.add_working_minutes(at_s(2026, 3, 2, 9, 0, 30), 60),
        at_s(2026, 3, 2, 10, 0, 30)
    );
    assert_eq!(
        cal.add_working_minutes(at_s(2026, 3, 2, 11, 59, 30), 1),
        at_s(2026, 3, 2, 14, 0, 30)
    );
}

#[test]
fn zero_and_negative_minutes_return_start() {
    let cal = WorkCalendar::default();
    for start in [
        at(2026, 3, 2, 10, 0),
        at(2026, 3, 2, 23, 0),
        at(2026, 3, 7, 10, 0),
    ] {
        assert_eq!(cal.add_working_minutes(start, 0), start);
        assert_eq!(cal.add_working_minutes(start, -30), start);
    }
}

#[test]
fn working_minutes_between_cases() {
    let cal = WorkCalendar::default();
    let mon = |h, m| at(2026, 3, 2, h, m);
    assert_eq!(cal.working_minutes_between(mon(8, 0), mon(18, 0)), 420);
    assert_eq!(
        cal.working_minutes_between(mon(10, 0), mon(15, 0)),
        120 + 60
    );
    assert_eq!(cal.working_minutes_between(mon(12, 0), mon(14, 0)), 0);
    assert_eq!(cal.working_minutes_between(mon(15, 0), mon(10, 0)), 0);
    assert_eq!(cal.working_minutes_between(mon(10, 0), mon(10, 0)), 0);
    // Friday 16:00 to Monday 09:00 over a weekend.
    assert_eq!(
        cal.working_minutes_between(at(2026, 3, 6, 16, 0), at(2026, 3, 9, 9, 0)),
        90 + 30
    );
    // Partial minutes round down.
    assert_eq!(
        cal.working_minutes_between(mon(9, 0), at_s(2026, 3, 2, 9, 1, 59)),
        1
    );
    // Four ordinary weeks.
    assert_eq!(
        cal.working_minutes_between(mon(0, 0), at(2026, 3, 30, 0, 0)),
        20 * DAY
    );
}

/// Reference implementation: step one minute at a time. Only meaningful for starts on a
/// whole minute, which is all the comparison uses.
fn add_by_stepping(cal: &WorkCalendar, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    let offset = cal.offset();
    let mut t = start;
    let mut counted = 0;
    while counted < minutes {
        let local = t.with_timezone(&offset);
        let tod = local.time();
        let working = cal.is_working_day(local.date_naive())
            && cal.periods.iter().any(|p| p.start <= tod && tod < p.end);
        if working {
            counted += 1;
        }
        t += TimeDelta::minutes(1);
    }
    t
}

#[test]
fn add_matches_minute_stepping_reference() {
    let cal = spring_festival_2026();
    let mut start = at(2026, 2, 12, 7, 13);
    while start < at(2026, 2, 27, 0, 0) {
        for m in [1, 29, 210, 211, 419, 420, 421, 900, 2000] {
            assert_eq!(
                cal.add_working_minutes(start, m),
                add_by_stepping(&cal, start, m),
                "start {start}, {m} min"
            );
        }
        start += TimeDelta::minutes(97);
    }
}

#[test]
fn between_inverts_add_over_many_starts() {
    let cal = spring_festival_2026();
    let minutes = [
        1, 7, 59, 209, 210, 211, 420, 480, 1260, 5000, 20_000, 100_000,
    ];
    let mut start = at_s(2026, 2, 9, 0, 0, 17);
    let mut checked = 0;
    while start < at(2026, 3, 3, 0, 0) {
        for m in minutes {
            let due = cal.add_working_minutes(start, m);
            assert!(due > start);
            assert_eq!(
                cal.working_minutes_between(start, due),
                m,
                "start {start}, {m} min, due {due}"
            );
            // One second earlier the limit has not yet been used up.
            assert_eq!(
                cal.working_minutes_between(start, due - TimeDelta::seconds(1)),
                m - 1
            );
            checked += 1;
        }
        start += TimeDelta::minutes(37);
    }
    assert!(checked > 9000);
}

/// Reference for `between`: sum whole days one by one without week skipping.
fn between_by_days(cal: &WorkCalendar, from: NaiveDate, to: NaiveDate) -> i64 {
    from.iter_days()
        .take_while(|d| *d < to)
        .filter(|d| cal.is_working_day(*d))
        .count() as i64
        * cal.working_minutes_per_day()
}

#[test]
fn long_spans_agree_with_day_by_day_counting() {
    let cal = spring_festival_2026();
    let local_midnight = |d: NaiveDate| at(d.year(), d.month(), d.day(), 0, 0);
    // Spans entirely before, across and after the listed dates, with every start weekday.
    for (from, to) in [
        (date(2023, 1, 1), date(2025, 6, 1)),
        (date(2024, 11, 3), date(2027, 2, 9)),
        (date(2026, 2, 20), date(2026, 2, 25)),
        (date(2026, 3, 1), date(2031, 7, 4)),
    ] {
        for shift in 0..7 {
            let from = from + Days::new(shift);
            assert_eq!(
                cal.working_minutes_between(local_midnight(from), local_midnight(to)),
                between_by_days(&cal, from, to),
                "{from}..{to}"
            );
        }
    }
}

#[test]
fn large_limits_skip_whole_weeks() {
    let cal = WorkCalendar::default();
    // 100 weeks of work from Monday's opening ends at the close of the 100th Friday.
    let start = at(2026, 3, 2, 8, 30);
    let end_date = date(2026, 3, 2) + Days::new(99 * 7 + 4);
    assert_eq!(end_date.weekday(), Weekday::Fri);
    assert_eq!(
        cal.add_working_minutes(start, 100 * 5 * DAY),
        at(end_date.year(), end_date.month(), end_date.day(), 17, 30)
    );
    // Across the Spring Festival: the nine-day break takes six weekdays and the two
    // make-up Saturdays give two back: four working days net.
    let sf = spring_festival_2026();
    let from = at(2025, 6, 2, 8, 30);
    let due = sf.add_working_minutes(from, 100 * 5 * DAY);
    assert_eq!(sf.working_minutes_between(from, due), 100 * 5 * DAY);
    let plain_due = cal.add_working_minutes(from, 100 * 5 * DAY);
    assert_eq!(cal.working_minutes_between(plain_due, due), 4 * DAY);
}

#[test]
fn degenerate_calendars_saturate_instead_of_looping() {
    let start = at(2026, 1, 5, 9, 0);
    let no_periods = WorkCalendar {
        periods: Vec::new(),
        ..WorkCalendar::default()
    };
    assert_eq!(
        no_periods.add_working_minutes(start, 60),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        no_periods.working_minutes_between(start, start + TimeDelta::days(30)),
        0
    );

    // Four years of holidays: beyond the idle-day cap.
    let closed = WorkCalendar {
        holidays: date(2026, 1, 1).iter_days().take(4 * 366).collect(),
        ..WorkCalendar::default()
    };
    assert_eq!(
        closed.add_working_minutes(start, 60),
        DateTime::<Utc>::MAX_UTC
    );
    // Two years of holidays is odd but reachable.
    let long_closure = WorkCalendar {
        holidays: date(2026, 1, 1).iter_days().take(2 * 366).collect(),
        ..WorkCalendar::default()
    };
    let due = long_closure.add_working_minutes(start, 60);
    assert_eq!(due, at(2028, 1, 3, 9, 30));

    // Absurd inputs neither panic nor hang.
    let cal = WorkCalendar::default();
    assert_eq!(
        cal.add_working_minutes(start, i64::MAX),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        cal.add_working_minutes(DateTime::<Utc>::MAX_UTC, 60),
        DateTime::<Utc>::MAX_UTC
    );
    assert_eq!(
        TimeLimit::natural(i64::MAX).due_at(&cal, start),
        DateTime::<Utc>::MAX_UTC
    );
    let all = cal.working_minutes_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    assert!(all > 0);
    let _ = cal.add_working_minutes(DateTime::<Utc>::MIN_UTC, 60);
}

#[test]
fn other_offsets_and_unsorted_periods() {
    let utc = WorkCalendar {
        utc_offset_minutes: 0,
        ..WorkCalendar::default()
    };
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 8, 30, 0).unwrap();
    assert_eq!(
        utc.add_working_minutes(start, 30),
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    );
    // An unsorted, overlapping list (rejected by validate) is still handled sanely.
    let messy = WorkCalendar {
        periods: vec![
            period(14, 0, 17, 30),
            period(8, 30, 12, 0),
            period(9, 0, 10, 0),
        ],
        ..WorkCalendar::default()
    };
    assert!(messy.validate().is_err());
    assert_eq!(messy.working_minutes_per_day(), 420);
    assert_eq!(
        messy.add_working_minutes(at(2026, 3, 2, 8, 30), 211),
        at(2026, 3, 2, 14, 1)
    );
}

mod limits;
