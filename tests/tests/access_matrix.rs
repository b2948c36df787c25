//! The access table, called: every method of `griddispatch.v1` × every role × a request inside
//! the caller's scope and one outside it, compared with `server::access::TABLE`.
//!
//! - a role the row does not list: PERMISSION_DENIED, inside or out;
//! - a listed role, inside its scope: anything but PERMISSION_DENIED, UNAUTHENTICATED or
//!   NOT_FOUND (commands carry a stale `expected_version`, so they stop at ABORTED after
//!   every access check passed and write nothing);
//! - a listed role, outside its scope: the row's refusal (NOT_FOUND where a case is named).
//!
//! Scopes that no request can leave for the principal (reference data, one's own report
//! list, the feed for an installation-wide platform) have no outside request.

use std::collections::BTreeMap;

use griddispatch_tests::*;
use proto::{convert, v1};
use server::access::{Scope, TABLE};
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

/// The sample county's copy next door: every object of the outside requests lives there.
const FAR_COUNTY: &str = "360103";
const FAR_GRID: &str = "360103001001001";
const FAR_COMMUNITY: &str = "360103001001";
const TOWNSHIP: &str = "360102001";
const STALE: u64 = 999_999;

const ROLES: [Role; 6] = [
    Role::GridWorker,
    Role::UnitStaff,
    Role::Dispatcher,
    Role::Admin,
    Role::Platform,
    Role::Intake,
];

/// A report as `role` files it: an intake system names the resident it files for.
fn report_as(role: Role, grid: &str, title: &str) -> v1::ReportEventRequest {
    let mut r = report(grid, "0501", title);
    if role == Role::Intake {
        r.source = v1::ReportSource::Resident.into();
    }
    r
}

/// The principal of each role whose area holds [`GRID`].
fn insider(role: Role, scope: Scope) -> Bearer {
    let unit = match role {
        Role::GridWorker => GRID,
        Role::UnitStaff => COMMUNITY,
        Role::Dispatcher => TOWNSHIP,
        Role::Admin if scope == Scope::Installation => "",
        Role::Admin | Role::Intake => COUNTY,
        Role::Platform => "",
    };
    TestServer::bearer(role, unit)
}

struct Fixture {
    /// A case in [`GRID`] that each role's insider reported itself.
    own: BTreeMap<&'static str, String>,
    /// A case in [`FAR_GRID`].
    far: String,
    /// A case in [`GRID`] with a photo, and the photo's hash.
    photo: (String, String),
}

async fn fixture(s: &TestServer) -> Fixture {
    let text = domain::seed::SAMPLE.replace("360102", FAR_COUNTY);
    let seed = domain::seed::parse(&text).unwrap();
    s.store
        .upsert_units(&seed.units, &store::Actor::system())
        .await
        .unwrap();
    for p in &seed.policies {
        s.store
            .put_policy(p, &store::Actor::system())
            .await
            .unwrap();
    }
    let mut own = BTreeMap::new();
    for role in [
        Role::GridWorker,
        Role::UnitStaff,
        Role::Dispatcher,
        Role::Admin,
        Role::Intake,
    ] {
        let case = s
            .reporting_with(insider(role, Scope::OwnArea))
            .report_event(report_as(role, GRID, "本辖区"))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        own.insert(role.as_str(), case.case_id);
    }
    let far = s
        .admin_reporting()
        .report_event(report(FAR_GRID, "0501", "邻县"))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .case_id;
    let shot = s
        .upload(TestServer::bearer(Role::Admin, ""), &jpeg(7, 1024))
        .await
        .unwrap();
    let mut with_photo = report(GRID, "0501", "带照片");
    with_photo.attachments = vec![shot.clone()];
    let photo_case = s
        .admin_reporting()
        .report_event(with_photo)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .case_id;
    let duty = proto::convert::roster_from_wire(roster(COMMUNITY)).unwrap();
    s.store
        .put_roster(&duty, &store::Actor::system())
        .await
        .unwrap();
    Fixture {
        own,
        far,
        photo: (photo_case, shot.content_hash),
    }
}

/// What a call answered: `Ok(())` or its status code.
type Outcome = Result<(), Code>;

fn code<T>(r: Result<T, tonic::Status>) -> Outcome {
    r.map(|_| ()).map_err(|e| e.code())
}

/// Calls `method` as `role`, naming objects inside or outside the caller's scope. `None`: the
/// scope has no outside for this principal.
#[allow(clippy::too_many_lines)]
async fn call(
    s: &TestServer,
    f: &Fixture,
    method: &str,
    role: Role,
    scope: Scope,
    inside: bool,
) -> Option<Outcome> {
    let b = || insider(role, scope);
    // a case the caller reported (any role may name the admin's), or one next door
    let case = if inside {
        f.own.get(role.as_str()).unwrap_or(&f.own["admin"]).clone()
    } else {
        f.far.clone()
    };
    let grid = if inside { GRID } else { FAR_GRID };
    let region = if inside { "" } else { FAR_COUNTY };
    let acting = COMMUNITY.to_owned();
    let month_ago = convert::timestamp(chrono::Utc::now() - chrono::Duration::days(30));
    let now = convert::timestamp(chrono::Utc::now());
    Some(match method {
        "ReportingService/ReportEvent" => code(
            s.reporting_with(b())
                .report_event(report_as(role, grid, "矩阵"))
                .await,
        ),
        "ReportingService/SyncReports" => {
            let item = v1::SyncReportsRequest {
                report: Some(report_as(role, grid, "矩阵离线")),
            };
            match s
                .reporting_with(b())
                .sync_reports(tokio_stream::iter(vec![item]))
                .await
            {
                Err(e) => Err(e.code()),
                Ok(r) => {
                    let first = r.into_inner().message().await;
                    match first {
                        Err(e) => Err(e.code()),
                        Ok(None) => Err(Code::Unknown),
                        Ok(Some(m)) => match m.result {
                            Some(v1::sync_reports_response::Result::Error(e)) => {
                                Err(Code::from(e.code))
                            }
                            _ => Ok(()),
                        },
                    }
                }
            }
        }
        "ReportingService/ListCategories" if inside => code(
            s.reporting_with(b())
                .list_categories(v1::ListCategoriesRequest::default())
                .await,
        ),
        "ReportingService/ListMyReports" if inside => code(
            s.reporting_with(b())
                .list_my_reports(v1::ListMyReportsRequest::default())
                .await,
        ),
        "ReportingService/VerifyCase" => code(
            s.reporting_with(b())
                .verify_case(v1::VerifyCaseRequest {
                    case_id: case,
                    passed: true,
                    expected_version: STALE,
                    ..Default::default()
                })
                .await,
        ),
        "ReportingService/RateCase" => code(
            s.reporting_with(b())
                .rate_case(v1::RateCaseRequest {
                    case_id: case,
                    score: 5,
                    comment: String::new(),
                })
                .await,
        ),
        "RoutingService/UpsertUnits" => {
            let unit = v1::Unit {
                code: grid.into(),
                name: "矩阵网格".into(),
                kind: v1::UnitKind::UnitGrid.into(),
                parent_code: grid[..12].into(),
                ..Default::default()
            };
            code(
                s.routing_with(b())
                    .upsert_units(v1::UpsertUnitsRequest { units: vec![unit] })
                    .await,
            )
        }
        "RoutingService/ListUnits" if inside => code(
            s.routing_with(b())
                .list_units(v1::ListUnitsRequest::default())
                .await,
        ),
        "RoutingService/UpsertCategories" => {
            let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
            let cats = seed.categories[..1]
                .iter()
                .map(convert::category_to_wire)
                .collect();
            // outside: an admin of one area, for whom the catalogue is out of reach
            let who = if !inside && role == Role::Admin {
                TestServer::bearer(role, COUNTY)
            } else {
                b()
            };
            code(
                s.routing_with(who)
                    .upsert_categories(v1::UpsertCategoriesRequest { categories: cats })
                    .await,
            )
        }
        "RoutingService/PutPolicy" => {
            let county = if inside { COUNTY } else { FAR_COUNTY };
            let text = domain::seed::SAMPLE.replace("360102", county);
            let policy = domain::seed::parse(&text).unwrap().policies.remove(0);
            code(
                s.routing_with(b())
                    .put_policy(v1::PutPolicyRequest {
                        policy: Some(convert::policy_to_wire(&policy, 0, chrono::Utc::now())),
                    })
                    .await,
            )
        }
        "RoutingService/GetPolicy" if inside => code(
            s.routing_with(b())
                .get_policy(v1::GetPolicyRequest {
                    county_code: COUNTY.into(),
                })
                .await,
        ),
        "RoutingService/ResolveRoute" if inside => code(
            s.routing_with(b())
                .resolve_route(v1::ResolveRouteRequest {
                    grid_code: GRID.into(),
                    category: "0501".into(),
                    ..Default::default()
                })
                .await,
        ),
        "MediaService/Upload" if inside => code(
            s.media(b())
                .upload(tokio_stream::iter(vec![v1::UploadRequest {
                    chunk: jpeg(role as u64, 512),
                }]))
                .await,
        ),
        "MediaService/Download" => {
            // inside: the photo's case in the caller's area; outside: the case next door
            let (case_id, hash) = if inside {
                f.photo.clone()
            } else {
                (f.far.clone(), f.photo.1.clone())
            };
            let r = s
                .media(b())
                .download(v1::DownloadRequest {
                    case_id,
                    content_hash: hash,
                })
                .await;
            match r {
                Err(e) => Err(e.code()),
                Ok(r) => match r.into_inner().message().await {
                    Err(e) => Err(e.code()),
                    Ok(_) => Ok(()),
                },
            }
        }
        "RoutingService/LocatePoint" if inside => code(
            s.routing_with(b())
                .locate_point(v1::LocatePointRequest {
                    location: report(GRID, "0501", "").location,
                })
                .await,
        ),
        "EscalationService/WatchQueue" => code(
            s.escalation(b())
                .watch_queue(v1::WatchQueueRequest {
                    unit_code: if inside { acting } else { FAR_COMMUNITY.into() },
                })
                .await,
        ),
        "EscalationService/Accept" => code(
            s.escalation(b())
                .accept(v1::AcceptRequest {
                    case_id: case,
                    unit_code: acting,
                    expected_version: STALE,
                })
                .await,
        ),
        "EscalationService/CallUp" => code(
            s.escalation(b())
                .call_up(v1::CallUpRequest {
                    case_id: case,
                    unit_code: acting,
                    reason: "超出社区能力".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "EscalationService/Return" => code(
            s.escalation(b())
                .r#return(v1::ReturnRequest {
                    case_id: case,
                    unit_code: acting,
                    reason: "不属本单位".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "EscalationService/Dispatch" => code(
            s.escalation(b())
                .dispatch(v1::DispatchRequest {
                    case_id: case,
                    unit_code: acting,
                    lead_unit: "360102-CGJ".into(),
                    assisting_units: vec![],
                    note: "联合处置".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "EscalationService/Merge" => code(
            s.escalation(b())
                .merge(v1::MergeRequest {
                    case_id: case,
                    into_case_id: f.far.clone(),
                    unit_code: acting,
                    reason: "同一事项".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "EscalationService/Split" => code(
            s.escalation(b())
                .split(v1::SplitRequest {
                    case_id: case,
                    unit_code: acting,
                    reason: "不是同一事项".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "HandlingService/SubmitResult" => code(
            s.handling(b())
                .submit_result(v1::SubmitResultRequest {
                    case_id: case,
                    unit_code: acting,
                    note: "已处置".into(),
                    attachments: vec![],
                    expected_version: STALE,
                })
                .await,
        ),
        "HandlingService/RequestExtension" => code(
            s.handling(b())
                .request_extension(v1::RequestExtensionRequest {
                    case_id: case,
                    unit_code: acting,
                    until: Some(convert::timestamp(
                        chrono::Utc::now() + chrono::Duration::days(3),
                    )),
                    reason: "等待材料".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "HandlingService/DecideExtension" => code(
            s.handling(b())
                .decide_extension(v1::DecideExtensionRequest {
                    case_id: case,
                    unit_code: acting,
                    approved: true,
                    note: "同意".into(),
                    expected_version: STALE,
                })
                .await,
        ),
        "ConsoleService/ListCases" => code(
            s.console(b())
                .list_cases(v1::ListCasesRequest {
                    region_code: region.into(),
                    ..Default::default()
                })
                .await,
        ),
        "ConsoleService/GetCase" => code(
            s.console(b())
                .get_case(v1::GetCaseRequest { case_id: case })
                .await,
        ),
        "ConsoleService/WatchCases" => code(
            s.console(b())
                .watch_cases(v1::WatchCasesRequest {
                    region_code: region.into(),
                    after_cursor: String::new(),
                })
                .await,
        ),
        "ConsoleService/GetStats" => {
            let own_area = match role {
                Role::GridWorker => GRID,
                Role::UnitStaff => COMMUNITY,
                Role::Dispatcher => TOWNSHIP,
                _ => COUNTY,
            };
            code(
                s.console(b())
                    .get_stats(v1::GetStatsRequest {
                        region_code: if inside { own_area } else { FAR_COUNTY }.into(),
                        from: Some(month_ago),
                        to: Some(now),
                        ..Default::default()
                    })
                    .await,
            )
        }
        "DutyService/PutRoster" => code(
            v1::duty_service_client::DutyServiceClient::with_interceptor(s.channel.clone(), b())
                .put_roster(v1::PutRosterRequest {
                    roster: Some(roster(if inside { COMMUNITY } else { FAR_COMMUNITY })),
                })
                .await,
        ),
        "DutyService/GetRoster" => code(
            v1::duty_service_client::DutyServiceClient::with_interceptor(s.channel.clone(), b())
                .get_roster(v1::GetRosterRequest {
                    unit_code: if inside { COMMUNITY } else { FAR_COMMUNITY }.into(),
                })
                .await,
        ),
        "DutyService/WhoIsOnDuty" => code(
            v1::duty_service_client::DutyServiceClient::with_interceptor(s.channel.clone(), b())
                .who_is_on_duty(v1::WhoIsOnDutyRequest {
                    unit_code: if inside { COMMUNITY } else { FAR_COMMUNITY }.into(),
                    ..Default::default()
                })
                .await,
        ),
        "ExportService/StreamEvents" if inside => code(
            v1::export_service_client::ExportServiceClient::with_interceptor(
                s.channel.clone(),
                b(),
            )
            .stream_events(v1::StreamEventsRequest::default())
            .await,
        ),
        m if !inside => {
            // only scopes without an outside get here
            assert!(
                matches!(
                    scope,
                    Scope::Reference | Scope::OwnReports | Scope::PlatformFeed | Scope::Uploads
                ),
                "{m} has no outside request although its scope has an outside"
            );
            return None;
        }
        m => panic!("{m} has no request in the matrix: add one"),
    })
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_method_and_role_in_and_out_of_scope_matches_the_table(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let f = fixture(&s).await;
    let mut wrong = Vec::new();
    let mut checked = 0;
    for rule in TABLE {
        for role in ROLES {
            for inside in [true, false] {
                let Some(got) = call(&s, &f, rule.method, role, rule.scope, inside).await else {
                    continue;
                };
                checked += 1;
                let allowed = rule.roles.contains(&role);
                let ok = match (allowed, inside) {
                    (false, _) => got == Err(Code::PermissionDenied),
                    (true, true) => !matches!(
                        got,
                        Err(Code::PermissionDenied | Code::Unauthenticated | Code::NotFound)
                    ),
                    (true, false) => got == Err(rule.out_of_scope.code()),
                };
                if !ok {
                    wrong.push(format!(
                        "{} as {} {}: got {got:?}, the table says {}",
                        rule.method,
                        role.as_str(),
                        if inside { "inside" } else { "outside" },
                        if !allowed {
                            "PERMISSION_DENIED".to_owned()
                        } else if inside {
                            "admitted".to_owned()
                        } else {
                            format!("{:?}", rule.out_of_scope)
                        }
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked > 200, "only {checked} calls checked");
    // every command stopped at an access check or its version guard: the only events are
    // the reports' own (and their routing)
    assert_eq!(
        s.count("case_events WHERE event_type NOT IN ('reported', 'routed')")
            .await,
        0,
        "a refused or stale command wrote an event"
    );
    s.stop().await;
}
