//! What the ListCases tests check against: the cases table's own rows, the lists expected from
//! them, every page of a list, and a mix of cases to list.

use chrono::{DateTime, Utc};
use griddispatch_tests::*;
use proto::v1;

use super::{HELP, LEAD, OTHER_TOWNSHIP_GRID, TOWNSHIP};

const OTHER_COMMUNITY_GRID: &str = "360102001002001";

/// A case as the table has it: the ground truth the lists are checked against.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Row {
    pub case_id: uuid::Uuid,
    pub grid_code: String,
    pub category: String,
    pub severity: String,
    pub status: String,
    pub tier: String,
    pub overdue: bool,
    pub holder_unit: Option<String>,
    pub lead_unit: Option<String>,
    pub assisting_units: Vec<String>,
    pub reported_at: DateTime<Utc>,
}

pub async fn rows(s: &TestServer) -> Vec<Row> {
    sqlx::query_as(
        "SELECT case_id, grid_code, category, severity, status, tier, overdue, holder_unit,
                lead_unit, assisting_units, reported_at FROM cases",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

/// The expected answer: matching rows, newest first, ties by id.
pub fn expect(all: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<String> {
    let mut m: Vec<&Row> = all.iter().filter(|r| keep(r)).collect();
    m.sort_by_key(|r| std::cmp::Reverse((r.reported_at, r.case_id)));
    m.iter().map(|r| r.case_id.to_string()).collect()
}

/// Every page of a list, `page_size` at a time.
pub async fn list_all(
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

pub fn req(page_size: u32) -> v1::ListCasesRequest {
    v1::ListCasesRequest {
        page_size,
        ..Default::default()
    }
}

/// A mix of cases: three grids in two townships, three categories, two severities; some
/// accepted, one dispatched to a lead and an assisting department, one overdue.
pub async fn fixture(s: &TestServer) -> (String, String) {
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
