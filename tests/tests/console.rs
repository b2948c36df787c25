//! ListCases against real PostgreSQL: every filter, alone and combined, checked against the
//! rows themselves; page boundaries; paging while cases are added and changed; scope.

#[path = "console/fixture.rs"]
mod fixture;

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use griddispatch_tests::*;
use proto::{convert, v1};
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

use fixture::{Row, expect, fixture, list_all, req, rows};

const TOWNSHIP: &str = "360102001";
const OTHER_TOWNSHIP_GRID: &str = "360102002001001";
const LEAD: &str = "360102-CGJ";
const HELP: &str = "360102-ZJJ";

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
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let mut reporting = s.admin_reporting();
        let mut community = s.escalation(TestServer::staff(COMMUNITY));
        let ids: Vec<String> = start.iter().cloned().collect();
        let (stop, done) = (stop.clone(), done.clone());
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
                done.store(i, std::sync::atomic::Ordering::SeqCst);
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
        // at least one write between two pages, however slow the machine
        let before = done.load(std::sync::atomic::Ordering::SeqCst);
        let wait = std::time::Instant::now();
        while done.load(std::sync::atomic::Ordering::SeqCst) == before
            && wait.elapsed() < std::time::Duration::from_secs(5)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
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
