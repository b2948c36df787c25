//! Repeated reports (ADR 0044): a new report of the same matter near an open case is linked to
//! it as a repeat, counted once, and its reporter follows the original; a unit merges two cases
//! it holds and splits a wrongly linked repeat off again, each audited; a spot reported again
//! and again raises its case's severity or calls it up, as the county's policy says.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

/// 污水外溢: the matter reported again and again below.
const SEWAGE: &str = "0504";
/// 暴露垃圾: another matter at the same spot.
const RUBBISH: &str = "0501";
const TOWNSHIP: &str = "360102001";
/// A manhole in the sample county, and points `north` metres from it.
const SPOT: (f64, f64) = (28.6832, 115.8992);

fn at_north(north_m: f64) -> Option<v1::Location> {
    Some(v1::Location {
        lat: SPOT.0 + north_m / 111_320.0,
        lon: SPOT.1,
        crs: v1::Crs::Wgs84.into(),
    })
}

fn report_at(category: &str, north_m: f64, title: &str) -> v1::ReportEventRequest {
    let mut r = report(GRID, category, title);
    r.location = at_north(north_m);
    r
}

/// Gives the sample county a repeat rule: 50 m, three days, and the recurrence asked for.
async fn repeat_rule(s: &TestServer, recurrence: Option<(u32, u32, v1::RecurrenceAction)>) {
    let mut policy = s.county_policy().await;
    let (reports, days, action) = recurrence.unwrap_or((0, 0, v1::RecurrenceAction::Unspecified));
    policy.repeats = Some(v1::RepeatRule {
        distance_m: 50,
        window_hours: 72,
        recurrence_reports: reports,
        recurrence_days: days,
        recurrence_action: action.into(),
    });
    let stored = s.put_county_policy(policy).await;
    assert_eq!(stored.repeats.unwrap().distance_m, 50);
}

async fn file(s: &TestServer, req: v1::ReportEventRequest) -> v1::ReportEventResponse {
    s.worker(GRID).report_event(req).await.unwrap().into_inner()
}

/// The community accepts the case and submits its result: handled, waiting for the check.
async fn handle(s: &TestServer, case_id: &str) {
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: case_id.to_owned(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.handling(TestServer::staff(COMMUNITY))
        .submit_result(v1::SubmitResultRequest {
            case_id: case_id.to_owned(),
            unit_code: COMMUNITY.into(),
            note: "已处理".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn kinds(c: &v1::GetCaseResponse) -> Vec<String> {
    c.events.iter().map(|e| e.event_type.clone()).collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_repeat_is_linked_to_the_open_case_counted_once_and_followed(pool: PgPool) {
    let s = TestServer::start(pool).await;
    // a bad rule is refused by field, and writes nothing
    let mut admin = s.admin_routing();
    let mut bad = s.county_policy().await;
    let version = bad.version;
    bad.repeats = Some(v1::RepeatRule {
        distance_m: 5000,
        window_hours: 72,
        ..Default::default()
    });
    let err = admin
        .put_policy(v1::PutPolicyRequest { policy: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("repeats.distance_m"),
        "{}",
        err.message()
    );
    repeat_rule(&s, None).await;
    let policy = s.county_policy().await;
    assert_eq!(policy.version, version + 1, "versioned like any policy");

    let first = file(&s, report_at(SEWAGE, 0.0, "井盖冒水")).await;
    let original = first.case.unwrap();
    assert_eq!(original.status(), v1::CaseStatus::PendingAccept);
    assert_eq!(original.report_count, 1);
    assert!(first.original.is_none());

    // 20 m away, the same matter: a repeat, not a case of its own
    let again = report_at(SEWAGE, 20.0, "污水漫到路面");
    let second = file(&s, again.clone()).await;
    let repeat = second.case.unwrap();
    assert_eq!(repeat.status(), v1::CaseStatus::Merged);
    assert_eq!(repeat.merged_into, original.case_id);
    assert_ne!(repeat.case_id, original.case_id);
    let followed = second.original.expect("the reporter follows the original");
    assert_eq!(followed.case_id, original.case_id);
    assert_eq!(followed.report_count, 2);
    assert_eq!(followed.status(), v1::CaseStatus::PendingAccept);
    // the same request again is the same repeat, counted once
    let replay = file(&s, again).await;
    assert!(replay.replayed);
    assert_eq!(replay.case.unwrap().case_id, repeat.case_id);
    assert_eq!(replay.original.unwrap().report_count, 2);

    // a grid worker next door reporting the same spot is linked too, but is not shown a case
    // outside their grid: the reply names it by id only
    let mut next_door = report_at(SEWAGE, 10.0, "隔壁网格看到冒水");
    next_door.grid_code = OTHER_GRID.into();
    let theirs = s
        .worker(OTHER_GRID)
        .report_event(next_door)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.case.unwrap().merged_into, original.case_id);
    assert!(
        theirs.original.is_none(),
        "a case outside the caller's area"
    );
    let original_now = s.get_case(&original.case_id).await.case.unwrap();
    assert_eq!(original_now.report_count, 3);

    // another matter at the same spot, and the same matter 200 m away, are cases of their own
    let other_matter = file(&s, report_at(RUBBISH, 0.0, "垃圾堆放")).await;
    assert!(other_matter.original.is_none());
    assert_eq!(
        other_matter.case.unwrap().status(),
        v1::CaseStatus::PendingAccept
    );
    let far = file(&s, report_at(SEWAGE, 200.0, "另一处冒水")).await;
    assert!(far.original.is_none());

    // the case shows how many reported it, and its events say who was linked
    let got = s.get_case(&original.case_id).await;
    assert_eq!(got.case.as_ref().unwrap().report_count, 3);
    assert!(
        kinds(&got).contains(&"repeat_added".to_owned()),
        "{:?}",
        kinds(&got)
    );
    let linked = s.get_case(&repeat.case_id).await;
    assert_eq!(kinds(&linked), ["reported", "repeated"]);
    // the repeat waits in no queue
    assert_eq!(s.case_row(&repeat.case_id).await.1, None);

    // the indicators count three matters reported, and one repeat
    let total = s.recent_indicators().await;
    assert_eq!((total.reported, total.repeat_reports), (3, 2));

    // once the original is no longer open, the same matter there opens a new case
    handle(&s, &original.case_id).await;
    let after = file(&s, report_at(SEWAGE, 10.0, "又冒水了")).await;
    assert!(after.original.is_none(), "a handled case takes no repeats");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_unit_merges_two_cases_it_holds_and_splits_a_wrong_repeat(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let x = file(&s, report_at(SEWAGE, 0.0, "井盖冒水"))
        .await
        .case
        .unwrap();
    let y = file(&s, report_at(SEWAGE, 300.0, "路口积水"))
        .await
        .case
        .unwrap();
    let mut community = s.escalation(TestServer::staff(COMMUNITY));
    let merge = |case: &str, into: &str| v1::MergeRequest {
        case_id: case.to_owned(),
        into_case_id: into.to_owned(),
        unit_code: COMMUNITY.into(),
        reason: "同一处污水外溢".into(),
        expected_version: 0,
    };
    // bad requests are refused and write nothing
    let events = s.count("case_events").await;
    let err = community
        .merge(merge(&x.case_id, &x.case_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut no_reason = merge(&y.case_id, &x.case_id);
    no_reason.reason = String::new();
    assert_eq!(
        community.merge(no_reason).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // a community elsewhere has no authority over either
    let err = s
        .escalation(TestServer::staff("360102002001"))
        .merge(v1::MergeRequest {
            unit_code: "360102002001".into(),
            ..merge(&y.case_id, &x.case_id)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(s.count("case_events").await, events);

    let merged = community
        .merge(merge(&y.case_id, &x.case_id))
        .await
        .unwrap()
        .into_inner();
    let (case, into) = (merged.case.unwrap(), merged.into.unwrap());
    assert_eq!(case.status(), v1::CaseStatus::Merged);
    assert_eq!(case.merged_into, x.case_id);
    assert_eq!(into.report_count, 2);
    assert_eq!(s.case_row(&y.case_id).await.1, None, "out of every queue");
    let audit = s.store.audit_trail(&y.case_id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "merge" && a.unit.as_deref() == Some(COMMUNITY)),
        "{audit:?}"
    );
    // merged, it is merged: twice is refused
    assert_eq!(
        community
            .merge(merge(&y.case_id, &x.case_id))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    // the merge was wrong: split it off again, and it is routed afresh
    let split = v1::SplitRequest {
        case_id: y.case_id.clone(),
        unit_code: COMMUNITY.into(),
        reason: "不是同一处".into(),
        expected_version: 0,
    };
    let out = community.split(split.clone()).await.unwrap().into_inner();
    assert_eq!(out.case.unwrap().status(), v1::CaseStatus::Reported);
    assert_eq!(out.from.unwrap().report_count, 1);
    s.eventually(10, "the split case is routed again", || async {
        s.case_row(&y.case_id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    let y_now = s.get_case(&y.case_id).await;
    assert_eq!(
        kinds(&y_now),
        ["reported", "routed", "merged", "split", "routed"]
    );
    assert_eq!(y_now.case.unwrap().merged_into, "");
    assert!(
        s.store
            .audit_trail(&y.case_id)
            .await
            .unwrap()
            .iter()
            .any(|a| a.action == "split")
    );
    // not linked any more: nothing to split
    assert_eq!(
        community.split(split).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    // an automatic repeat split off by the unit holding the original
    repeat_rule(&s, None).await;
    let repeat = file(&s, report_at(SEWAGE, 10.0, "井盖旁冒水"))
        .await
        .case
        .unwrap();
    assert_eq!(repeat.merged_into, x.case_id);
    let out = community
        .split(v1::SplitRequest {
            case_id: repeat.case_id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "是隔壁小区的管道".into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.from.unwrap().report_count, 1);
    s.eventually(10, "the split repeat is routed", || async {
        s.case_row(&repeat.case_id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_spot_reported_again_and_again_raises_the_severity_or_calls_the_case_up(pool: PgPool) {
    let s = TestServer::start(pool).await;
    repeat_rule(&s, Some((3, 30, v1::RecurrenceAction::RaiseSeverity))).await;
    let first = file(&s, report_at(SEWAGE, 0.0, "井盖冒水"))
        .await
        .case
        .unwrap();
    assert_eq!(first.severity(), v1::Severity::General);
    file(&s, report_at(SEWAGE, 15.0, "冒水")).await;
    let got = s.get_case(&first.case_id).await;
    assert_eq!(got.case.unwrap().severity(), v1::Severity::General);
    // the third report of the spot in 30 days: one level up, once
    let third = file(&s, report_at(SEWAGE, 25.0, "还在冒水")).await;
    let original = third.original.unwrap();
    assert_eq!(original.report_count, 3);
    assert_eq!(original.severity(), v1::Severity::Larger);
    let fourth = file(&s, report_at(SEWAGE, 5.0, "冒水第四次")).await;
    assert_eq!(fourth.original.unwrap().severity(), v1::Severity::Larger);
    let got = s.get_case(&first.case_id).await;
    assert_eq!(
        kinds(&got),
        [
            "reported",
            "routed",
            "repeat_added",
            "repeat_added",
            "recurred",
            "repeat_added"
        ]
    );
    // ListCases filters by the raised severity
    let listed = s
        .console(TestServer::bearer(Role::Admin, ""))
        .list_cases(v1::ListCasesRequest {
            region_code: COUNTY.into(),
            severity: v1::Severity::Larger.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    assert_eq!(listed.cases[0].case_id, first.case_id);

    // the policy now calls a recurring case up instead: the community's case goes to the
    // township once its spot is reported the third time
    repeat_rule(&s, Some((3, 30, v1::RecurrenceAction::CallUp))).await;
    let elsewhere = 400.0;
    let base = file(&s, report_at(RUBBISH, elsewhere, "垃圾堆放"))
        .await
        .case
        .unwrap();
    assert_eq!(
        s.case_row(&base.case_id).await.1.as_deref(),
        Some(COMMUNITY)
    );
    file(&s, report_at(RUBBISH, elsewhere + 10.0, "垃圾没人清")).await;
    let third = file(&s, report_at(RUBBISH, elsewhere + 20.0, "垃圾越堆越多")).await;
    let called = third.original.unwrap();
    assert_eq!(called.tier(), v1::Tier::Township);
    assert_eq!(s.case_row(&base.case_id).await.1.as_deref(), Some(TOWNSHIP));
    let got = s.get_case(&base.case_id).await;
    assert!(kinds(&got).ends_with(&["recurred".to_owned(), "called_up".to_owned()]));

    // a spot whose earlier cases were all handled: the third report there is a new case, its
    // severity raised before its route, so it starts at the township (LARGER's tier)
    repeat_rule(&s, Some((3, 30, v1::RecurrenceAction::RaiseSeverity))).await;
    let again = 800.0;
    for title in ["路面塌陷积水", "又积水了"] {
        let case = file(&s, report_at(SEWAGE, again, title)).await;
        assert!(case.original.is_none());
        handle(&s, &case.case.unwrap().case_id).await;
    }
    let third = file(&s, report_at(SEWAGE, again + 5.0, "第三次积水"))
        .await
        .case
        .unwrap();
    assert_eq!(third.severity(), v1::Severity::Larger);
    assert_eq!(third.tier(), v1::Tier::Township);
    assert_eq!(
        kinds(&s.get_case(&third.case_id).await),
        ["reported", "recurred", "routed"]
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_database_and_the_server_put_a_point_in_the_same_cell(pool: PgPool) {
    // the migration fills in the cells of cases written before it with the database's function;
    // new cases get the server's: both must agree, or old cases would never be found
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        #[allow(clippy::cast_precision_loss)]
        let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
        unit
    };
    let points: Vec<(f64, f64)> = (0..2000)
        .map(|_| (18.0 + next() * 35.0, 73.7 + next() * 61.0))
        .chain([(28.6832, 115.8992), (0.0, 0.0), (-33.9, 151.2)])
        .collect();
    let (lats, lons): (Vec<f64>, Vec<f64>) = points.iter().copied().unzip();
    let cells: Vec<String> = sqlx::query_scalar(
        "SELECT gd_geohash(lat, lon, 7) FROM UNNEST($1::float8[], $2::float8[]) AS p(lat, lon)",
    )
    .bind(&lats)
    .bind(&lons)
    .fetch_all(&pool)
    .await
    .unwrap();
    for ((lat, lon), cell) in points.iter().zip(&cells) {
        let ours = domain::repeat::spot(domain::geo::LatLon::new(*lat, *lon));
        assert_eq!(&ours, cell, "({lat}, {lon})");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_resident_whose_request_repeats_another_follows_it_over_open311(pool: PgPool) {
    let s = TestServer::start(pool).await;
    repeat_rule(&s, None).await;
    let k = open311_key(&s, "居民小程序", COUNTY).await;
    let post = |k: String| {
        let addr = s.addr;
        async move {
            let body = format!(
                "api_key={k}&service_code={SEWAGE}&lat={}&long={}",
                SPOT.0, SPOT.1
            );
            let r = griddispatch_tests::plain_http::http(
                addr,
                "POST",
                "/open311/v2/requests.json",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()[0]["service_request_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let get = |id: String| {
        let (addr, k) = (s.addr, k.clone());
        async move {
            let r = griddispatch_tests::plain_http::http(
                addr,
                "GET",
                &format!("/open311/v2/requests/{id}.json?api_key={k}"),
                &[],
                b"",
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()[0].clone()
        }
    };
    let first = post(k.clone()).await;
    let second = post(k.clone()).await;
    let original = s.get_case(&first).await.case.unwrap();
    assert_eq!(s.get_case(&second).await.case.unwrap().merged_into, first);
    // the second resident's request is open while the case it repeats is, and says which
    let followed = get(second.clone()).await;
    assert_eq!(followed["service_request_id"], second.as_str());
    assert_eq!(followed["status"], "open");
    let notes = followed["status_notes"].as_str().unwrap();
    assert!(notes.contains(&original.case_number), "{notes}");
    assert_eq!(
        followed["expected_datetime"],
        get(first.clone()).await["expected_datetime"]
    );
    // and so in a list by ids
    let r = griddispatch_tests::plain_http::http(
        s.addr,
        "GET",
        &format!("/open311/v2/requests.json?api_key={k}&service_request_id={second}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.json()[0]["status"], "open");

    // the community merges the case the request follows into another: the request follows on
    let other = s.routed_case(GRID, RUBBISH).await;
    s.escalation(TestServer::staff(COMMUNITY))
        .merge(v1::MergeRequest {
            case_id: first.clone(),
            into_case_id: other.case_id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "同一处管道".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let followed = get(second.clone()).await;
    assert_eq!(followed["status"], "open");
    let notes = followed["status_notes"].as_str().unwrap();
    assert!(notes.contains(&other.case_number), "{notes}");
    s.stop().await;
}
