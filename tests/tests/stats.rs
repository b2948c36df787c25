//! GetStats end to end: real cases driven through the API on a clock set to known instants,
//! then every indicator compared with figures worked out by hand (docs/indicators.md).

#[path = "stats/fixture.rs"]
mod fixture;

use chrono::{DateTime, Duration, Utc};
use griddispatch_tests::*;
use proto::convert;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

use fixture::{drive_fixture, period};

const G1: &str = GRID; // 360102001001001, in community C1
const C1: &str = COMMUNITY; // 360102001001
const T1: &str = "360102001";
const G2: &str = OTHER_GRID; // 360102002001001, in community C2
const C2: &str = "360102002001";
const CGJ: &str = "360102-CGJ";
const ZJJ: &str = "360102-ZJJ";

async fn stats(
    s: &TestServer,
    who: Bearer,
    region: &str,
) -> Result<v1::GetStatsResponse, tonic::Status> {
    let (from, to) = period();
    s.console(who)
        .get_stats(v1::GetStatsRequest {
            region_code: region.into(),
            from: Some(convert::timestamp(from)),
            to: Some(convert::timestamp(to)),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every field of `got` equals `want`; rates, averages and the score within 1e-9.
fn assert_indicators(what: &str, got: Option<&v1::Indicators>, want: &v1::Indicators) {
    let got = got.unwrap_or_else(|| panic!("{what}: no indicators"));
    let counts = |i: &v1::Indicators| {
        [
            i.reported,
            i.due_to_close,
            i.closed,
            i.closed_on_time,
            i.reworked,
            i.dispatched,
            i.redispatched,
            i.self_handled,
            i.rated,
            i.satisfied,
            i.returns,
            i.bad_reviews,
            i.overdue_unclosed,
            i.accepted,
            i.results,
        ]
    };
    assert_eq!(
        counts(got),
        counts(want),
        "{what}: reported, due_to_close, closed, closed_on_time, reworked, dispatched, \
         redispatched, self_handled, rated, satisfied, returns, bad_reviews, \
         overdue_unclosed, accepted, results"
    );
    let reals = |i: &v1::Indicators| {
        [
            ("closure_rate", i.closure_rate),
            ("on_time_closure_rate", i.on_time_closure_rate),
            ("rework_rate", i.rework_rate),
            ("accurate_dispatch_rate", i.accurate_dispatch_rate),
            ("self_handled_rate", i.self_handled_rate),
            ("satisfaction_rate", i.satisfaction_rate),
            ("avg_accept_hours", i.avg_accept_hours),
            ("avg_handle_hours", i.avg_handle_hours),
            ("score", i.score),
            ("return_rate", i.return_rate),
            ("bad_review_rate", i.bad_review_rate),
        ]
    };
    for ((name, g), (_, w)) in reals(got).into_iter().zip(reals(want)) {
        assert!((g - w).abs() < 1e-9, "{what}: {name} is {g}, expected {w}");
    }
    assert_eq!(got.grade, want.grade, "{what}: grade");
}

fn unit<'r>(r: &'r v1::GetStatsResponse, code: &str) -> &'r v1::UnitIndicators {
    r.units
        .iter()
        .find(|u| u.unit_code == code)
        .unwrap_or_else(|| panic!("no unit {code}"))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn indicators_of_a_county_week_match_the_figures_worked_by_hand(pool: PgPool) {
    let s = TestServer::start(pool).await;
    drive_fixture(&s).await;
    let r = stats(&s, TestServer::bearer(Role::Admin, ""), "360102")
        .await
        .unwrap();

    // Over cases. Reported in the period: B, C, E, G, D (A and H before it). Closed in it:
    // A, B, D (self-handled), E; on time: A, B, D (E was overdue first). Overdue and open at
    // the end: C, and H from before the period. Due to close 4 + 2 = 6.
    // Accepted in the period, in working minutes from the hand-over: C by C2 09:10→09:20 10;
    // B by ZJJ 11:05→11:35 30; E by C1 14:10→14:40 30; G by C1 10:00→10:20 20: 90 / 4 / 60.
    // Results in the period: A Fri 09:40→Mon 09:00 = 140 + 210 + 30 = 380; A's rework
    // 10:00→11:00 = 60; B 11:35→15:05 = 25 + 65 = 90; E Mon 14:40→Thu 16:00 =
    // 170 + 420 + 420 + 210 + 120 = 1340: 1870 / 4 / 60.
    // Score: 0.4 × 50 (on time 3/6) + 0.2 × 0 (accurate dispatch (1 − 1)/1)
    //      + 0.2 × (100 − 16.67) (rework 1/6) + 0.2 × 66.67 (satisfied 2/3) = 50 → D.
    assert_indicators(
        "total",
        r.total.as_ref(),
        &v1::Indicators {
            reported: 5,
            due_to_close: 6,
            closed: 4,
            closed_on_time: 3,
            reworked: 1,
            dispatched: 1,
            redispatched: 1,
            self_handled: 1,
            rated: 3,
            satisfied: 2,
            closure_rate: 66.666_666_666_666_67,      // 4 / 6
            on_time_closure_rate: 50.0,               // 3 / 6
            rework_rate: 16.666_666_666_666_668,      // 1 / 6
            accurate_dispatch_rate: 0.0,              // (1 − 1) / 1
            self_handled_rate: 20.0,                  // 1 / 5
            satisfaction_rate: 66.666_666_666_666_67, // 2 / 3
            grade: "D".into(),
            returns: 1,
            bad_reviews: 1,
            overdue_unclosed: 2,
            accepted: 4,
            avg_accept_hours: 0.375, // 90 / 4 / 60
            results: 4,
            avg_handle_hours: 7.791_666_666_666_667, // 1870 / 4 / 60
            score: 50.0,
            return_rate: 20.0,                       // 1 / 5
            bad_review_rate: 33.333_333_333_333_336, // 1 / 3
            admitted_matters: 5,                     // the county keeps no list
            non_admitted_matters: 0,
            repeat_reports: 0,
        },
    );

    // Units, sorted by code ('-' sorts before digits).
    let codes: Vec<&str> = r.units.iter().map(|u| u.unit_code.as_str()).collect();
    assert_eq!(codes, [CGJ, ZJJ, T1, C1, G1, C2, G2]);

    // C1 led A (closed on time, reworked, rated 5) and E (closed late); accepted E (30) and
    // G (20); submitted A twice (380, 60) and E (1340). Score: 0.4 × 50 + 0.2 × (100 − 50)
    // + 0.2 × 100, dispatch left out: (200 + 100 + 200) / 8 = 62.5 → C.
    let c1 = unit(&r, C1);
    assert_eq!(c1.tier(), v1::Tier::Community);
    let c1_want = v1::Indicators {
        due_to_close: 2,
        closed: 2,
        closed_on_time: 1,
        reworked: 1,
        rated: 1,
        satisfied: 1,
        closure_rate: 100.0,        // 2 / 2
        on_time_closure_rate: 50.0, // 1 / 2
        rework_rate: 50.0,          // 1 / 2
        satisfaction_rate: 100.0,   // 1 / 1
        grade: "C".into(),
        accepted: 2,
        avg_accept_hours: 50.0 / 2.0 / 60.0, // (30 + 20) / 2 / 60
        results: 3,
        avg_handle_hours: 1780.0 / 3.0 / 60.0, // (380 + 60 + 1340) / 3 / 60
        score: 62.5,
        ..Default::default()
    };
    assert_indicators("C1", c1.indicators.as_ref(), &c1_want);

    // ZJJ led B: closed on time, rated 2 (a bad review); accepted 30 after the dispatch,
    // handled 90. Score: (4 × 100 + 2 × 100 + 2 × 0) / 8 = 75 → B.
    let zjj = unit(&r, ZJJ);
    assert_eq!(
        zjj.tier(),
        v1::Tier::County,
        "a department is at the county tier"
    );
    assert_indicators(
        "ZJJ",
        zjj.indicators.as_ref(),
        &v1::Indicators {
            due_to_close: 1,
            closed: 1,
            closed_on_time: 1,
            rated: 1,
            bad_reviews: 1,
            closure_rate: 100.0,
            on_time_closure_rate: 100.0,
            bad_review_rate: 100.0,
            grade: "B".into(),
            accepted: 1,
            avg_accept_hours: 0.5, // 30 / 60
            results: 1,
            avg_handle_hours: 1.5, // 90 / 60
            score: 75.0,
            ..Default::default()
        },
    );

    // C2: C and H overdue and open, the latest overdue named C2; accepted C after 10 min.
    // Score: 0.4 × 0 + 0.2 × (100 − 0) over weight 0.6 = 33.33 → E.
    assert_indicators(
        "C2",
        unit(&r, C2).indicators.as_ref(),
        &v1::Indicators {
            due_to_close: 2,
            overdue_unclosed: 2,
            grade: "E".into(),
            accepted: 1,
            avg_accept_hours: 10.0 / 60.0,
            score: 33.333_333_333_333_336, // 200 / 6
            ..Default::default()
        },
    );
    // T1 dispatched B twice to different leads: counted once, re-dispatched. Score: accurate
    // dispatch 0 alone → 0.
    assert_indicators(
        "T1",
        unit(&r, T1).indicators.as_ref(),
        &v1::Indicators {
            dispatched: 1,
            redispatched: 1,
            grade: "E".into(),
            ..Default::default()
        },
    );
    // CGJ returned B; reported nothing, so its return rate has no denominator.
    assert_indicators(
        "CGJ",
        unit(&r, CGJ).indicators.as_ref(),
        &v1::Indicators {
            returns: 1,
            grade: "E".into(),
            ..Default::default()
        },
    );
    // G1 reported B, E and G in the period (A before it) and led nothing.
    assert_indicators(
        "G1",
        unit(&r, G1).indicators.as_ref(),
        &v1::Indicators {
            reported: 3,
            grade: "E".into(),
            ..Default::default()
        },
    );
    // G2 reported C and D; D settled on the spot: closed by the grid, on time, rated 4.
    // Score: (4 × 100 + 2 × 100 + 2 × 100) / 8 = 100 → A.
    assert_indicators(
        "G2",
        unit(&r, G2).indicators.as_ref(),
        &v1::Indicators {
            reported: 2,
            self_handled: 1,
            due_to_close: 1,
            closed: 1,
            closed_on_time: 1,
            rated: 1,
            satisfied: 1,
            closure_rate: 100.0,
            on_time_closure_rate: 100.0,
            self_handled_rate: 50.0, // 1 / 2
            satisfaction_rate: 100.0,
            grade: "A".into(),
            score: 100.0,
            ..Default::default()
        },
    );

    // Tiers, bottom up, each the sum of its units with rates recomputed.
    let tiers: Vec<v1::Tier> = r.tiers.iter().map(|t| t.tier()).collect();
    assert_eq!(
        tiers,
        [
            v1::Tier::Grid,
            v1::Tier::Community,
            v1::Tier::Township,
            v1::Tier::County
        ]
    );
    // COMMUNITY = C1 + C2: closed 2 + 0, on time 1, reworked 1, overdue open 0 + 2, due 4,
    // rated 1, satisfied 1; accepted 2 + 1 with (50 + 10) minutes; results 3 with 1780.
    // Score: 0.4 × 25 + 0.2 × (100 − 25) + 0.2 × 100 over 0.8 = (100 + 150 + 200) / 8 → D.
    assert_indicators(
        "COMMUNITY",
        r.tiers[1].indicators.as_ref(),
        &v1::Indicators {
            due_to_close: 4,
            closed: 2,
            closed_on_time: 1,
            reworked: 1,
            rated: 1,
            satisfied: 1,
            overdue_unclosed: 2,
            closure_rate: 50.0,         // 2 / 4
            on_time_closure_rate: 25.0, // 1 / 4
            rework_rate: 25.0,          // 1 / 4
            satisfaction_rate: 100.0,
            grade: "D".into(),
            accepted: 3,
            avg_accept_hours: 60.0 / 3.0 / 60.0, // (30 + 20 + 10) / 3 / 60
            results: 3,
            avg_handle_hours: 1780.0 / 3.0 / 60.0,
            score: 56.25,
            ..Default::default()
        },
    );
    // COUNTY = CGJ + ZJJ: ZJJ's figures plus CGJ's return.
    assert_indicators(
        "COUNTY",
        r.tiers[3].indicators.as_ref(),
        &v1::Indicators {
            returns: 1,
            ..zjj.indicators.clone().unwrap()
        },
    );

    // The city (a prefix of the county) sees the same figures.
    let city = stats(&s, TestServer::bearer(Role::Admin, ""), "3601")
        .await
        .unwrap();
    assert_eq!(city, r);

    // Below the county, only the cases of grids in the region count: C1's community holds
    // G1, so A, B, E and G. Reported B, E, G; closed A, B, E (A, B on time); nothing overdue
    // and open; accepted: B by ZJJ, E and G by C1; every result of the week was for these.
    let community = stats(&s, TestServer::staff(C1), C1).await.unwrap();
    let t = community.total.unwrap();
    assert_eq!(
        (
            t.reported,
            t.closed,
            t.closed_on_time,
            t.due_to_close,
            t.overdue_unclosed
        ),
        (3, 3, 2, 3, 0)
    );
    assert_eq!(
        (t.accepted, t.results, t.rated, t.self_handled),
        (3, 4, 2, 0)
    );
    assert!((t.avg_accept_hours - 80.0 / 3.0 / 60.0).abs() < 1e-9);
    assert!(
        community
            .units
            .iter()
            .all(|u| u.unit_code != C2 && u.unit_code != G2)
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_caller_asks_only_for_its_own_area_and_in_proper_terms(pool: PgPool) {
    let s = TestServer::start(pool).await;
    // a community's staff, for another community
    let err = stats(&s, TestServer::staff(C1), C2).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // or for its township
    let err = stats(&s, TestServer::staff(C1), T1).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // a department has no area of its own
    let err = stats(&s, TestServer::staff(CGJ), "360102")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("region units"), "{}", err.message());
    // its own area is fine, and empty
    let r = stats(&s, TestServer::staff(C1), C1).await.unwrap();
    assert_eq!(r.total.as_ref().unwrap().reported, 0);
    assert_eq!(r.total.unwrap().grade, "E");
    assert!(r.units.is_empty() && r.tiers.is_empty());

    let (from, to) = period();
    let ts = |t: DateTime<Utc>| Some(convert::timestamp(t));
    let admin = || s.console(TestServer::bearer(Role::Admin, ""));
    for (req, field) in [
        (
            v1::GetStatsRequest {
                region_code: String::new(),
                from: ts(from),
                to: ts(to),
                ..Default::default()
            },
            "region_code",
        ),
        (
            v1::GetStatsRequest {
                region_code: "36010".into(),
                from: ts(from),
                to: ts(to),
                ..Default::default()
            },
            "region_code",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102-CGJ".into(),
                from: ts(from),
                to: ts(to),
                ..Default::default()
            },
            "region_code",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102".into(),
                from: None,
                to: ts(to),
                ..Default::default()
            },
            "from",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102".into(),
                from: ts(from),
                to: None,
                ..Default::default()
            },
            "to",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102".into(),
                from: ts(to),
                to: ts(from),
                ..Default::default()
            },
            "to",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102".into(),
                from: ts(from),
                to: ts(from),
                ..Default::default()
            },
            "to",
        ),
        (
            v1::GetStatsRequest {
                region_code: "360102".into(),
                from: ts(from),
                to: ts(from + Duration::days(367)),
                ..Default::default()
            },
            "to",
        ),
    ] {
        let err = admin().get_stats(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{req:?}");
        assert_eq!(violated_fields(&err), [field], "{req:?}");
    }
    // a year of 366 days is allowed
    admin()
        .get_stats(v1::GetStatsRequest {
            region_code: "360102".into(),
            from: ts(from),
            to: ts(from + Duration::days(366)),
            ..Default::default()
        })
        .await
        .unwrap();
    s.stop().await;
}
