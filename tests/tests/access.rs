//! Authentication, area scoping, the registry RPCs, health and reflection.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn no_token_or_a_bad_one_is_unauthenticated(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let err = s
        .reporting_with(TestServer::anonymous())
        .report_event(report(GRID, "0501", "匿名"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let forged = server::auth::mint_hs256(b"wrong-secret", "x", Role::Admin, "", 60).unwrap();
    let err = s
        .reporting_with(forged_bearer(&forged))
        .report_event(report(GRID, "0501", "伪造"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // expired well beyond the clock-skew leeway
    let expired = server::auth::sign_hs256(
        SECRET,
        &server::auth::Claims {
            sub: "x".into(),
            role: Role::Admin,
            unit: String::new(),
            exp: u64::try_from(chrono::Utc::now().timestamp()).unwrap() - 600,
        },
    )
    .unwrap();
    let err = s
        .reporting_with(forged_bearer(&expired))
        .report_event(report(GRID, "0501", "过期"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("Expired") || err.message().contains("xpired"),
        "{}",
        err.message()
    );
    assert_eq!(s.report_rows().await, [0; 6]);
    s.stop().await;
}

fn forged_bearer(token: &str) -> Bearer {
    Bearer::raw(&format!("Bearer {token}"))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn workers_report_only_for_their_own_area(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let err = s
        .worker(GRID)
        .report_event(report(OTHER_GRID, "0501", "越界"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // a community's staff may report for any grid of the community, not beyond it
    let staff = s.reporting_with(TestServer::bearer(Role::UnitStaff, COMMUNITY));
    staff
        .clone()
        .report_event(report(GRID, "0501", "社区代报"))
        .await
        .unwrap();
    let err = staff
        .clone()
        .report_event(report(OTHER_GRID, "0501", "越界"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // the provincial platform reads; it does not report
    let err = s
        .reporting_with(TestServer::bearer(Role::Platform, ""))
        .report_event(report(GRID, "0501", "平台"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(s.count("cases").await, 1);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_registry_loads_idempotently_and_checks_its_input(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let units: Vec<v1::Unit> = seed
        .units
        .iter()
        .map(proto::convert::unit_to_wire)
        .collect();
    let mut admin = s.admin_routing();
    let changed = admin
        .upsert_units(v1::UpsertUnitsRequest {
            units: units.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .changed;
    assert_eq!(
        changed, 0,
        "the sample is already loaded: loading again changes nothing"
    );
    let before = s.count("units").await;

    let mut renamed = units[0].clone();
    renamed.name = "南昌市（改名）".into();
    let changed = admin
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![renamed],
        })
        .await
        .unwrap()
        .into_inner()
        .changed;
    assert_eq!(changed, 1);

    let orphan = v1::Unit {
        code: "360103001001001".into(),
        name: "无主网格".into(),
        kind: v1::UnitKind::UnitGrid.into(),
        parent_code: "360103001001".into(),
        ..Default::default()
    };
    let err = admin
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![orphan],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["units[0].parent_code"]);
    let wrong_kind = v1::Unit {
        code: "360102001001099".into(),
        name: "错类型".into(),
        kind: v1::UnitKind::UnitCommunity.into(),
        parent_code: "360102001001".into(),
        ..Default::default()
    };
    let err = admin
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![wrong_kind],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["units[0].code"]);
    assert_eq!(s.count("units").await, before);

    let err = s
        .routing_with(TestServer::bearer(Role::GridWorker, GRID))
        .upsert_units(v1::UpsertUnitsRequest { units })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // paging through a community's grids
    let mut codes = Vec::new();
    let mut token = String::new();
    loop {
        let page = admin
            .list_units(v1::ListUnitsRequest {
                parent_code: COMMUNITY.into(),
                kind: v1::UnitKind::UnitGrid.into(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        codes.extend(page.units.into_iter().map(|u| u.code));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected = seed
        .units
        .iter()
        .filter(|u| {
            u.parent_code
                .as_ref()
                .is_some_and(|p| p.as_str() == COMMUNITY)
        })
        .count();
    assert_eq!(codes.len(), expected);
    assert!(codes.windows(2).all(|w| w[0] < w[1]));
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn policies_round_trip_and_route(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut admin = s.admin_routing();
    let p = admin
        .get_policy(v1::GetPolicyRequest {
            county_code: COUNTY.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(p.version, 1);
    let again = admin
        .put_policy(v1::PutPolicyRequest {
            policy: Some(p.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(again.version, 1, "the same policy again changes nothing");
    let mut bad = p.clone();
    bad.departments[0].lead = "360102-NOPE".into();
    let err = admin
        .put_policy(v1::PutPolicyRequest { policy: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), vec!["policy.departments[0].lead"]);
    let err = admin
        .get_policy(v1::GetPolicyRequest {
            county_code: "360199".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let r = admin
        .resolve_route(v1::ResolveRouteRequest {
            grid_code: GRID.into(),
            category: "0601".into(),
            severity: 0,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.tier(), v1::Tier::Township);
    assert_eq!(r.unit_code, "360102001");
    assert!(!r.lead_department.is_empty());
    assert!(!r.reasons.is_empty());
    let r = admin
        .resolve_route(v1::ResolveRouteRequest {
            grid_code: GRID.into(),
            category: "0501".into(),
            severity: v1::Severity::Major.into(),
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.tier(), v1::Tier::County);
    assert_eq!(r.unit_code, COUNTY);

    // a changed policy: 0501 now starts at the township. The version moves on, the dry run
    // and a real report both route by the new version
    let before = admin
        .resolve_route(v1::ResolveRouteRequest {
            grid_code: GRID.into(),
            category: "0501".into(),
            severity: 0,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.tier(), v1::Tier::Community);
    let mut changed = p.clone();
    changed.category_tiers.push(v1::TierOverride {
        category: "0501".into(),
        tier: v1::Tier::Township.into(),
    });
    let stored = admin
        .put_policy(v1::PutPolicyRequest {
            policy: Some(changed),
        })
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(stored.version, 2);
    let after = admin
        .resolve_route(v1::ResolveRouteRequest {
            grid_code: GRID.into(),
            category: "0501".into(),
            severity: 0,
            at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (after.tier(), after.unit_code.as_str()),
        (v1::Tier::Township, "360102001")
    );
    // the router's directory caches policies for up to its lifetime (200 ms in tests)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let case = s.routed_case(GRID, "0501").await;
    assert_eq!(
        (case.tier(), case.holder_unit.as_str()),
        (v1::Tier::Township, "360102001")
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_service_answers_and_health_and_reflection_answer(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let listed = s
        .console(TestServer::bearer(Role::Admin, ""))
        .list_cases(v1::ListCasesRequest {
            region_code: COUNTY.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.cases.is_empty() && listed.next_page_token.is_empty());

    for service in [
        "",
        "griddispatch.v1.ReportingService",
        "griddispatch.v1.RoutingService",
        "griddispatch.v1.EscalationService",
        "griddispatch.v1.HandlingService",
        "griddispatch.v1.ConsoleService",
        "griddispatch.v1.ExportService",
    ] {
        let health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            health.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service}"
        );
    }

    // reflection answers in both versions, v1 and v1alpha
    let mut listed = Vec::new();
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let req = tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(s.channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection reply");
        };
        listed.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
    }
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(s.channel.clone())
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected v1alpha reflection reply");
        };
        listed.push(list.service.into_iter().map(|s| s.name).collect::<Vec<_>>());
    }
    for names in &listed {
        for want in [
            "griddispatch.v1.ReportingService",
            "griddispatch.v1.RoutingService",
            "griddispatch.v1.EscalationService",
            "griddispatch.v1.HandlingService",
            "griddispatch.v1.ConsoleService",
            "griddispatch.v1.ExportService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
    }
    s.stop().await;
}
