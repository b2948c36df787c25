//! 365天服務不打烊 (ADR 0042): a unit's duty roster through DutyService, versioned and audited;
//! who is on duty across a shift change, on a public holiday and on a make-up working day of
//! the county's calendar; a unit's week through `gridctl roster`.

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

type Duty = v1::duty_service_client::DutyServiceClient<Authed>;

fn duty(s: &TestServer, role: Role, unit: &str) -> Duty {
    v1::duty_service_client::DutyServiceClient::with_interceptor(
        s.channel.clone(),
        TestServer::bearer(role, unit),
    )
}

/// China time.
fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

async fn on_duty(d: &mut Duty, unit: &str, t: DateTime<Utc>) -> Vec<String> {
    d.who_is_on_duty(v1::WhoIsOnDutyRequest {
        unit_code: unit.into(),
        at: Some(proto::convert::timestamp(t)),
        until: None,
    })
    .await
    .unwrap()
    .into_inner()
    .on_duty
    .into_iter()
    .map(|x| x.person.unwrap().id)
    .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn who_is_on_duty_follows_shifts_holidays_and_swaps(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut admin = duty(&s, Role::Admin, COUNTY);

    // a roster is stored with a version and an audit row; the same one again changes nothing
    let put = |r: v1::Roster| {
        let mut admin = admin.clone();
        async move {
            admin
                .put_roster(v1::PutRosterRequest { roster: Some(r) })
                .await
                .map(|r| r.into_inner().roster.unwrap())
        }
    };
    assert_eq!(put(roster(COMMUNITY)).await.unwrap().version, 1);
    assert_eq!(put(roster(COMMUNITY)).await.unwrap().version, 1);

    // across the evening shift change: team 甲 by day, 乙 by night (1 December, the anchor)
    let mut staff = duty(&s, Role::UnitStaff, COMMUNITY);
    assert_eq!(
        on_duty(&mut staff, COMMUNITY, at(2026, 12, 1, 19, 59)).await,
        ["S01", "S02"]
    );
    assert_eq!(
        on_duty(&mut staff, COMMUNITY, at(2026, 12, 1, 20, 0)).await,
        ["S03"]
    );
    // the night shift runs past midnight; the next day the teams change places
    assert_eq!(
        on_duty(&mut staff, COMMUNITY, at(2026, 12, 2, 7, 0)).await,
        ["S03"]
    );
    assert_eq!(
        on_duty(&mut staff, COMMUNITY, at(2026, 12, 2, 9, 0)).await,
        ["S03"]
    );

    // a swap: S04 stands in for S01 on the 3rd's day shift
    let mut swapped = roster(COMMUNITY);
    swapped.swaps.push(v1::Swap {
        date: "2026-12-03".into(),
        shift: "白班".into(),
        out: "S01".into(),
        replacement: Some(v1::Person {
            id: "S04".into(),
            name: "值班员S04".into(),
        }),
    });
    assert_eq!(put(swapped).await.unwrap().version, 2);
    assert_eq!(
        on_duty(&mut staff, COMMUNITY, at(2026, 12, 3, 9, 0)).await,
        ["S04", "S02"]
    );
    let trail = s
        .store
        .audit_trail(&format!("roster:{COMMUNITY}"))
        .await
        .unwrap();
    assert_eq!(
        trail.len(),
        3,
        "every put is audited, the unchanged one too"
    );

    // a township's office on working days and one person on rest days, by the county's
    // calendar: National Day (Thursday 1 October) is a rest day, Saturday 10 October is worked
    let township = "360102001";
    let mut office = roster(township);
    office.teams.push(v1::Team {
        name: "值守".into(),
        members: vec![v1::Person {
            id: "R01".into(),
            name: "值班员R01".into(),
        }],
    });
    office.shifts = vec![
        v1::Shift {
            name: "办公".into(),
            start: "08:30".into(),
            hours: 9,
            days: v1::ShiftDays::WorkingDays.into(),
            anchor: "2026-01-01".into(),
            rotation: vec!["甲".into()],
        },
        v1::Shift {
            name: "节假日值班".into(),
            start: "08:30".into(),
            hours: 24,
            days: v1::ShiftDays::RestDays.into(),
            anchor: "2026-01-01".into(),
            rotation: vec!["值守".into()],
        },
    ];
    put(office).await.unwrap();
    let mut dispatcher = duty(&s, Role::Dispatcher, township);
    assert_eq!(
        on_duty(&mut dispatcher, township, at(2026, 9, 30, 10, 0)).await,
        ["S01", "S02"]
    );
    assert!(
        on_duty(&mut dispatcher, township, at(2026, 9, 30, 19, 0))
            .await
            .is_empty()
    );
    assert_eq!(
        on_duty(&mut dispatcher, township, at(2026, 10, 1, 10, 0)).await,
        ["R01"]
    );
    assert_eq!(
        on_duty(&mut dispatcher, township, at(2026, 10, 10, 10, 0)).await,
        ["S01", "S02"]
    );
    assert_eq!(
        on_duty(&mut dispatcher, township, at(2026, 10, 11, 10, 0)).await,
        ["R01"]
    );

    // bad rosters are refused, naming the field, and change nothing
    let mut bad = roster(COMMUNITY);
    bad.shifts[0].rotation.push("丙".into());
    let err = put(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["roster.shifts[0].rotation"]);
    let mut bad = roster(COMMUNITY);
    bad.shifts[1].start = "25:00".into();
    assert_eq!(
        violated_fields(&put(bad).await.unwrap_err()),
        ["roster.shifts[1].start"]
    );
    // a unit without a roster, and a week too long
    let err = staff
        .get_roster(v1::GetRosterRequest {
            unit_code: "360102001002".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "another community's");
    let err = admin
        .get_roster(v1::GetRosterRequest {
            unit_code: "360102001002".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = staff
        .who_is_on_duty(v1::WhoIsOnDutyRequest {
            unit_code: COMMUNITY.into(),
            at: Some(proto::convert::timestamp(at(2026, 12, 1, 0, 0))),
            until: Some(proto::convert::timestamp(at(2027, 1, 15, 0, 0))),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // the week as an operator reads it
    let gridctl = griddispatch_tests::cluster::gridd_binary()
        .parent()
        .unwrap()
        .join("gridctl");
    let out = tokio::process::Command::new(gridctl)
        .args(["--server", &format!("http://{}", s.addr), "roster"])
        .args(["--unit", COMMUNITY, "--from", "2026-12-01"])
        .env("GRIDD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .output()
        .await
        .expect("gridctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("head: 值班员H01 (H01)"), "{text}");
    assert!(
        text.contains("12-01 周二  08:00–20:00  白班  甲  值班员S01 (S01), 值班员S02 (S02)"),
        "{text}"
    );
    assert!(
        text.contains("12-02 周三  08:00–20:00  白班  乙  值班员S03 (S03)"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1 + 14, "{text}");
    s.stop().await;
}
