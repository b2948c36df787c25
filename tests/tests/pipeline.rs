//! The pipeline end to end against real PostgreSQL and Redis: routing, acceptance, calling up,
//! joint handling, verification, rating, extensions, queues, and who may act.

use griddispatch_tests::*;
use proto::v1;
use sqlx::PgPool;
use tonic::Code;

#[path = "pipeline/extensions.rs"]
mod extensions;
#[path = "pipeline/metrics.rs"]
mod metrics;

use metrics::{scrape, series_names, service_of};

const TOWNSHIP: &str = "360102001";
const LEAD: &str = "360102-CGJ";
const HELP_A: &str = "360102-ZJJ";
const HELP_B: &str = "360102-GAFJ";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn one_case_through_all_four_stages(pool: PgPool) {
    let s = TestServer::start(pool).await;
    // 網格發現: the grid worker reports
    let case = s
        .worker(GRID)
        .report_event(report(GRID, "0501", "路口暴露垃圾"))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let id = case.case_id.clone();
    s.eventually(10, "routed to the community", || async {
        s.case_row(&id).await.1.as_deref() == Some(COMMUNITY)
    })
    .await;

    // 社區呼叫: the community accepts, then calls the township
    let mut community = s.escalation(TestServer::staff(COMMUNITY));
    let c = community
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.status(), v1::CaseStatus::InProgress);
    assert!(c.handle_due_at.is_some());
    let c = community
        .call_up(v1::CallUpRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "涉及多个小区，需街道协调".into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (c.status(), c.tier(), c.holder_unit.as_str()),
        (v1::CaseStatus::PendingAccept, v1::Tier::Township, TOWNSHIP)
    );

    // 分級響應: the township calls the county
    s.escalation(TestServer::staff(TOWNSHIP))
        .call_up(v1::CallUpRequest {
            case_id: id.clone(),
            unit_code: TOWNSHIP.into(),
            reason: "需区级部门联合处置".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    // 協同處置: the county dispatches a lead and two assisting departments
    let c = s
        .escalation(TestServer::staff(COUNTY))
        .dispatch(v1::DispatchRequest {
            case_id: id.clone(),
            unit_code: COUNTY.into(),
            lead_unit: LEAD.into(),
            assisting_units: vec![HELP_A.into(), HELP_B.into()],
            note: "城管牵头，住建、公安配合".into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.lead_unit, LEAD);
    assert_eq!(
        c.assisting_units,
        vec![HELP_A.to_owned(), HELP_B.to_owned()]
    );
    for dept in [HELP_A, HELP_B, LEAD] {
        s.escalation(TestServer::staff(dept))
            .accept(v1::AcceptRequest {
                case_id: id.clone(),
                unit_code: dept.into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }
    // the lead cannot finish before every part is in
    let err = s
        .handling(TestServer::staff(LEAD))
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: LEAD.into(),
            note: "已清理".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    for dept in [HELP_A, HELP_B] {
        s.handling(TestServer::staff(dept))
            .submit_result(v1::SubmitResultRequest {
                case_id: id.clone(),
                unit_code: dept.into(),
                note: "配合完成".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let c = s
        .handling(TestServer::staff(LEAD))
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: LEAD.into(),
            note: "已清理".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.status(), v1::CaseStatus::PendingVerification);
    // 核查: the check fails, the same lead reworks, the check passes
    let c = s
        .worker(GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: false,
            note: "仍有残留".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(
        (c.status(), c.holder_unit.as_str(), c.rework_count),
        (v1::CaseStatus::InProgress, LEAD, 1)
    );
    s.handling(TestServer::staff(LEAD))
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: LEAD.into(),
            note: "二次清理完毕".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = s
        .worker(GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.status(), v1::CaseStatus::Closed);
    let c = s
        .worker(GRID)
        .rate_case(v1::RateCaseRequest {
            case_id: id.clone(),
            score: 5,
            comment: "处理及时".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.rating, 5);
    let err = s
        .worker(GRID)
        .rate_case(v1::RateCaseRequest {
            case_id: id.clone(),
            score: 4,
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "rated once");

    let file = s.get_case(&id).await;
    let types: Vec<&str> = file.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "reported",
            "routed",
            "accepted",
            "called_up",
            "called_up",
            "dispatched",
            "accepted",
            "accepted",
            "accepted",
            "part_submitted",
            "part_submitted",
            "result_submitted",
            "verified",
            "result_submitted",
            "verified",
            "rated"
        ]
    );
    let versions: Vec<u64> = file.events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=16).collect::<Vec<u64>>(),
        "versions without gaps"
    );
    assert_eq!(file.case.unwrap().version, 16);
    // every unit's share is on file
    let units: Vec<&str> = file
        .assignments
        .iter()
        .map(|a| a.unit_code.as_str())
        .collect();
    for u in [COMMUNITY, TOWNSHIP, COUNTY, LEAD, HELP_A, HELP_B] {
        assert!(units.contains(&u), "{u} in {units:?}");
    }
    assert!(
        file.assignments
            .iter()
            .all(|a| a.status() != v1::AssignmentStatus::AssignmentPendingAccept)
    );

    // an operator's view of the same: a second case that nobody accepts escalates on its
    // clock, then the metrics endpoint shows each series with a plausible value
    let late = s
        .worker(GRID)
        .report_event(report(GRID, "0501", "无人受理的案件"))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .case_id;
    s.eventually(10, "the second case routed", || async {
        s.case_row(&late).await.1.as_deref() == Some(COMMUNITY)
    })
    .await;
    s.advance(chrono::Duration::days(40));
    s.eventually(10, "the second case called up on its clock", || async {
        s.case_row(&late).await.1.as_deref() == Some(TOWNSHIP)
    })
    .await;
    let m = scrape(&s).await;
    let at_least = |series: &str, min: f64| {
        let v = m.value(series);
        assert!(v >= min, "{series} = {v}, expected at least {min}");
    };
    for method in [
        "ReportEvent",
        "Accept",
        "CallUp",
        "Dispatch",
        "SubmitResult",
    ] {
        at_least(
            &format!(
                "grpc_server_handled_total{{service=\"griddispatch.v1.{}\",method=\"{method}\",code=\"OK\"}}",
                service_of(method)
            ),
            1.0,
        );
    }
    // the refused rating above, by its code
    at_least(
        "grpc_server_handled_total{service=\"griddispatch.v1.ReportingService\",method=\"RateCase\",code=\"FAILED_PRECONDITION\"}",
        1.0,
    );
    at_least(
        "grpc_server_handling_seconds_count{service=\"griddispatch.v1.ReportingService\",method=\"ReportEvent\"}",
        1.0,
    );
    at_least(
        "gd_queue_depth{status=\"pending_accept\",tier=\"township\",unit_kind=\"tier_unit\"}",
        1.0,
    );
    at_least(
        "gd_queue_oldest_age_seconds{status=\"pending_accept\",tier=\"township\",unit_kind=\"tier_unit\"}",
        0.0,
    );
    at_least(
        "gd_cases_overdue{status=\"pending_accept\",tier=\"township\",unit_kind=\"tier_unit\"}",
        0.0,
    );
    at_least("gd_deadlines_armed", 1.0);
    at_least("gd_deadlines_fired_total{outcome=\"escalated\"}", 1.0);
    at_least("gd_deadline_lateness_seconds_count", 1.0);
    at_least("gd_outbox_pending", 0.0);
    at_least("gd_outbox_lag_seconds", 0.0);
    at_least("gd_dead_letters_total", 0.0);
    for batch in ["reports", "commands", "deadlines", "outbox"] {
        at_least(&format!("gd_batch_size_count{{batch=\"{batch}\"}}"), 1.0);
    }
    at_least("gd_db_pool_connections{state=\"max\"}", 2.0);
    at_least("gd_db_pool_connections{state=\"open\"}", 1.0);
    assert_eq!(m.value("gd_redis_up"), 1.0);
    // the router's and the relay's loops hold theirs
    at_least("gd_redis_blocking_connections", 1.0);
    // counters with nothing to count yet are there, at 0
    for kind in ["inbox_rebuilt", "intake_rebuilt", "resent"] {
        at_least(
            &format!("gd_reconciler_repairs_total{{kind=\"{kind}\"}}"),
            0.0,
        );
    }
    at_least("gd_deadlines_fired_total{outcome=\"overdue\"}", 0.0);
    // every series the alerts and the dashboard query is one this server exports, and every
    // alert's runbook entry exists
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/griddispatch.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for name in series_names(&text) {
            assert!(
                m.declares(&name),
                "{file} queries {name}, which /metrics does not export"
            );
        }
        for anchor in text.split("docs/operations.md#").skip(1) {
            let anchor: String = anchor
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let heading = ops.lines().any(|l| {
                l.starts_with('#')
                    && l.trim_start_matches('#')
                        .trim()
                        .to_lowercase()
                        .replace(' ', "-")
                        == anchor
            });
            assert!(
                heading,
                "{file} names the runbook entry #{anchor}: not in docs/operations.md"
            );
        }
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn watch_queue_shows_pending_then_live_and_the_first_accept_wins(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let first = s.routed_case(GRID, "0501").await;
    let mut watch_a = s
        .escalation(TestServer::staff(COMMUNITY))
        .watch_queue(v1::WatchQueueRequest {
            unit_code: COMMUNITY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut watch_b = s
        .escalation(TestServer::staff(COMMUNITY))
        .watch_queue(v1::WatchQueueRequest {
            unit_code: COMMUNITY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    for w in [&mut watch_a, &mut watch_b] {
        let item = w.message().await.unwrap().unwrap();
        assert_eq!(
            (item.kind(), item.case_id.as_str()),
            (v1::QueueItemKind::ToAccept, first.case_id.as_str())
        );
        assert_eq!(
            w.message().await.unwrap().unwrap().kind(),
            v1::QueueItemKind::SnapshotEnd
        );
    }
    let second = s.routed_case(GRID, "0502").await;
    for w in [&mut watch_a, &mut watch_b] {
        // the stream's position is taken before the snapshot, so the first case's own item
        // may come again (same version) when its publication raced the snapshot
        let item = loop {
            let item = tokio::time::timeout(std::time::Duration::from_secs(10), w.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if item.case_id != first.case_id {
                break item;
            }
            assert_eq!(item.kind(), v1::QueueItemKind::ToAccept, "only a repeat");
        };
        assert_eq!(
            (item.kind(), item.case_id.as_str()),
            (v1::QueueItemKind::ToAccept, second.case_id.as_str()),
            "every console sees every item"
        );
    }
    let mut a = s.escalation(TestServer::staff(COMMUNITY));
    let mut b = s.escalation(TestServer::staff(COMMUNITY));
    let req = v1::AcceptRequest {
        case_id: second.case_id.clone(),
        unit_code: COMMUNITY.into(),
        expected_version: 0,
    };
    let (ra, rb) = tokio::join!(a.accept(req.clone()), b.accept(req));
    let codes = [
        ra.as_ref().err().map(tonic::Status::code),
        rb.as_ref().err().map(tonic::Status::code),
    ];
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "{codes:?}");
    assert!(codes.contains(&Some(Code::FailedPrecondition)), "{codes:?}");
    // the accepted item is withdrawn from every console
    let item = tokio::time::timeout(std::time::Duration::from_secs(10), watch_a.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (item.kind(), item.case_id.as_str()),
        (v1::QueueItemKind::Withdrawn, second.case_id.as_str())
    );
    // a console outside the area may not watch
    let err = s
        .escalation(TestServer::staff("360102002001"))
        .watch_queue(v1::WatchQueueRequest {
            unit_code: COMMUNITY.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn commands_check_who_acts_and_the_version(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let id = case.case_id.clone();
    let mut other = s.escalation(TestServer::staff("360102002001"));
    let err = other
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "acting for another unit"
    );
    let err = other
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: "360102002001".into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a case outside the area reads as absent"
    );
    let mut community = s.escalation(TestServer::staff(COMMUNITY));
    let err = community
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 7,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let err = community
        .accept(v1::AcceptRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = community
        .accept(v1::AcceptRequest {
            case_id: "x".into(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["case_id"]);
    let err = community
        .call_up(v1::CallUpRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            reason: " ".into(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["reason"]);
    let err = s
        .escalation(TestServer::staff(COUNTY))
        .dispatch(v1::DispatchRequest {
            case_id: id.clone(),
            unit_code: COUNTY.into(),
            lead_unit: "360102-NOPE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let (status, holder, version) = s.case_row(&id).await;
    assert_eq!(
        (status.as_str(), holder.as_deref(), version),
        ("PENDING_ACCEPT", Some(COMMUNITY), 2),
        "nothing changed"
    );
    // a return goes to the tier above and is counted
    let c = community
        .r#return(v1::ReturnRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "不属于本社区".into(),
            expected_version: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.holder_unit, TOWNSHIP);
    s.stop().await;
}
