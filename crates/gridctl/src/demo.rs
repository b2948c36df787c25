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
    println!(
        "\ndemo done: cases are in Postgres, with their first events and outbox rows for the router."
    );
    Ok(())
}
