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
        admitted: true,
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
        photos: Vec::new(),
        unit: u(unit),
        note: "done".into(),
    }
}
fn result(unit: &str) -> Event {
    Event::ResultSubmitted {
        photos: Vec::new(),
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

#[test]
fn matters_not_admitted_for_grids_are_counted_apart_where_they_were_reported() {
    let not_admitted = |unit: &str| match routed(unit) {
        Event::Routed {
            unit,
            tier,
            accept_due_at,
            reason,
            ..
        } => Event::Routed {
            unit,
            tier,
            accept_due_at,
            reason,
            admitted: false,
        },
        _ => unreachable!(),
    };
    let r = run(
        week(),
        &[
            (
                G1,
                vec![
                    (at(3, 2, 9, 0), reported(G1, false)),
                    (at(3, 2, 9, 0), not_admitted(T1)),
                ],
            ),
            (
                G1,
                vec![
                    (at(3, 2, 10, 0), reported(G1, false)),
                    (at(3, 2, 10, 0), routed(C1)),
                ],
            ),
            // reported before the period: not a matter of this one
            (
                G2,
                vec![
                    (at(2, 26, 9, 0), reported(G2, false)),
                    (at(2, 26, 9, 0), not_admitted(T1)),
                ],
            ),
        ],
    );
    let c = r.total.counts;
    assert_eq!((c.reported, c.non_admitted), (2, 1));
    assert_eq!(unit(&r, G1).counts.non_admitted, 1);
}
