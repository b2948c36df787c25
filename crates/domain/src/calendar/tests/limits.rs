//! Time limits on top of the working calendar: the 80 % warning, warning levels, validation of
//! calendars and limits, and their JSON form. Working-time arithmetic is in the parent module.

use super::*;

#[test]
fn warn_at_eighty_percent() {
    let cal = WorkCalendar::default();
    let start = at(2026, 3, 2, 8, 30);
    let limit = TimeLimit::working(8 * HOUR);
    // 80 % of 480 = 384 min: 210 in the morning, 174 after 14:00.
    assert_eq!(limit.warn_at(&cal, start, 80), at(2026, 3, 2, 16, 54));
    assert_eq!(limit.warn_at(&cal, start, 100), limit.due_at(&cal, start));
    assert_eq!(limit.due_at(&cal, start), at(2026, 3, 3, 9, 30));
    assert_eq!(limit.warn_at(&cal, start, 0), start);
    // 150 % = 720 min: Mon 420, Tue 210 + 90.
    assert_eq!(limit.warn_at(&cal, start, 150), at(2026, 3, 3, 15, 30));
    // Sub-minute precision: 80 % of 7 minutes is 5 min 36 s.
    assert_eq!(
        TimeLimit::working(7).warn_at(&cal, start, 80),
        at_s(2026, 3, 2, 8, 35, 36)
    );
    // Across the holiday on the working clock.
    let sf = spring_festival_2026();
    assert_eq!(
        TimeLimit::working(3 * DAY).warn_at(&sf, at(2026, 2, 13, 16, 0), 80),
        // 80 % of 1260 = 1008: Fri 90, Sat 420, Tue 420 -> 78 left on Wed morning.
        at(2026, 2, 25, 9, 48)
    );
}

#[test]
fn warning_levels() {
    let cal = WorkCalendar::default();
    let start = at(2026, 3, 2, 8, 30);
    let limit = TimeLimit::working(8 * HOUR);
    let level = |now| warning_level(&cal, limit, start, now);
    assert_eq!(level(start), Warning::Green);
    assert_eq!(level(at(2026, 3, 2, 16, 53)), Warning::Green);
    assert_eq!(level(at(2026, 3, 2, 16, 54)), Warning::Yellow);
    assert_eq!(level(at(2026, 3, 2, 22, 0)), Warning::Yellow);
    assert_eq!(level(at(2026, 3, 3, 9, 30)), Warning::Yellow);
    assert_eq!(level(at_s(2026, 3, 3, 9, 30, 1)), Warning::Red);

    // Due at Friday's close; on Saturday it is overdue although no working time passed.
    let friday = at(2026, 3, 6, 8, 30);
    let day = TimeLimit::working(DAY);
    assert_eq!(
        warning_level(&cal, day, friday, at(2026, 3, 6, 17, 30)),
        Warning::Yellow
    );
    assert_eq!(
        warning_level(&cal, day, friday, at(2026, 3, 7, 10, 0)),
        Warning::Red
    );

    let emergency = TimeLimit::natural(2 * HOUR);
    let s = at(2026, 2, 17, 22, 0);
    assert_eq!(
        warning_level(&cal, emergency, s, at(2026, 2, 17, 23, 35)),
        Warning::Green
    );
    assert_eq!(
        warning_level(&cal, emergency, s, at(2026, 2, 17, 23, 36)),
        Warning::Yellow
    );
    assert_eq!(
        warning_level(&cal, emergency, s, at(2026, 2, 18, 0, 1)),
        Warning::Red
    );
}

#[test]
fn calendar_validation_errors() {
    let base = WorkCalendar::default();
    let with_periods = |periods| WorkCalendar {
        periods,
        ..WorkCalendar::default()
    };
    assert_eq!(
        with_periods(vec![]).validate(),
        Err(CalendarError::NoPeriods)
    );
    assert_eq!(
        with_periods(vec![period(9, 0, 9, 0)]).validate(),
        Err(CalendarError::EmptyPeriod {
            start: hm(9, 0),
            end: hm(9, 0)
        })
    );
    assert_eq!(
        with_periods(vec![period(12, 0, 8, 30)]).validate(),
        Err(CalendarError::EmptyPeriod {
            start: hm(12, 0),
            end: hm(8, 30)
        })
    );
    let overlap = CalendarError::PeriodsOverlap {
        first_start: hm(8, 30),
        first_end: hm(12, 0),
        second_start: hm(11, 0),
        second_end: hm(17, 0),
    };
    assert_eq!(
        with_periods(vec![period(8, 30, 12, 0), period(11, 0, 17, 0)]).validate(),
        Err(overlap)
    );
    assert!(matches!(
        with_periods(vec![period(14, 0, 17, 30), period(8, 30, 12, 0)]).validate(),
        Err(CalendarError::PeriodsOverlap { .. })
    ));
    // Touching periods are fine.
    assert_eq!(
        with_periods(vec![period(8, 0, 12, 0), period(12, 0, 16, 0)]).validate(),
        Ok(())
    );
    for bad in [-14 * 60 - 1, 14 * 60 + 1, i32::MAX] {
        let cal = WorkCalendar {
            utc_offset_minutes: bad,
            ..base.clone()
        };
        assert_eq!(cal.validate(), Err(CalendarError::OffsetOutOfRange(bad)));
    }
    let both = WorkCalendar {
        holidays: vec![date(2026, 2, 14)],
        ..spring_festival_2026()
    };
    assert_eq!(
        both.validate(),
        Err(CalendarError::HolidayAndMakeupDay(date(2026, 2, 14)))
    );
    assert_eq!(
        CalendarError::HolidayAndMakeupDay(date(2026, 2, 14)).to_string(),
        "2026-02-14 is listed both as a holiday and as a make-up working day"
    );
    assert_eq!(
        CalendarError::EmptyPeriod {
            start: hm(12, 0),
            end: hm(8, 30)
        }
        .to_string(),
        "working period 12:00:00-08:30:00 is empty or reversed: start must be before end"
    );
}

#[test]
fn time_limit_validation() {
    assert_eq!(TimeLimit::working(1).validate(), Ok(()));
    assert_eq!(TimeLimit::natural(527_040).validate(), Ok(()));
    assert_eq!(
        TimeLimit::working(0).validate(),
        Err(CalendarError::NonPositiveLimit(0))
    );
    assert_eq!(
        TimeLimit::natural(-5).validate(),
        Err(CalendarError::NonPositiveLimit(-5))
    );
    assert_eq!(
        TimeLimit::working(527_041).validate(),
        Err(CalendarError::LimitTooLong(527_041))
    );
}

#[test]
fn json_round_trip_and_field_names() {
    let cal = spring_festival_2026();
    let json = serde_json::to_value(&cal).unwrap();
    assert_eq!(json["utc_offset_minutes"], 480);
    assert_eq!(json["periods"][0]["start"], "08:30:00");
    assert_eq!(json["periods"][1]["end"], "17:30:00");
    assert_eq!(json["holidays"][0], "2026-02-15");
    assert_eq!(json["makeup_workdays"][1], "2026-02-28");
    let back: WorkCalendar = serde_json::from_value(json).unwrap();
    assert_eq!(back, cal);

    // Everything is optional; short "HH:MM" times are accepted.
    let empty: WorkCalendar = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, WorkCalendar::default());
    let policy: WorkCalendar = serde_json::from_str(
        r#"{"periods":[{"start":"09:00","end":"17:00:00"}],"holidays":["2026-10-01"]}"#,
    )
    .unwrap();
    assert_eq!(policy.periods, vec![period(9, 0, 17, 0)]);
    assert_eq!(policy.utc_offset_minutes, 480);
    assert_eq!(policy.holidays, vec![date(2026, 10, 1)]);
    assert!(serde_json::from_str::<WorkPeriod>(r#"{"start":"9h","end":"17:00"}"#).is_err());

    let limit = TimeLimit::natural(120);
    let json = serde_json::to_string(&limit).unwrap();
    assert_eq!(json, r#"{"minutes":120,"clock":"NATURAL"}"#);
    assert_eq!(serde_json::from_str::<TimeLimit>(&json).unwrap(), limit);
    assert_eq!(
        serde_json::to_string(&TimeLimit::working(1260)).unwrap(),
        r#"{"minutes":1260,"clock":"WORKING"}"#
    );
    assert_eq!(
        serde_json::to_string(&Warning::Yellow).unwrap(),
        "\"YELLOW\""
    );
    assert_eq!(
        serde_json::from_str::<Warning>("\"RED\"").unwrap(),
        Warning::Red
    );
}
