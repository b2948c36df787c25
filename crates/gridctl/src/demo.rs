//! The demo pipeline: what a county sees on its first morning, through the real API.

use anyhow::{Context as _, bail};
use chrono::Utc;
use proto::convert;
use proto::v1;
use server::auth::Role;
use tonic_types::StatusExt as _;

use domain::seed;

use crate::{Conn, load_seed};

pub(crate) fn report_request(
    key: String,
    grid: &str,
    category: &str,
    title: &str,
    description: &str,
    (lat, lon, crs): (f64, f64, v1::Crs),
    self_handled: bool,
) -> v1::ReportEventRequest {
    v1::ReportEventRequest {
        idempotency_key: key,
        grid_code: grid.to_owned(),
        category: category.to_owned(),
        severity: 0,
        title: title.to_owned(),
        description: description.to_owned(),
        location: Some(v1::Location {
            lat,
            lon,
            crs: crs.into(),
        }),
        occurred_at: Some(convert::timestamp(
            Utc::now() - chrono::Duration::minutes(10),
        )),
        self_handled,
        attachments: Vec::new(),
        ..Default::default()
    }
}

/// A status as one line: code, message and any field violations.
pub(crate) fn describe(s: &tonic::Status) -> String {
    let fields = s
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("{:?}: {} [{fields}]", s.code(), s.message())
}

fn print_case(label: &str, c: &v1::Case, replayed: bool) {
    let loc = c.location.unwrap_or_default();
    println!(
        "  {label:<28} {} status={:<14} severity={:<8} grid={} category={} at ({:.5}, {:.5}) WGS84{}",
        c.case_number,
        c.status().as_str_name(),
        c.severity().as_str_name(),
        c.grid_code,
        c.category,
        loc.lat,
        loc.lon,
        if replayed {
            "  (replayed: same case)"
        } else {
            ""
        }
    );
}

pub(crate) async fn run(conn: &Conn) -> anyhow::Result<()> {
    println!("== 1. registry: the sample county (东湖区 360102)");
    let (units, cats, policies) = load_seed(conn, seed::SAMPLE).await?;
    println!(
        "  seeded: {units} units changed, {cats} categories changed, {policies} policy stored"
    );
    let (units, cats, _) = load_seed(conn, seed::SAMPLE).await?;
    println!(
        "  seeded again: {units} units changed, {cats} categories changed (loading twice changes nothing)"
    );

    let sample = seed::parse(seed::SAMPLE)?;
    let grids: Vec<&str> = sample
        .units
        .iter()
        .filter(|u| u.kind == domain::UnitKind::Grid)
        .map(|u| u.code.as_str())
        .collect();
    if grids.len() < 4 {
        bail!("the sample county has too few grids");
    }

    println!("\n== 2. routing dry run");
    let mut routing = conn.routing(conn.auth_as(Role::Admin, "", "demo-admin")?);
    for (cat, sev) in [
        ("0501", 0),
        ("0601", 0),
        ("0201", v1::Severity::Major as i32),
    ] {
        let r = routing
            .resolve_route(v1::ResolveRouteRequest {
                grid_code: grids[0].to_owned(),
                category: cat.to_owned(),
                severity: sev,
                at: None,
            })
            .await
            .context("ResolveRoute")?
            .into_inner();
        println!(
            "  category {cat}: tier {} unit {} lead {} — {}",
            r.tier().as_str_name(),
            r.unit_code,
            if r.lead_department.is_empty() {
                "-"
            } else {
                &r.lead_department
            },
            r.reasons.join("; ")
        );
    }

    println!("\n== 3. grid workers report (網格發現)");
    let worker = |grid: &str| -> anyhow::Result<_> {
        Ok(conn.reporting(conn.auth_as(Role::GridWorker, grid, &format!("worker-{grid}"))?))
    };
    let reports = [
        (
            grids[0],
            "0501",
            "路口暴露垃圾",
            "垃圾桶满溢，周边有散落垃圾",
            (28.6832, 115.8992, v1::Crs::Wgs84),
            false,
        ),
        (
            grids[1],
            "0202",
            "楼道燃气异味",
            "三单元楼道有燃气味，已提醒住户开窗",
            (28.6851, 115.9023, v1::Crs::Gcj02),
            false,
        ),
        (
            grids[2],
            "0101",
            "邻里噪音纠纷",
            "两户因装修噪音发生争执",
            (28.6795, 115.8950, v1::Crs::Bd09),
            false,
        ),
        (
            grids[3],
            "0601",
            "疑似违法搭建",
            "小区空地新搭建彩钢棚",
            (28.6810, 115.8901, v1::Crs::Wgs84),
            false,
        ),
        (
            grids[0],
            "0502",
            "人行道落叶堆积",
            "网格员已现场清扫",
            (28.6829, 115.8987, v1::Crs::Wgs84),
            true,
        ),
    ];
    let mut first = None;
    for (grid, cat, title, desc, loc, self_handled) in reports {
        let key = uuid::Uuid::now_v7().to_string();
        let req = report_request(key, grid, cat, title, desc, loc, self_handled);
        first.get_or_insert_with(|| req.clone());
        let r = worker(grid)?
            .report_event(req)
            .await
            .map_err(|s| anyhow::anyhow!(describe(&s)))?
            .into_inner();
        let crs = loc.2.as_str_name();
        print_case(
            &format!("{cat} from {crs}"),
            r.case.as_ref().context("no case")?,
            r.replayed,
        );
    }

    println!("\n== 4. a phone on a bad network retries");
    let first = first.context("no report")?;
    let grid = first.grid_code.clone();
    let again = worker(&grid)?
        .report_event(first.clone())
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?
        .into_inner();
    print_case(
        "retry, same key",
        again.case.as_ref().context("no case")?,
        again.replayed,
    );
    let changed = v1::ReportEventRequest {
        title: "另一件事".into(),
        ..first
    };
    match worker(&grid)?.report_event(changed).await {
        Ok(_) => bail!("a reused key with another report must be refused"),
        Err(s) => println!("  same key, other report       -> {}", describe(&s)),
    }

    println!("\n== 5. bad input gets a clear error and writes nothing");
    let mut bad = report_request(
        String::new(),
        "360102999",
        "99x",
        "",
        "",
        (95.0, 115.9, v1::Crs::Wgs84),
        false,
    );
    bad.occurred_at = Some(convert::timestamp(Utc::now() + chrono::Duration::hours(2)));
    match worker(grids[0])?.report_event(bad).await {
        Ok(_) => bail!("a bad report must be refused"),
        Err(s) => println!("  {}", describe(&s)),
    }

    println!("\n== 6. a phone comes back online (SyncReports)");
    let litter = report_request(
        uuid::Uuid::now_v7().to_string(),
        grids[1],
        "0503",
        "绿化带垃圾",
        "",
        (28.6850, 115.9020, v1::Crs::Wgs84),
        false,
    );
    let lamp = report_request(
        uuid::Uuid::now_v7().to_string(),
        grids[1],
        "0401",
        "路灯不亮",
        "小区东门两盏路灯不亮",
        (28.6852, 115.9025, v1::Crs::Wgs84),
        false,
    );
    let unknown = report_request(
        uuid::Uuid::now_v7().to_string(),
        grids[1],
        "0999",
        "未知类别",
        "",
        (28.6852, 115.9025, v1::Crs::Wgs84),
        false,
    );
    // the second item is the phone resending the first: same key, same report
    let batch = vec![litter.clone(), litter, lamp, unknown];
    let outbound = tokio_stream::iter(
        batch
            .into_iter()
            .map(|r| v1::SyncReportsRequest { report: Some(r) }),
    );
    let mut replies = worker(grids[1])?
        .sync_reports(outbound)
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?
        .into_inner();
    let mut i = 0;
    while let Some(item) = replies.message().await? {
        i += 1;
        match item.result {
            Some(v1::sync_reports_response::Result::Ok(r)) => {
                print_case(
                    &format!("item {i}"),
                    r.case.as_ref().context("no case")?,
                    r.replayed,
                );
            }
            Some(v1::sync_reports_response::Result::Error(e)) => {
                let fields: Vec<String> =
                    e.field_violations.iter().map(|v| v.field.clone()).collect();
                println!(
                    "  item {i:<23} error code={} {} {fields:?}",
                    e.code, e.message
                );
            }
            None => println!("  item {i}: empty reply"),
        }
    }

    println!("\n== 7. what a grid worker sees (ListMyReports)");
    let mine = worker(grids[0])?
        .list_my_reports(v1::ListMyReportsRequest {
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?
        .into_inner();
    for c in &mine.cases {
        print_case("mine", c, false);
    }
    stages(conn, grids[0]).await?;
    println!("\ndemo done.");
    Ok(())
}

/// Waits until the router has given the case to a unit.
async fn routed(conn: &Conn, id: &str) -> anyhow::Result<v1::Case> {
    let mut console = conn.console(conn.auth_as(Role::Admin, "", "demo-console")?);
    for _ in 0..200 {
        let c = console
            .get_case(v1::GetCaseRequest {
                case_id: id.to_owned(),
            })
            .await?
            .into_inner()
            .case
            .context("no case")?;
        if c.status() != v1::CaseStatus::Reported {
            return Ok(c);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bail!("case {id} was not routed within 10 s")
}

fn step(label: &str, c: &v1::Case) {
    println!(
        "  {label:<46} status={:<20} tier={:<9} holder={:<15} lead={} assisting={:?}",
        c.status().as_str_name(),
        c.tier().as_str_name(),
        c.holder_unit,
        c.lead_unit,
        c.assisting_units
    );
}

#[allow(clippy::needless_pass_by_value)] // shaped for `map_err`
fn fail(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(describe(&s))
}

/// One case through the four stages: 網格發現 → 社區呼叫 → 分級響應 → 協同處置.
async fn stages(conn: &Conn, grid: &str) -> anyhow::Result<()> {
    println!("\n== 8. one case through the four stages");
    let community = &grid[..12];
    let township = &grid[..9];
    let (lead, help) = ("360102-CGJ", "360102-ZJJ");
    let staff = |unit: &str, role: Role| conn.auth_as(role, unit, &format!("staff-{unit}"));
    let mut worker = conn.reporting(staff(grid, Role::GridWorker)?);
    let req = report_request(
        uuid::Uuid::now_v7().to_string(),
        grid,
        "0601",
        "小区空地私搭彩钢棚",
        "网格巡查发现，正在施工",
        (28.6811, 115.8903, v1::Crs::Wgs84),
        false,
    );
    let c = worker
        .report_event(req)
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    let id = c.case_id.clone();
    step("grid worker reports (網格發現)", &c);
    let c = routed(conn, &id).await?;
    step("router: policy sends 0601 to the township", &c);
    let c = conn
        .escalation(staff(township, Role::Dispatcher)?)
        .dispatch(v1::DispatchRequest {
            case_id: id.clone(),
            unit_code: township.into(),
            lead_unit: community.into(),
            assisting_units: vec![],
            note: "社区先行核实".into(),
            expected_version: 0,
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("township sends it down (下發) to the community", &c);
    let mut com = conn.escalation(staff(community, Role::UnitStaff)?);
    com.accept(v1::AcceptRequest {
        case_id: id.clone(),
        unit_code: community.into(),
        expected_version: 0,
    })
    .await
    .map_err(fail)?;
    let c = com
        .call_up(v1::CallUpRequest {
            case_id: id.clone(),
            unit_code: community.into(),
            reason: "违建需执法，社区无权处置".into(),
            expected_version: 0,
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("community accepts, then calls up (社區呼叫)", &c);
    let c = conn
        .escalation(staff(township, Role::Dispatcher)?)
        .dispatch(v1::DispatchRequest {
            case_id: id.clone(),
            unit_code: township.into(),
            lead_unit: lead.into(),
            assisting_units: vec![help.into()],
            note: "城管牵头，住建配合".into(),
            expected_version: 0,
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("township whistles (吹哨): lead + assisting", &c);
    for dept in [help, lead] {
        conn.escalation(staff(dept, Role::UnitStaff)?)
            .accept(v1::AcceptRequest {
                case_id: id.clone(),
                unit_code: dept.into(),
                expected_version: 0,
            })
            .await
            .map_err(fail)?;
    }
    conn.handling(staff(help, Role::UnitStaff)?)
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: help.into(),
            note: "结构安全核查完毕".into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    let c = conn
        .handling(staff(lead, Role::UnitStaff)?)
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: lead.into(),
            note: "已责令拆除".into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("departments report in; part and result (協同處置)", &c);
    let c = worker
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: false,
            note: "仍有部分未拆除".into(),
            // named, so that the check also runs against a gridd in insecure dev mode, where
            // every caller is an admin with no unit of its own
            unit_code: grid.into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("grid checks on site: not done (返工)", &c);
    conn.handling(staff(lead, Role::UnitStaff)?)
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: lead.into(),
            note: "已全部拆除".into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    worker
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            unit_code: grid.into(),
            ..Default::default()
        })
        .await
        .map_err(fail)?;
    let c = worker
        .rate_case(v1::RateCaseRequest {
            case_id: id.clone(),
            score: 5,
            comment: "处理及时".into(),
        })
        .await
        .map_err(fail)?
        .into_inner()
        .case
        .context("no case")?;
    step("checked, closed and rated (結案、好差評)", &c);
    let file = conn
        .console(staff("360102", Role::Dispatcher)?)
        .get_case(v1::GetCaseRequest {
            case_id: id.clone(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    println!(
        "  case file {}: rating {}, {} events, {} assignments",
        c.case_number,
        c.rating,
        file.events.len(),
        file.assignments.len()
    );
    for e in &file.events {
        let actor = if e.actor_unit.is_empty() {
            "(system)"
        } else {
            e.actor_unit.as_str()
        };
        println!("    v{:<3} {:<18} {actor}", e.version, e.event_type);
    }
    Ok(())
}
