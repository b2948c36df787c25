//! ListCases against real PostgreSQL: every filter, alone and combined, checked against the
//! rows themselves; page boundaries; paging while cases are added and changed; scope.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use griddispatch_tests::*;
use proto::{convert, v1};
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

const TOWNSHIP: &str = "360102001";
const OTHER_COMMUNITY_GRID: &str = "360102001002001";
const OTHER_TOWNSHIP_GRID: &str = "360102002001001";
const LEAD: &str = "360102-CGJ";
const HELP: &str = "360102-ZJJ";

/// A case as the table has it: the ground truth the lists are checked against.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    case_id: uuid::Uuid,
    grid_code: String,
    category: String,
    severity: String,
    status: String,
    tier: String,
    overdue: bool,
    holder_unit: Option<String>,
    lead_unit: Option<String>,
    assisting_units: Vec<String>,
    reported_at: DateTime<Utc>,
}

async fn rows(s: &TestServer) -> Vec<Row> {
    sqlx::query_as(
        "SELECT case_id, grid_code, category, severity, status, tier, overdue, holder_unit,
                lead_unit, assisting_units, reported_at FROM cases",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

/// The expected answer: matching rows, newest first, ties by id.
fn expect(all: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<String> {
    let mut m: Vec<&Row> = all.iter().filter(|r| keep(r)).collect();
    m.sort_by_key(|r| std::cmp::Reverse((r.reported_at, r.case_id)));
    m.iter().map(|r| r.case_id.to_string()).collect()
}

/// Every page of a list, `page_size` at a time.
async fn list_all(
    c: &mut v1::console_service_client::ConsoleServiceClient<Authed>,
    mut req: v1::ListCasesRequest,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.list_cases(req.clone()).await.unwrap().into_inner();
        assert!(r.cases.len() <= req.page_size.max(1) as usize);
        pages += 1;
        assert!(pages < 1000, "paging does not end");
        out.extend(r.cases.into_iter().map(|c| c.case_id));
        if r.next_page_token.is_empty() {
            return out;
        }
        req.page_token = r.next_page_token;
    }
}

fn req(page_size: u32) -> v1::ListCasesRequest {
    v1::ListCasesRequest {
        page_size,
        ..Default::default()
    }
}

/// A mix of cases: three grids in two townships, three categories, two severities; some
/// accepted, one dispatched to a lead and an assisting department, one overdue.
async fn fixture(s: &TestServer) -> (String, String) {
    let mut reporting = s.admin_reporting();
    let grids = [GRID, OTHER_COMMUNITY_GRID, OTHER_TOWNSHIP_GRID];
    let cats = ["0501", "0502", "0301"];
    let mut ids = Vec::new();
    for i in 0..24 {
        let mut r = report(grids[i % 3], cats[(i / 3) % 3], &format!("案件 {i}"));
        r.severity = if i % 4 == 1 {
            v1::Severity::Larger.into()
        } else {
            v1::Severity::General.into()
        };
        let c = reporting
            .report_event(r)
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        ids.push(c.case_id);
        // distinct report times, some sharing one (ties are broken by id)
        if i % 5 != 0 {
            s.advance(chrono::Duration::milliseconds(10));
        }
    }
    for id in &ids {
        s.eventually(10, "routed", || async {
            s.case_row(id).await.0 != "REPORTED"
        })
        .await;
    }
    // the community of GRID accepts its first two cases
    let mut community = s.escalation(TestServer::staff(COMMUNITY));
    for id in ids.iter().step_by(3).take(2) {
        community
            .accept(v1::AcceptRequest {
                case_id: id.clone(),
                unit_code: COMMUNITY.into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }
    // an accepted case runs past its handling deadline
    let late = ids[0].clone();
    s.advance(chrono::Duration::days(30));
    s.eventually(20, "overdue", || async {
        sqlx::query_scalar::<_, bool>("SELECT overdue FROM cases WHERE case_id = $1::uuid")
            .bind(&late)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    })
    .await;
    // then one goes up to the county and is dispatched to a lead and an assisting department
    settle(s).await;
    let joint = s.routed_case(GRID, "0301").await.case_id;
    community
        .call_up(v1::CallUpRequest {
            case_id: joint.clone(),
            unit_code: COMMUNITY.into(),
            reason: "需区级协调".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.escalation(TestServer::staff(TOWNSHIP))
        .call_up(v1::CallUpRequest {
            case_id: joint.clone(),
            unit_code: TOWNSHIP.into(),
            reason: "需区级部门".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.escalation(TestServer::staff(COUNTY))
        .dispatch(v1::DispatchRequest {
            case_id: joint.clone(),
            unit_code: COUNTY.into(),
            lead_unit: LEAD.into(),
            assisting_units: vec![HELP.into()],
            note: String::new(),
            expected_version: 0,
        })
        .await
        .unwrap();
    settle(s).await;
    (joint, late)
}

/// Waits until no deadline is due at the server's time and nothing waits to be routed or
/// published, so the rows stay as they are while a test reads them.
async fn settle(s: &TestServer) {
    use server::clock::Clock as _;
    s.eventually(30, "the pipeline is quiet", || async {
        let now = s.clock.now();
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM deadlines WHERE fired_at IS NULL AND fire_at <= $1)
                  + (SELECT count(*) FROM outbox WHERE published_at IS NULL)
                  + (SELECT count(*) FROM cases WHERE status = 'REPORTED')",
        )
        .bind(now)
        .fetch_one(&s.pool)
        .await
        .unwrap();
        busy == 0
    })
    .await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_filter_alone_and_combined_matches_the_rows(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let (joint, late) = fixture(&s).await;
    let all = rows(&s).await;
    assert_eq!(all.len(), 25);
    let mut admin = s.console(TestServer::bearer(Role::Admin, ""));
    let mid = {
        let mut t: Vec<DateTime<Utc>> = all.iter().map(|r| r.reported_at).collect();
        t.sort();
        t[12]
    };
    let open = |r: &Row| {
        [
            "REPORTED",
            "PENDING_ACCEPT",
            "IN_PROGRESS",
            "PENDING_VERIFICATION",
        ]
        .contains(&r.status.as_str())
    };
    let takes_part = |r: &Row, u: &str| {
        r.holder_unit.as_deref() == Some(u)
            || r.lead_unit.as_deref() == Some(u)
            || r.assisting_units.iter().any(|a| a == u)
    };
    type Case = (v1::ListCasesRequest, Box<dyn Fn(&Row) -> bool>);
    let cases: Vec<(&str, Case)> = vec![
        ("everything", (req(0), Box::new(|_| true))),
        (
            "county",
            (
                v1::ListCasesRequest {
                    region_code: COUNTY.into(),
                    ..req(0)
                },
                Box::new(|_| true),
            ),
        ),
        (
            "township",
            (
                v1::ListCasesRequest {
                    region_code: TOWNSHIP.into(),
                    ..req(0)
                },
                Box::new(|r| r.grid_code.starts_with(TOWNSHIP)),
            ),
        ),
        (
            "community",
            (
                v1::ListCasesRequest {
                    region_code: COMMUNITY.into(),
                    ..req(0)
                },
                Box::new(|r| r.grid_code.starts_with(COMMUNITY)),
            ),
        ),
        (
            "grid",
            (
                v1::ListCasesRequest {
                    region_code: OTHER_TOWNSHIP_GRID.into(),
                    ..req(0)
                },
                Box::new(|r| r.grid_code == OTHER_TOWNSHIP_GRID),
            ),
        ),
        (
            "city",
            (
                v1::ListCasesRequest {
                    region_code: "3601".into(),
                    ..req(0)
                },
                Box::new(|_| true),
            ),
        ),
        (
            "other city",
            (
                v1::ListCasesRequest {
                    region_code: "3602".into(),
                    ..req(0)
                },
                Box::new(|_| false),
            ),
        ),
        (
            "open statuses",
            (
                v1::ListCasesRequest {
                    statuses: vec![1, 2, 3, 4],
                    ..req(0)
                },
                Box::new(open),
            ),
        ),
        (
            "in progress",
            (
                v1::ListCasesRequest {
                    statuses: vec![v1::CaseStatus::InProgress.into()],
                    ..req(0)
                },
                Box::new(|r| r.status == "IN_PROGRESS"),
            ),
        ),
        (
            "county tier",
            (
                v1::ListCasesRequest {
                    tier: v1::Tier::County.into(),
                    ..req(0)
                },
                Box::new(|r| r.tier == "COUNTY"),
            ),
        ),
        (
            "category",
            (
                v1::ListCasesRequest {
                    category: "0502".into(),
                    ..req(0)
                },
                Box::new(|r| r.category == "0502"),
            ),
        ),
        (
            "first-level category",
            (
                v1::ListCasesRequest {
                    category: "05".into(),
                    ..req(0)
                },
                Box::new(|r| r.category.starts_with("05")),
            ),
        ),
        (
            "severity",
            (
                v1::ListCasesRequest {
                    severity: v1::Severity::Larger.into(),
                    ..req(0)
                },
                Box::new(|r| r.severity == "LARGER"),
            ),
        ),
        (
            "overdue",
            (
                v1::ListCasesRequest {
                    overdue: true,
                    ..req(0)
                },
                Box::new(|r| r.overdue),
            ),
        ),
        (
            "holder unit",
            (
                v1::ListCasesRequest {
                    unit_code: COMMUNITY.into(),
                    ..req(0)
                },
                Box::new(move |r| takes_part(r, COMMUNITY)),
            ),
        ),
        (
            "lead department",
            (
                v1::ListCasesRequest {
                    unit_code: LEAD.into(),
                    ..req(0)
                },
                Box::new(move |r| takes_part(r, LEAD)),
            ),
        ),
        (
            "assisting department",
            (
                v1::ListCasesRequest {
                    unit_code: HELP.into(),
                    ..req(0)
                },
                Box::new(move |r| takes_part(r, HELP)),
            ),
        ),
        (
            "reported after",
            (
                v1::ListCasesRequest {
                    reported_after: Some(convert::timestamp(mid)),
                    ..req(0)
                },
                Box::new(move |r| r.reported_at >= mid),
            ),
        ),
        (
            "reported before",
            (
                v1::ListCasesRequest {
                    reported_before: Some(convert::timestamp(mid)),
                    ..req(0)
                },
                Box::new(move |r| r.reported_at < mid),
            ),
        ),
        (
            "township, open, 05, after",
            (
                v1::ListCasesRequest {
                    region_code: TOWNSHIP.into(),
                    statuses: vec![1, 2, 3, 4],
                    category: "05".into(),
                    reported_after: Some(convert::timestamp(mid)),
                    ..req(0)
                },
                Box::new(move |r| {
                    r.grid_code.starts_with(TOWNSHIP)
                        && open(r)
                        && r.category.starts_with("05")
                        && r.reported_at >= mid
                }),
            ),
        ),
        (
            "community, in progress, overdue, general, holder",
            (
                v1::ListCasesRequest {
                    region_code: COMMUNITY.into(),
                    statuses: vec![v1::CaseStatus::InProgress.into()],
                    overdue: true,
                    severity: v1::Severity::Larger.into(),
                    unit_code: COMMUNITY.into(),
                    tier: v1::Tier::Community.into(),
                    ..req(0)
                },
                Box::new(move |r| {
                    r.grid_code.starts_with(COMMUNITY)
                        && r.status == "IN_PROGRESS"
                        && r.overdue
                        && r.severity == "LARGER"
                        && takes_part(r, COMMUNITY)
                        && r.tier == "COMMUNITY"
                }),
            ),
        ),
        (
            "county, lead department, county tier, before",
            (
                v1::ListCasesRequest {
                    region_code: COUNTY.into(),
                    unit_code: LEAD.into(),
                    tier: v1::Tier::County.into(),
                    reported_before: Some(convert::timestamp(mid)),
                    ..req(0)
                },
                Box::new(move |r| takes_part(r, LEAD) && r.tier == "COUNTY" && r.reported_at < mid),
            ),
        ),
    ];
    for (name, (request, keep)) in &cases {
        let want = expect(&all, keep);
        // every page size from one to past the whole list: each page boundary is crossed
        for size in [1, 2, 3, 5, 7, 24, 50] {
            let got = list_all(
                &mut admin,
                v1::ListCasesRequest {
                    page_size: size,
                    ..request.clone()
                },
            )
            .await;
            assert_eq!(got, want, "{name}, pages of {size}");
        }
    }
    // the fixture holds what the filters are meant to find
    assert!(expect(&all, |r| r.overdue).contains(&late));
    assert_eq!(
        expect(&all, move |r| takes_part(r, HELP)),
        std::slice::from_ref(&joint)
    );
    assert!(expect(&all, |r| r.category.starts_with("05")).len() >= 8);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn pages_never_repeat_or_skip_while_cases_are_added_and_changed(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut reporting = s.admin_reporting();
    for i in 0..60 {
        reporting
            .report_event(report(GRID, "0501", &format!("初始 {i}")))
            .await
            .unwrap();
        if i % 3 == 0 {
            s.advance(chrono::Duration::milliseconds(5));
        }
    }
    let start: HashSet<String> = rows(&s)
        .await
        .into_iter()
        .map(|r| r.case_id.to_string())
        .collect();
    // writers: new reports and commands on existing cases while the console pages
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let mut reporting = s.admin_reporting();
        let mut community = s.escalation(TestServer::staff(COMMUNITY));
        let ids: Vec<String> = start.iter().cloned().collect();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                reporting
                    .report_event(report(GRID, "0501", &format!("新增 {i}")))
                    .await
                    .unwrap();
                let _ = community
                    .accept(v1::AcceptRequest {
                        case_id: ids[i % ids.len()].clone(),
                        unit_code: COMMUNITY.into(),
                        expected_version: 0,
                    })
                    .await;
                i += 1;
            }
            i
        })
    };
    let mut console = s.console(TestServer::staff(COMMUNITY));
    let mut r = v1::ListCasesRequest {
        region_code: COMMUNITY.into(),
        category: "0501".into(),
        page_size: 4,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = console.list_cases(r.clone()).await.unwrap().into_inner();
        seen.extend(page.cases.into_iter().map(|c| c.case_id));
        if page.next_page_token.is_empty() {
            break;
        }
        r.page_token = page.next_page_token;
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    stop.cancel();
    let written = writer.await.unwrap();
    assert!(written > 5, "the writers ran during the paging ({written})");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no case twice");
    for id in &start {
        assert!(
            unique.contains(id),
            "case {id}, there from the start, was skipped"
        );
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_console_lists_only_inside_its_area_and_bad_requests_are_refused(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let (joint, _) = fixture(&s).await;
    let all = rows(&s).await;
    // a community's staff: its own area by default; another community is refused
    let mut community = s.console(TestServer::staff(COMMUNITY));
    let own = list_all(&mut community, req(5)).await;
    assert_eq!(own, expect(&all, |r| r.grid_code.starts_with(COMMUNITY)));
    for region in ["360102001002", TOWNSHIP, COUNTY, "3601"] {
        let err = community
            .list_cases(v1::ListCasesRequest {
                region_code: region.into(),
                ..req(5)
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{region}");
    }
    // a grid worker: its grid
    let mut worker = s.console(TestServer::bearer(Role::GridWorker, GRID));
    assert_eq!(
        list_all(&mut worker, req(5)).await,
        expect(&all, |r| r.grid_code == GRID)
    );
    // a department: the cases it takes part in, whatever region it names in its county
    let mut dept = s.console(TestServer::staff(HELP));
    assert_eq!(
        list_all(&mut dept, req(5)).await,
        std::slice::from_ref(&joint)
    );
    assert_eq!(
        list_all(
            &mut dept,
            v1::ListCasesRequest {
                region_code: COUNTY.into(),
                ..req(5)
            }
        )
        .await,
        std::slice::from_ref(&joint)
    );
    let err = dept
        .list_cases(v1::ListCasesRequest {
            unit_code: LEAD.into(),
            ..req(5)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // bad input: each names its field, and a token is good only for the list that made it
    let mut admin = s.console(TestServer::bearer(Role::Admin, ""));
    let first = admin.list_cases(req(2)).await.unwrap().into_inner();
    let cases = [
        (
            v1::ListCasesRequest {
                region_code: "36x".into(),
                ..req(2)
            },
            "region_code",
        ),
        (
            v1::ListCasesRequest {
                statuses: vec![99],
                ..req(2)
            },
            "statuses[0]",
        ),
        (v1::ListCasesRequest { tier: 42, ..req(2) }, "tier"),
        (
            v1::ListCasesRequest {
                severity: 9,
                ..req(2)
            },
            "severity",
        ),
        (
            v1::ListCasesRequest {
                unit_code: "nope".into(),
                ..req(2)
            },
            "unit_code",
        ),
        (
            v1::ListCasesRequest {
                page_size: 501,
                ..req(2)
            },
            "page_size",
        ),
        (
            v1::ListCasesRequest {
                page_token: "zz".into(),
                ..req(2)
            },
            "page_token",
        ),
        (
            v1::ListCasesRequest {
                category: "0501".into(),
                page_token: first.next_page_token.clone(),
                ..req(2)
            },
            "page_token",
        ),
        (
            v1::ListCasesRequest {
                reported_after: Some(convert::timestamp(Utc::now())),
                reported_before: Some(convert::timestamp(Utc::now() - chrono::Duration::days(1))),
                ..req(2)
            },
            "reported_before",
        ),
    ];
    for (r, field) in cases {
        let err = admin.list_cases(r).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert!(
            violated_fields(&err).contains(&field.to_owned()),
            "{field}: {err:?}"
        );
    }
    // the token of a page continues the same list
    let second = admin
        .list_cases(v1::ListCasesRequest {
            page_token: first.next_page_token,
            ..req(2)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.cases.len(), 2);
    assert!(
        first
            .cases
            .iter()
            .all(|a| second.cases.iter().all(|b| a.case_id != b.case_id))
    );
    s.stop().await;
}
