//! ReportingService against real PostgreSQL: durability, idempotency, validation, sync.

use std::collections::HashSet;

use griddispatch_tests::*;
use proto::v1;
use sqlx::PgPool;
use tonic::Code;

#[path = "reporting/categories.rs"]
mod categories;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_reported_case_is_in_postgres_before_the_reply(pool: PgPool) {
    let s = TestServer::start_routing_by_intake(pool).await;
    let photo = s
        .upload(
            TestServer::bearer(server::auth::Role::GridWorker, GRID),
            &jpeg(1, 4096),
        )
        .await
        .unwrap();
    let mut r = report(GRID, "0501", "路口暴露垃圾");
    r.attachments = vec![photo.clone()];
    let reply = s.worker(GRID).report_event(r).await.unwrap().into_inner();
    assert!(!reply.replayed);
    let case = reply.case.unwrap();
    let id: uuid::Uuid = case.case_id.parse().unwrap();
    // read straight from Postgres on another connection, the moment the reply is in
    let (status, number, version): (String, String, i64) =
        sqlx::query_as("SELECT status, case_number, version FROM cases WHERE case_id = $1")
            .bind(id)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    // the router may already have routed it: reporting's own work is what must be there
    assert!(
        ["REPORTED", "PENDING_ACCEPT"].contains(&status.as_str()),
        "{status}"
    );
    assert_eq!(number, case.case_number);
    assert!(version >= 1);
    assert!(number.starts_with("360102-"), "{number}");
    let events: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, event_type FROM case_events WHERE case_id = $1 AND version = 1",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert_eq!(events, vec![(1, "reported".to_owned())]);
    let outbox: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT stream, payload FROM outbox WHERE stream LIKE 'intake/%'")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].0, "intake/360102");
    assert_eq!(outbox[0].1["case_id"], case.case_id);
    let audit: (String, String, String) =
        sqlx::query_as("SELECT principal, action, result FROM audit_log WHERE action = 'report'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        (format!("grid_worker@{GRID}"), "report".into(), "ok".into())
    );
    assert_eq!(case.status(), v1::CaseStatus::Reported);
    assert_eq!(
        case.severity(),
        v1::Severity::General,
        "the category's default"
    );
    assert_eq!(case.county_code, COUNTY);
    assert_eq!(case.attachments, vec![photo]);
    assert_eq!(case.attachments[0].media_type, "image/jpeg");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn fifty_concurrent_reports_with_one_key_make_one_case(pool: PgPool) {
    let s = TestServer::start_routing_by_intake(pool).await;
    let req = report(GRID, "0501", "同一条上报");
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = s.worker(GRID);
        let req = req.clone();
        calls.push(tokio::spawn(async move { client.report_event(req).await }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for c in calls {
        let r = c.await.unwrap().expect("every retry succeeds").into_inner();
        ids.insert(r.case.unwrap().case_id);
        if !r.replayed {
            fresh += 1;
        }
    }
    assert_eq!(ids.len(), 1, "one key, one case");
    assert_eq!(fresh, 1, "exactly one call created it");
    assert_eq!(s.report_rows().await, [1, 1, 1, 1, 1, 1]);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_reused_key_with_another_report_is_already_exists(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let first = report(GRID, "0501", "原始上报");
    s.worker(GRID).report_event(first.clone()).await.unwrap();
    let before = s.report_rows().await;
    let mut other = first.clone();
    other.title = "不同的内容".into();
    let err = s.worker(GRID).report_event(other).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("idempotency_key"));
    assert_eq!(s.report_rows().await, before, "nothing written");
    // the original payload still replays
    let again = s
        .worker(GRID)
        .report_event(first)
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    s.stop().await;
}

type Mutation = fn(&mut v1::ReportEventRequest);

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_input_names_the_field_and_writes_nothing(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let cases: Vec<(&str, Mutation)> = vec![
        ("idempotency_key", |r| r.idempotency_key.clear()),
        ("idempotency_key", |r| {
            r.idempotency_key = "not-a-uuid".into()
        }),
        ("grid_code", |r| r.grid_code.clear()),
        ("grid_code", |r| r.grid_code = "360102001001".into()),
        ("grid_code", |r| r.grid_code = "360102001001999".into()),
        ("category", |r| r.category.clear()),
        ("category", |r| r.category = "5a".into()),
        ("category", |r| r.category = "0999".into()),
        ("severity", |r| r.severity = 9),
        ("title", |r| r.title = "   ".into()),
        ("title", |r| r.title = "长".repeat(201)),
        ("description", |r| r.description = "x".repeat(4001)),
        ("location", |r| r.location = None),
        ("location.lat", |r| r.location.as_mut().unwrap().lat = 91.0),
        ("location.lon", |r| {
            r.location.as_mut().unwrap().lon = -180.5
        }),
        ("location.lat", |r| {
            r.location.as_mut().unwrap().lat = f64::NAN
        }),
        ("location.crs", |r| r.location.as_mut().unwrap().crs = 0),
        ("location.crs", |r| r.location.as_mut().unwrap().crs = 17),
        ("occurred_at", |r| r.occurred_at = None),
        ("occurred_at", |r| {
            r.occurred_at = Some(proto::convert::timestamp(
                chrono::Utc::now() + chrono::Duration::minutes(6),
            ));
        }),
        ("occurred_at", |r| {
            r.occurred_at.as_mut().unwrap().nanos = -1
        }),
        ("attachments[0].content_hash", |r| {
            r.attachments[0].content_hash = "zz".into()
        }),
        ("attachments[0].size", |r| r.attachments[0].size = 0),
        ("attachments[0].url", |r| {
            r.attachments[0].url = "file:///etc/passwd".into()
        }),
        ("attachments", |r| {
            let a = r.attachments[0].clone();
            r.attachments = vec![a; 21];
        }),
        // well formed, but never uploaded
        ("attachments[0].content_hash", |r| {
            r.attachments[0].content_hash = "cd".repeat(32)
        }),
    ];
    assert!(cases.len() >= 15);
    let mut admin = s.admin_reporting();
    let photo = s
        .upload(
            TestServer::bearer(server::auth::Role::Admin, ""),
            &jpeg(2, 2048),
        )
        .await
        .unwrap();
    for (field, mutate) in &cases {
        let mut req = report(GRID, "0501", "坏请求");
        req.attachments = vec![photo.clone()];
        mutate(&mut req);
        let err = admin.report_event(req).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        let fields = violated_fields(&err);
        assert_eq!(fields, vec![(*field).to_owned()], "{field}");
        assert!(
            !err.message().contains("sql"),
            "no database text: {}",
            err.message()
        );
    }
    assert_eq!(s.report_rows().await, [0; 6], "bad input writes nothing");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sync_of_1000_reports_with_100_duplicates_makes_900_cases(pool: PgPool) {
    let s = TestServer::start_routing_by_intake(pool).await;
    let originals: Vec<v1::ReportEventRequest> = (0..900)
        .map(|i| report(GRID, "0501", &format!("离线上报 {i}")))
        .collect();
    let mut batch = originals.clone();
    // every ninth original is resent later in the same stream, as a phone does after a drop
    for i in 0..100 {
        batch.insert(i * 9 + 5, originals[i * 9].clone());
    }
    assert_eq!(batch.len(), 1000);
    let keys: Vec<String> = batch.iter().map(|r| r.idempotency_key.clone()).collect();
    let outbound = tokio_stream::iter(
        batch
            .into_iter()
            .map(|r| v1::SyncReportsRequest { report: Some(r) }),
    );
    let mut replies = s
        .worker(GRID)
        .sync_reports(outbound)
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(item) = replies.message().await.unwrap() {
        got.push(item);
    }
    assert_eq!(got.len(), 1000, "one reply per report");
    let mut replayed = 0;
    let mut cases = HashSet::new();
    for (i, item) in got.iter().enumerate() {
        assert_eq!(item.idempotency_key, keys[i], "replies in request order");
        match item.result.as_ref().unwrap() {
            v1::sync_reports_response::Result::Ok(ok) => {
                replayed += usize::from(ok.replayed);
                cases.insert(ok.case.as_ref().unwrap().case_id.clone());
            }
            v1::sync_reports_response::Result::Error(e) => panic!("item {i}: {e:?}"),
        }
    }
    assert_eq!(replayed, 100);
    assert_eq!(cases.len(), 900);
    assert_eq!(s.count("cases").await, 900);
    assert_eq!(s.count("outbox WHERE stream LIKE 'intake/%'").await, 900);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sync_items_are_independent(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut bad = report(GRID, "0999", "未知类别");
    bad.title = "未知类别".into();
    let batch = vec![
        report(GRID, "0501", "一"),
        bad,
        report(OTHER_GRID, "0501", "别的网格"),
        report(GRID, "0401", "三"),
    ];
    let outbound = tokio_stream::iter(
        batch
            .into_iter()
            .map(|r| v1::SyncReportsRequest { report: Some(r) }),
    );
    let mut replies = s
        .worker(GRID)
        .sync_reports(outbound)
        .await
        .unwrap()
        .into_inner();
    let mut results = Vec::new();
    while let Some(item) = replies.message().await.unwrap() {
        results.push(item.result.unwrap());
    }
    use v1::sync_reports_response::Result as R;
    assert!(matches!(results[0], R::Ok(_)));
    match &results[1] {
        R::Error(e) => {
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert_eq!(e.field_violations[0].field, "category");
        }
        R::Ok(_) => panic!("unknown category accepted"),
    }
    match &results[2] {
        R::Error(e) => assert_eq!(e.code, Code::PermissionDenied as i32),
        R::Ok(_) => panic!("a worker reported outside its grid"),
    }
    assert!(
        matches!(results[3], R::Ok(_)),
        "the stream goes on after errors"
    );
    assert_eq!(s.count("cases").await, 2);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_reports_get_distinct_case_numbers(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut calls = Vec::new();
    for i in 0..100 {
        let mut c = s.admin_reporting();
        let grid = if i % 2 == 0 { GRID } else { OTHER_GRID };
        let req = report(grid, "0501", &format!("并发 {i}"));
        calls.push(tokio::spawn(async move { c.report_event(req).await }));
    }
    let mut numbers = HashSet::new();
    for c in calls {
        numbers.insert(
            c.await
                .unwrap()
                .unwrap()
                .into_inner()
                .case
                .unwrap()
                .case_number,
        );
    }
    assert_eq!(numbers.len(), 100);
    let day = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y%m%d")
        .to_string();
    for n in 1..=100 {
        assert!(
            numbers.contains(&format!("360102-{day}-{n:06}")),
            "number {n} missing"
        );
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn gcj02_and_bd09_are_stored_as_wgs84(pool: PgPool) {
    let s = TestServer::start(pool).await;
    // Reference point: Bayi Square, Nanchang. WGS-84 (28.6764, 115.8921) is GCJ-02
    // (28.673031, 115.896946) and BD-09 (28.679153, 115.903408) by the published
    // coordtransform algorithm.
    const WGS: (f64, f64) = (28.6764, 115.8921);
    for (crs, lat, lon) in [
        (
            v1::Crs::Gcj02,
            28.673_031_266_787_703,
            115.896_945_597_790_59,
        ),
        (
            v1::Crs::Bd09,
            28.679_153_228_925_927,
            115.903_408_072_204_34,
        ),
        (v1::Crs::Wgs84, WGS.0, WGS.1),
        (v1::Crs::Cgcs2000, WGS.0, WGS.1),
    ] {
        let mut req = report(GRID, "0501", "坐标");
        req.location = Some(v1::Location {
            lat,
            lon,
            crs: crs.into(),
        });
        let case = s
            .admin_reporting()
            .report_event(req)
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        let loc = case.location.unwrap();
        assert_eq!(loc.crs(), v1::Crs::Wgs84);
        let d = domain::geo::distance_m(
            domain::geo::LatLon {
                lat: loc.lat,
                lon: loc.lon,
            },
            domain::geo::LatLon {
                lat: WGS.0,
                lon: WGS.1,
            },
        );
        assert!(d < 1.0, "{crs:?} landed {d} m from the WGS-84 point");
        let id: uuid::Uuid = case.case_id.parse().unwrap();
        let (db_lat, db_crs): (f64, String) =
            sqlx::query_as("SELECT lat, reported_crs FROM cases WHERE case_id = $1")
                .bind(id)
                .fetch_one(&s.pool)
                .await
                .unwrap();
        assert!((db_lat - loc.lat).abs() < 1e-12);
        assert_eq!(db_crs, crs.as_str_name());
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn self_handled_reports_are_closed_and_not_queued(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut req = report(GRID, "0502", "落叶已清扫");
    req.self_handled = true;
    let case = s
        .worker(GRID)
        .report_event(req)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.status(), v1::CaseStatus::Closed);
    assert!(case.self_handled);
    assert_eq!(case.lead_unit, GRID);
    assert_eq!(s.count("outbox").await, 0, "nothing for the router");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.count("case_events").await, 1, "and nothing happens to it");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn list_my_reports_pages_through_own_cases_only(pool: PgPool) {
    let s = TestServer::start(pool).await;
    for i in 0..7 {
        s.worker(GRID)
            .report_event(report(GRID, "0501", &format!("我的 {i}")))
            .await
            .unwrap();
    }
    s.worker(OTHER_GRID)
        .report_event(report(OTHER_GRID, "0501", "别人的"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .worker(GRID)
            .list_my_reports(v1::ListMyReportsRequest {
                page_size: 3,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.cases.len() <= 3);
        seen.extend(page.cases.into_iter().map(|c| c.title));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let want: Vec<String> = (0..7).rev().map(|i| format!("我的 {i}")).collect();
    assert_eq!(seen, want, "newest first, each once, only mine");
    let err = s
        .worker(GRID)
        .list_my_reports(v1::ListMyReportsRequest {
            page_size: 3,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["page_token"]);
    let err = s
        .worker(GRID)
        .list_my_reports(v1::ListMyReportsRequest {
            page_size: 501,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["page_size"]);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_sync_stream_over_its_limit_is_cut_after_the_limit_with_a_clear_error(pool: PgPool) {
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let s = TestServer::start_limited(
        pool,
        &prefix,
        std::sync::Arc::new(server::clock::OffsetClock::default()),
        true,
        server::RoleSet::All,
        5,
    )
    .await;
    let outbound = tokio_stream::iter((0..8).map(|i| v1::SyncReportsRequest {
        report: Some(report(GRID, "0501", &format!("超限 {i}"))),
    }));
    let mut replies = s
        .worker(GRID)
        .sync_reports(outbound)
        .await
        .unwrap()
        .into_inner();
    let mut ok = 0;
    let err = loop {
        match replies.message().await {
            Ok(Some(r)) => {
                assert!(matches!(
                    r.result,
                    Some(v1::sync_reports_response::Result::Ok(_))
                ));
                ok += 1;
            }
            Ok(None) => panic!("the stream ended without saying why"),
            Err(e) => break e,
        }
    };
    assert_eq!(ok, 5, "the first five are filed");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("at most 5"), "{}", err.message());
    assert_eq!(
        s.count("cases").await,
        5,
        "nothing past the limit is written"
    );
    s.stop().await;
}
