//! Console and platform commands: `cases`, `watch-cases`, `export`.

use anyhow::Context as _;
use clap::Args;
use proto::{convert, v1};
use server::auth::Role;
use tokio_stream::StreamExt as _;

use crate::Conn;

#[derive(Args)]
pub struct CasesArgs {
    /// Region, grid or unit code: everything inside it (default: the caller's area).
    #[arg(long, default_value = "")]
    region: String,
    /// Statuses, comma-separated: reported, pending_accept, in_progress, pending_verification,
    /// closed, rejected, merged; `open` for the first four.
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// grid, community, township, county or city.
    #[arg(long)]
    tier: Option<String>,
    /// A category code (a first-level code takes in its second-level ones).
    #[arg(long, default_value = "")]
    category: String,
    /// general, larger, major or especially_major.
    #[arg(long)]
    severity: Option<String>,
    /// Only overdue cases.
    #[arg(long)]
    overdue: bool,
    /// Only cases from this source: grid_worker, resident, hotline_12345, other_system.
    #[arg(long)]
    source: Option<String>,
    /// Cases this unit holds, leads or assists in.
    #[arg(long, default_value = "")]
    unit: String,
    /// Reported at or after this time (RFC 3339).
    #[arg(long)]
    after: Option<String>,
    /// Reported before this time (RFC 3339).
    #[arg(long)]
    before: Option<String>,
    /// Cases per page.
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    /// At most this many cases in all (0: every page).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Act as this role and unit when minting a token from GRIDD_JWT_SECRET.
    #[arg(long, default_value = "admin")]
    as_role: String,
    #[arg(long, default_value = "")]
    as_unit: String,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Region code to watch.
    region: String,
    /// Resume after this cursor (as printed with each change); default: from now.
    #[arg(long, default_value = "")]
    after: String,
    #[arg(long, default_value = "admin")]
    as_role: String,
    #[arg(long, default_value = "")]
    as_unit: String,
    /// Stop after this many changes (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    count: usize,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Resume after this cursor (the one printed on stderr when a run ends).
    #[arg(long, default_value = "")]
    after: String,
    /// Only events of cases in this region.
    #[arg(long, default_value = "")]
    region: String,
    /// Stop after this many records (0: follow the feed until interrupted).
    #[arg(long, default_value_t = 0)]
    count: usize,
}

fn role(name: &str) -> anyhow::Result<Role> {
    Role::parse(name).with_context(|| {
        format!("unknown role {name}: grid_worker, unit_staff, dispatcher, admin, platform")
    })
}

fn enum_value<E>(what: &str, name: &str, from: impl Fn(&str) -> Option<E>) -> anyhow::Result<E> {
    from(&name.to_ascii_uppercase()).with_context(|| format!("--{what}: unknown value {name}"))
}

fn time(what: &str, s: Option<&String>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    s.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| convert::timestamp(t.with_timezone(&chrono::Utc)))
            .with_context(|| format!("--{what}: not an RFC 3339 time: {s}"))
    })
    .transpose()
}

fn statuses(names: &[String]) -> anyhow::Result<Vec<i32>> {
    let mut out = Vec::new();
    for n in names {
        if n.eq_ignore_ascii_case("open") {
            out.extend(
                [
                    v1::CaseStatus::Reported,
                    v1::CaseStatus::PendingAccept,
                    v1::CaseStatus::InProgress,
                    v1::CaseStatus::PendingVerification,
                ]
                .map(i32::from),
            );
        } else {
            out.push(enum_value("status", n, v1::CaseStatus::from_str_name)?.into());
        }
    }
    Ok(out)
}

fn describe(s: &tonic::Status) -> String {
    crate::demo::describe(s)
}

pub async fn cases(conn: &Conn, a: CasesArgs) -> anyhow::Result<()> {
    let mut console = conn.console(conn.auth_as(role(&a.as_role)?, &a.as_unit, "gridctl")?);
    let mut req = v1::ListCasesRequest {
        region_code: a.region.clone(),
        statuses: statuses(&a.status)?,
        tier: a
            .tier
            .as_deref()
            .map(|t| enum_value("tier", t, v1::Tier::from_str_name))
            .transpose()?
            .map_or(0, i32::from),
        category: a.category.clone(),
        severity: a
            .severity
            .as_deref()
            .map(|s| enum_value("severity", s, v1::Severity::from_str_name))
            .transpose()?
            .map_or(0, i32::from),
        overdue: a.overdue,
        unit_code: a.unit.clone(),
        reported_after: time("after", a.after.as_ref())?,
        reported_before: time("before", a.before.as_ref())?,
        page_size: a.page_size,
        page_token: String::new(),
        source: a
            .source
            .as_deref()
            .map(|s| {
                enum_value("source", s, |n| {
                    v1::ReportSource::from_str_name(&format!("REPORT_SOURCE_{n}"))
                })
            })
            .transpose()?
            .map_or(0, i32::from),
    };
    let mut shown = 0;
    if !a.json {
        println!(
            "{:<24} {:<21} {:<9} {:<8} {:<18} {:<16} {:>3}  title",
            "case number", "status", "tier", "category", "holder", "reported (UTC)", "od"
        );
    }
    loop {
        let page = console
            .list_cases(req.clone())
            .await
            .map_err(|s| anyhow::anyhow!("{}", describe(&s)))?
            .into_inner();
        for c in &page.cases {
            if a.limit > 0 && shown == a.limit {
                return Ok(());
            }
            shown += 1;
            if a.json {
                println!("{}", case_json(c));
            } else {
                println!(
                    "{:<24} {:<21} {:<9} {:<8} {:<18} {:<16} {:>3}  {}",
                    c.case_number,
                    c.status().as_str_name(),
                    c.tier().as_str_name(),
                    c.category,
                    c.holder_unit,
                    c.reported_at
                        .as_ref()
                        .and_then(convert::from_timestamp)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    if c.overdue { "yes" } else { "" },
                    c.title
                );
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    if !a.json {
        eprintln!("{shown} cases");
    }
    Ok(())
}

fn case_json(c: &v1::Case) -> serde_json::Value {
    serde_json::json!({
        "case_id": c.case_id, "case_number": c.case_number, "status": c.status().as_str_name(),
        "tier": c.tier().as_str_name(), "grid_code": c.grid_code, "category": c.category,
        "severity": c.severity().as_str_name(), "title": c.title, "holder_unit": c.holder_unit,
        "lead_unit": c.lead_unit, "assisting_units": c.assisting_units, "overdue": c.overdue,
        "rework_count": c.rework_count, "version": c.version,
        "reported_at": c.reported_at.as_ref().and_then(convert::from_timestamp),
        "accept_due_at": c.accept_due_at.as_ref().and_then(convert::from_timestamp),
        "handle_due_at": c.handle_due_at.as_ref().and_then(convert::from_timestamp),
    })
}

pub async fn watch(conn: &Conn, a: WatchArgs) -> anyhow::Result<()> {
    let mut console = conn.console(conn.auth_as(role(&a.as_role)?, &a.as_unit, "gridctl")?);
    let mut stream = console
        .watch_cases(v1::WatchCasesRequest {
            region_code: a.region.clone(),
            after_cursor: a.after.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", describe(&s)))?
        .into_inner();
    let mut seen = 0;
    let mut cursor = a.after.clone();
    let outcome = loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let Some(change) = next else {
            break Err(anyhow::anyhow!("the server ended the watch"));
        };
        let change = match change {
            Ok(c) => c,
            Err(s) => break Err(anyhow::anyhow!("{}", describe(&s))),
        };
        let (Some(e), Some(c)) = (&change.event, &change.case) else {
            continue;
        };
        cursor.clone_from(&change.cursor);
        println!(
            "{:>10}  {}  {:<24} v{:<3} {:<20} {:<21} {}",
            change.cursor,
            e.recorded_at
                .as_ref()
                .and_then(convert::from_timestamp)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_default(),
            c.case_number,
            e.version,
            e.event_type,
            c.status().as_str_name(),
            c.holder_unit
        );
        seen += 1;
        if a.count > 0 && seen == a.count {
            break Ok(());
        }
    };
    eprintln!("cursor {cursor}");
    outcome
}

pub async fn export(conn: &Conn, a: ExportArgs) -> anyhow::Result<()> {
    let auth = conn.auth_as(Role::Platform, "", "gridctl-export")?;
    let mut export =
        v1::export_service_client::ExportServiceClient::with_interceptor(conn.channel(), auth)
            .max_decoding_message_size(16 << 20);
    let mut stream = export
        .stream_events(v1::StreamEventsRequest {
            after_cursor: a.after.clone(),
            region_code: a.region.clone(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", describe(&s)))?
        .into_inner();
    let mut cursor = a.after.clone();
    let mut seen = 0;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let outcome = loop {
        if a.count > 0 && seen == a.count {
            break Ok(());
        }
        let next = tokio::select! {
            n = stream.next() => n,
            _ = tokio::signal::ctrl_c() => break Ok(()),
        };
        let r = match next {
            None => break Err(anyhow::anyhow!("the server ended the feed")),
            Some(Err(s)) => break Err(anyhow::anyhow!("{}", describe(&s))),
            Some(Ok(r)) => r,
        };
        let data: serde_json::Value =
            serde_json::from_str(&r.data_json).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "cursor": r.cursor, "case_id": r.case_id, "version": r.version,
            "event_type": r.event_type,
            "recorded_at": r.recorded_at.as_ref().and_then(convert::from_timestamp),
            "region_code": r.region_code, "category": r.category, "data": data,
        });
        use std::io::Write as _;
        if let Err(e) = writeln!(out, "{line}") {
            break Err(e.into());
        }
        // a line at a time: whoever follows the output sees each record as it comes
        if let Err(e) = out.flush() {
            break Err(e.into());
        }
        cursor = r.cursor;
        seen += 1;
    };
    eprintln!("cursor {cursor}");
    outcome
}
