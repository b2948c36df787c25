use chrono::TimeZone as _;

use super::*;
use crate::geo::distance_m;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, h, 0, 0).unwrap()
}

/// A point `north` and `east` metres from `p`.
fn offset(p: LatLon, north: f64, east: f64) -> LatLon {
    LatLon::new(
        p.lat + north / 111_320.0,
        p.lon + east / (111_320.0 * p.lat.to_radians().cos()),
    )
}

const LAMP: LatLon = LatLon::new(28.682_9, 115.858_1);

fn rule() -> RepeatRule {
    RepeatRule {
        distance_m: 50,
        window_hours: 72,
        recurrence: Some(Recurrence {
            reports: 3,
            days: 30,
            action: RecurrenceAction::RaiseSeverity,
        }),
    }
}

fn nearby(p: LatLon, reported_at: DateTime<Utc>, status: CaseStatus) -> Nearby {
    Nearby {
        case_id: CaseId::new(),
        location: p,
        reported_at,
        status,
    }
}

#[test]
fn the_cells_around_a_point_hold_every_point_within_the_radius() {
    for radius in [10, 50, 150, 500] {
        let cells = cells_around(LAMP, radius);
        assert!(cells.len() <= 120, "{radius} m: {} cells", cells.len());
        for step in 0..72 {
            let a = f64::from(step) * 5.0_f64.to_radians();
            let r = f64::from(radius) * 0.999;
            let q = offset(LAMP, r * a.cos(), r * a.sin());
            assert!(distance_m(LAMP, q) <= f64::from(radius));
            assert!(cells.contains(&spot(q)), "{radius} m at {step}: {q:?}");
        }
    }
    // a point exactly on a cell's corner still sees all four cells around it
    let b = geohash::decode_bbox(&spot(LAMP)).unwrap();
    let corner = LatLon::new(b.min().y, b.min().x);
    assert!(cells_around(corner, 20).len() >= 4);
}

#[test]
fn the_nearest_open_case_within_distance_and_window_takes_the_repeat() {
    let near = nearby(offset(LAMP, 30.0, 0.0), at(1), CaseStatus::PendingAccept);
    let nearer = nearby(offset(LAMP, 0.0, 10.0), at(2), CaseStatus::InProgress);
    let closed = nearby(LAMP, at(3), CaseStatus::Closed);
    let waiting_check = nearby(LAMP, at(3), CaseStatus::PendingVerification);
    let far = nearby(offset(LAMP, 80.0, 0.0), at(3), CaseStatus::Reported);
    let old = nearby(LAMP, at(3) - Duration::hours(100), CaseStatus::Reported);
    let all = [
        near.clone(),
        nearer.clone(),
        closed,
        waiting_check,
        far,
        old,
    ];
    let (id, d) = nearest_open(&rule(), LAMP, &all, at(4)).unwrap();
    assert_eq!(id, nearer.case_id);
    assert_eq!(d, 10);
    assert_eq!(
        nearest_open(&rule(), LAMP, &all[..1], at(4)),
        Some((near.case_id, 30))
    );
    assert_eq!(nearest_open(&rule(), LAMP, &all[2..], at(4)), None);
}

#[test]
fn a_spot_recurs_once_when_its_reports_reach_the_count() {
    let r = rule();
    let old = at(0) - Duration::days(40);
    let all = [
        nearby(LAMP, at(1), CaseStatus::Closed),
        nearby(offset(LAMP, 20.0, 0.0), at(2), CaseStatus::Merged),
        nearby(LAMP, at(2), CaseStatus::Rejected),
        nearby(LAMP, old, CaseStatus::Closed),
        nearby(offset(LAMP, 200.0, 0.0), at(2), CaseStatus::Closed),
    ];
    assert_eq!(reports_at_spot(&r, LAMP, &all, at(5)), 3);
    assert_eq!(reports_at_spot(&r, LAMP, &all[..1], at(5)), 2);
    assert_eq!(
        recurrence_due(&r, 3, false),
        Some(RecurrenceAction::RaiseSeverity)
    );
    assert_eq!(recurrence_due(&r, 2, false), None);
    assert_eq!(recurrence_due(&r, 4, true), None);
    let plain = RepeatRule {
        recurrence: None,
        ..r
    };
    assert_eq!(reports_at_spot(&plain, LAMP, &all, at(5)), 1);
    assert_eq!(recurrence_due(&plain, 9, false), None);
    assert_eq!(raised(Severity::General), Severity::Larger);
    assert_eq!(raised(Severity::EspeciallyMajor), Severity::EspeciallyMajor);
}

#[test]
fn a_rule_out_of_range_is_refused_by_field() {
    let mut r = rule();
    r.distance_m = 0;
    assert_eq!(r.validate().unwrap_err().field, "repeats.distance_m");
    r = rule();
    r.distance_m = MAX_DISTANCE_M + 1;
    assert_eq!(r.validate().unwrap_err().field, "repeats.distance_m");
    r = rule();
    r.window_hours = 0;
    assert_eq!(r.validate().unwrap_err().field, "repeats.window_hours");
    r = rule();
    r.recurrence.as_mut().unwrap().reports = 1;
    assert_eq!(
        r.validate().unwrap_err().field,
        "repeats.recurrence.reports"
    );
    r = rule();
    r.recurrence.as_mut().unwrap().days = 0;
    assert_eq!(r.validate().unwrap_err().field, "repeats.recurrence.days");
    assert!(rule().validate().is_ok());
    assert_eq!(rule().since(at(12)), at(12) - Duration::days(30));
}
