//! Corners of the contract that the flow tests do not reach: the category catalogue, the case
//! file's scope, checks and ratings by the wrong grid, extensions refused or malformed, and
//! the route dry run at a given time.

use griddispatch_tests::*;
use proto::{convert, v1};
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

const OTHER_COMMUNITY: &str = "360102002001";
const OTHER_GRID: &str = "360102002001001";
const TOWNSHIP: &str = "360102001";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn upsert_categories_adds_changes_and_refuses_bad_ones(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut admin = s.admin_routing();
    let list = |s: &TestServer| {
        let mut w = s.worker(GRID);
        async move {
            w.list_categories(v1::ListCategoriesRequest::default())
                .await
                .unwrap()
                .into_inner()
                .categories
        }
    };
    let before = list(&s).await;
    let mut new = before.iter().find(|c| c.code == "0501").unwrap().clone();
    new.code = "0599".into();
    new.name = "其他市容问题".into();
    let changed = admin
        .upsert_categories(v1::UpsertCategoriesRequest {
            categories: vec![new.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .changed;
    assert_eq!(changed, 1);
    let again = admin
        .upsert_categories(v1::UpsertCategoriesRequest {
            categories: vec![new.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .changed;
    assert_eq!(again, 0, "the same category again changes nothing");
    let after = list(&s).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        after.iter().find(|c| c.code == "0599").unwrap().name,
        "其他市容问题"
    );

    // a parent that does not exist, and a grid worker: refused, nothing written
    let mut orphan = new.clone();
    orphan.code = "9901".into();
    orphan.parent_code = "99".into();
    let err = admin
        .upsert_categories(v1::UpsertCategoriesRequest {
            categories: vec![orphan],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = s
        .routing_with(TestServer::bearer(Role::GridWorker, GRID))
        .upsert_categories(v1::UpsertCategoriesRequest {
            categories: vec![new],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(list(&s).await.len(), before.len() + 1);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_case_file_is_for_those_in_scope(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let get = |b: Bearer| {
        let mut c = s.console(b);
        let id = case.case_id.clone();
        async move { c.get_case(v1::GetCaseRequest { case_id: id }).await }
    };
    for b in [
        TestServer::staff(COMMUNITY),
        TestServer::staff(TOWNSHIP),
        TestServer::staff(COUNTY),
        TestServer::bearer(Role::GridWorker, GRID),
    ] {
        assert!(get(b).await.is_ok());
    }
    for b in [
        TestServer::staff(OTHER_COMMUNITY),
        TestServer::bearer(Role::GridWorker, OTHER_GRID),
        // a department the case has nothing to do with
        TestServer::staff("360102-CGJ"),
    ] {
        // out of scope reads as absent: an outsider cannot tell the case exists
        assert_eq!(get(b).await.unwrap_err().code(), Code::NotFound);
    }
    let mut admin = s.console(TestServer::bearer(Role::Admin, ""));
    let err = admin
        .get_case(v1::GetCaseRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .get_case(v1::GetCaseRequest {
            case_id: "not-a-uuid".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn only_the_reporting_grid_checks_and_rates(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let id = awaiting_check(&s).await;
    let version = s.case_row(&id).await.2;
    let err = s
        .worker(OTHER_GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    // the other grid's worker cannot see the case: NOT_FOUND, as for any case outside its area
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(s.case_row(&id).await.2, version, "nothing written");
    s.worker(GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = s
        .worker(OTHER_GRID)
        .rate_case(v1::RateCaseRequest {
            case_id: id.clone(),
            score: 1,
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let file = s.get_case(&id).await;
    assert_eq!(file.case.unwrap().rating, 0, "not rated by the other grid");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn extensions_refused_or_not_later_change_nothing(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let id = s.routed_case(GRID, "0501").await.case_id;
    let accepted = s
        .escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let due = accepted.handle_due_at.unwrap();
    let mut handling = s.handling(TestServer::staff(COMMUNITY));
    // an extension must end after the current due time
    for until in [
        due,
        prost_types::Timestamp {
            seconds: due.seconds - 3600,
            nanos: 0,
        },
    ] {
        let err = handling
            .request_extension(v1::RequestExtensionRequest {
                case_id: id.clone(),
                unit_code: COMMUNITY.into(),
                until: Some(until),
                reason: "等待材料".into(),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["until"]);
    }
    assert_eq!(
        s.case_row(&id).await.2,
        accepted.version as i64,
        "nothing written"
    );
    handling
        .request_extension(v1::RequestExtensionRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            until: Some(prost_types::Timestamp {
                seconds: due.seconds + 86_400,
                nanos: 0,
            }),
            reason: "等待材料".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let deadlines_before = s.count("deadlines").await;
    let c = s
        .handling(TestServer::staff(TOWNSHIP))
        .decide_extension(v1::DecideExtensionRequest {
            case_id: id.clone(),
            unit_code: TOWNSHIP.into(),
            approved: false,
            note: "材料已齐".into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        c.handle_due_at,
        Some(due),
        "a refused extension keeps the due time"
    );
    assert_eq!(s.count("deadlines").await, deadlines_before, "no new clock");
    let file = s.get_case(&id).await;
    let decided = file
        .events
        .iter()
        .find(|e| e.event_type == "extension_decided")
        .unwrap();
    assert!(decided.data_json.contains("\"approved\":false"));
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_route_dry_run_counts_working_time_from_the_given_instant(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut admin = s.admin_routing();
    let at = |rfc: &str| {
        convert::timestamp(
            chrono::DateTime::parse_from_rfc3339(rfc)
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    };
    let route = |t| {
        let mut a = admin.clone();
        async move {
            a.resolve_route(v1::ResolveRouteRequest {
                grid_code: GRID.into(),
                category: "0501".into(),
                severity: 0,
                at: Some(t),
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    // Wednesday 2 December 2026, 10:00 China time: a working morning
    let weekday = route(at("2026-12-02T10:00:00+08:00")).await;
    // Saturday 5 December, 10:00: the working clock starts on Monday morning
    let saturday = route(at("2026-12-05T10:00:00+08:00")).await;
    let due = |r: &v1::ResolveRouteResponse| {
        convert::from_timestamp(r.accept_due_at.as_ref().unwrap()).unwrap()
    };
    let monday = chrono::DateTime::parse_from_rfc3339("2026-12-07T00:00:00+08:00").unwrap();
    assert!(due(&weekday) < monday, "{}", due(&weekday));
    assert!(due(&saturday) > monday, "{}", due(&saturday));
    // thirty working minutes: on a working morning, half an hour later
    assert_eq!(
        due(&weekday),
        chrono::DateTime::parse_from_rfc3339("2026-12-02T10:30:00+08:00").unwrap()
    );
    let err = admin
        .resolve_route(v1::ResolveRouteRequest {
            grid_code: GRID.into(),
            category: "0501".into(),
            severity: 0,
            at: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    s.stop().await;
}

/// Items of `stream` until one of `kind` for `case` arrives (failing after 15 s).
async fn item_of(
    stream: &mut tonic::Streaming<v1::QueueItem>,
    kind: v1::QueueItemKind,
    case: &str,
) -> v1::QueueItem {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let item = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} item for {case}"))
            .unwrap()
            .unwrap();
        if item.kind() == kind && item.case_id == case {
            return item;
        }
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn queues_carry_warnings_withdrawals_and_supervision(pool: PgPool) {
    let s = TestServer::start(pool).await;
    // 0503 has a one-minute accept clock and a ten-minute handling clock at the community
    community_limits(
        &s.store,
        "0503",
        domain::calendar::TimeLimit::natural(1),
        Some(domain::calendar::TimeLimit::natural(10)),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let watch = |unit: &str| {
        let mut e = s.escalation(TestServer::staff(unit));
        let unit = unit.to_owned();
        async move {
            e.watch_queue(v1::WatchQueueRequest { unit_code: unit })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut community = watch(COMMUNITY).await;
    let mut township = watch(TOWNSHIP).await;

    // nobody accepts: a warning at 80 % of the minute, then the item leaves the community
    let idle = s.routed_case(GRID, "0503").await.case_id;
    item_of(&mut community, v1::QueueItemKind::ToAccept, &idle).await;
    s.advance(chrono::Duration::seconds(50));
    let warning = item_of(&mut community, v1::QueueItemKind::Warning, &idle).await;
    assert!(warning.case.is_some());
    s.advance(chrono::Duration::seconds(20));
    item_of(&mut community, v1::QueueItemKind::Withdrawn, &idle).await;
    item_of(&mut township, v1::QueueItemKind::ToAccept, &idle).await;

    // accepted but not handled in ten minutes: the township is told to supervise
    let slow = s.routed_case(GRID, "0503").await.case_id;
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: slow.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.advance(chrono::Duration::minutes(11));
    let supervise = item_of(&mut township, v1::QueueItemKind::Supervise, &slow).await;
    assert_eq!(supervise.case.unwrap().case_id, slow);
    s.stop().await;
}
