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
                region_code: String::new(),
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

/// One gRPC-Web call as a browser makes it (HTTP/1.1, a framed protobuf body), from `origin`.
async fn grpc_web(
    s: &TestServer,
    path: &str,
    message: &[u8],
    token: &str,
    origin: &str,
) -> griddispatch_tests::plain_http::HttpReply {
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(message);
    let mut headers = vec![
        ("Content-Type", "application/grpc-web+proto"),
        ("X-Grpc-Web", "1"),
        ("Origin", origin),
    ];
    if !token.is_empty() {
        headers.push(("Authorization", token));
    }
    griddispatch_tests::plain_http::http(s.addr, "POST", path, &headers, &body).await
}

/// The frames of a gRPC-Web answer: its messages, and its trailers as text.
fn frames(body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers, mut at) = (Vec::new(), String::new(), 0);
    while at + 5 <= body.len() {
        let flag = body[at];
        let n = u32::from_be_bytes(body[at + 1..at + 5].try_into().unwrap()) as usize;
        let data = &body[at + 5..at + 5 + n];
        if flag & 0x80 == 0 {
            messages.push(data.to_vec());
        } else {
            trailers.push_str(&String::from_utf8_lossy(data));
        }
        at += 5 + n;
    }
    (messages, trailers)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn browsers_call_over_grpc_web_from_configured_origins_only(pool: PgPool) {
    use prost::Message as _;
    let s = TestServer::start(pool).await;
    let path = "/griddispatch.v1.ReportingService/ListCategories";
    let worker = TestServer::bearer(Role::GridWorker, GRID).header();
    let request = v1::ListCategoriesRequest::default().encode_to_vec();

    // the board's origin, with a token: the answer, and the status readable by the page
    let r = grpc_web(&s, path, &request, &worker, BOARD_ORIGIN).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/grpc-web"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(BOARD_ORIGIN));
    assert!(
        r.header("access-control-expose-headers")
            .unwrap_or_default()
            .contains("grpc-status"),
        "{:?}",
        r.headers
    );
    let (messages, trailers) = frames(&r.body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let listed = v1::ListCategoriesResponse::decode(messages[0].as_slice()).unwrap();
    assert!(!listed.categories.is_empty());

    // the same tokens and scopes as any client: none is UNAUTHENTICATED, a role the method
    // does not list is PERMISSION_DENIED
    let r = grpc_web(&s, path, &request, "", BOARD_ORIGIN).await;
    let status = r
        .header("grpc-status")
        .map(str::to_owned)
        .unwrap_or_else(|| frames(&r.body).1);
    assert!(status.contains("16"), "{status} {:?}", r.headers);
    let platform = TestServer::bearer(Role::Platform, "").header();
    let r = grpc_web(&s, path, &request, &platform, BOARD_ORIGIN).await;
    let status = r
        .header("grpc-status")
        .map(str::to_owned)
        .unwrap_or_else(|| frames(&r.body).1);
    assert!(status.contains('7'), "{status} {:?}", r.headers);

    // a preflight from the board's origin is answered; from any other origin it is not
    let preflight = |origin: &'static str| {
        let addr = s.addr;
        async move {
            griddispatch_tests::plain_http::http(
                addr,
                "OPTIONS",
                path,
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "POST"),
                    (
                        "Access-Control-Request-Headers",
                        "authorization,content-type,x-grpc-web",
                    ),
                ],
                b"",
            )
            .await
        }
    };
    let ok = preflight(BOARD_ORIGIN).await;
    assert_eq!(ok.status, 200, "{:?}", ok.headers);
    assert_eq!(ok.header("access-control-allow-origin"), Some(BOARD_ORIGIN));
    assert!(
        ok.header("access-control-allow-headers")
            .unwrap_or_default()
            .contains("authorization"),
        "{:?}",
        ok.headers
    );
    let other = preflight("https://elsewhere.example").await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    // and a real call from another origin carries no permission for the page to read it
    let r = grpc_web(&s, path, &request, &worker, "https://elsewhere.example").await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    s.stop().await;
}
