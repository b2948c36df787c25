//! `gridctl bench-console`: the command centre's and the platform's reads at province scale.
//! Loads a year of case history over many counties straight into PostgreSQL (each case a real
//! fold of its events through the state machine), waits for the feed sequencer to number it,
//! then times the common console pages (ListCases), a county-month of indicators (GetStats)
//! and the platform's catch-up over a million events (StreamEvents) through a running gridd,
//! and how soon a new case's events reach the platform with that history in the log.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use clap::Args;
use domain::region::{RegionCode, UnitCode};
use proto::{convert, v1};
use server::auth::Role;
use tokio_stream::StreamExt as _;

use crate::Conn;

mod history;

#[derive(Args)]
pub struct ConsoleBenchArgs {
    /// The database gridd serves (the history is loaded into it directly).
    #[arg(long, env = "GRIDD_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Cases of history to load (skipped when the database holds this many already).
    #[arg(long, default_value_t = 1_000_000)]
    cases: usize,
    /// Counties the cases spread over; the first is the sample county 360102.
    #[arg(long, default_value_t = 20)]
    counties: usize,
    /// Months of history.
    #[arg(long, default_value_t = 12)]
    months: i64,
    /// Timed calls per console page.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Events the platform's export catches up over.
    #[arg(long, default_value_t = 1_000_000)]
    catch_up: usize,
    /// GetStats calls.
    #[arg(long, default_value_t = 5)]
    stats_runs: usize,
    /// Print the query plans of the console pages.
    #[arg(long)]
    explain: bool,
    /// Searches for repeats timed at each distance (ADR 0044).
    #[arg(long, default_value_t = 2000)]
    searches: usize,
    /// New cases timed from their commit to their last event on the platform's stream.
    #[arg(long, default_value_t = 50)]
    live: usize,
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    format!(
        "p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (n={})",
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0),
        ms.len()
    )
}

/// The console pages timed, each as (name, principal, request).
fn pages(now: DateTime<Utc>) -> Vec<(&'static str, Role, &'static str, v1::ListCasesRequest)> {
    let open = [
        v1::CaseStatus::Reported,
        v1::CaseStatus::PendingAccept,
        v1::CaseStatus::InProgress,
        v1::CaseStatus::PendingVerification,
    ]
    .map(i32::from)
    .to_vec();
    vec![
        (
            "a county's open cases",
            Role::Dispatcher,
            "360102",
            v1::ListCasesRequest {
                region_code: "360102".into(),
                statuses: open,
                page_size: 50,
                ..Default::default()
            },
        ),
        (
            "a township's overdue cases",
            Role::Dispatcher,
            "360102001",
            v1::ListCasesRequest {
                region_code: "360102001".into(),
                overdue: true,
                page_size: 50,
                ..Default::default()
            },
        ),
        (
            "one department's cases",
            Role::UnitStaff,
            "360102-CGJ",
            v1::ListCasesRequest {
                page_size: 50,
                ..Default::default()
            },
        ),
        (
            "a community's last week",
            Role::UnitStaff,
            "360102001001",
            v1::ListCasesRequest {
                region_code: "360102001001".into(),
                reported_after: Some(convert::timestamp(now - chrono::Duration::days(7))),
                page_size: 50,
                ..Default::default()
            },
        ),
    ]
}

async fn time_pages(conn: &Conn, a: &ConsoleBenchArgs) -> anyhow::Result<()> {
    println!(
        "ListCases, first pages and the next three by token, {} samples each:",
        a.samples
    );
    for (name, role, unit, req) in pages(Utc::now()) {
        let mut console = conn.console(conn.auth_as(role, unit, "bench")?);
        let (mut first, mut later) = (Vec::new(), Vec::new());
        let mut found = 0;
        for _ in 0..a.samples {
            let t = Instant::now();
            let r = console.list_cases(req.clone()).await?.into_inner();
            first.push(t.elapsed().as_secs_f64() * 1e3);
            found = r.cases.len();
            let mut token = r.next_page_token;
            for _ in 0..3 {
                if token.is_empty() {
                    break;
                }
                let t = Instant::now();
                let r = console
                    .list_cases(v1::ListCasesRequest {
                        page_token: token,
                        ..req.clone()
                    })
                    .await?
                    .into_inner();
                later.push(t.elapsed().as_secs_f64() * 1e3);
                token = r.next_page_token;
            }
        }
        println!(
            "  {name:<28} first page ({found} cases): {}",
            percentiles(first)
        );
        if !later.is_empty() {
            println!("  {:<28} later pages:          {}", "", percentiles(later));
        }
    }
    Ok(())
}

async fn explain(store: &store::Store) -> anyhow::Result<()> {
    let now = Utc::now();
    let open = vec![
        domain::CaseStatus::Reported,
        domain::CaseStatus::PendingAccept,
        domain::CaseStatus::InProgress,
        domain::CaseStatus::PendingVerification,
    ];
    let filters = [
        (
            "a county's open cases",
            store::CaseFilter {
                region: Some(RegionCode::parse("360102")?),
                statuses: open,
                ..Default::default()
            },
        ),
        (
            "a township's overdue cases",
            store::CaseFilter {
                region: Some(RegionCode::parse("360102001")?),
                overdue: true,
                ..Default::default()
            },
        ),
        (
            "one department's cases",
            store::CaseFilter {
                unit: Some(UnitCode::parse("360102-CGJ")?),
                ..Default::default()
            },
        ),
        (
            "a community's last week",
            store::CaseFilter {
                region: Some(RegionCode::parse("360102001001")?),
                reported_after: Some(now - chrono::Duration::days(7)),
                ..Default::default()
            },
        ),
    ];
    for (name, f) in filters {
        println!("\nplan: {name}");
        for line in store.explain_list_cases(&f, 51).await? {
            println!("    {line}");
        }
    }
    Ok(())
}

/// Midnight China time at the start of `day`, in UTC.
fn cst_midnight(day: chrono::NaiveDate) -> DateTime<Utc> {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    cst.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("no gap at midnight")
        .with_timezone(&Utc)
}

/// The first day of the month `back` months before the current one, China time.
fn month_start(back: u32) -> chrono::NaiveDate {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let first = Utc::now()
        .with_timezone(&cst)
        .date_naive()
        .with_day(1)
        .expect("day 1");
    first - chrono::Months::new(back)
}

async fn time_stats(conn: &Conn, a: &ConsoleBenchArgs) -> anyhow::Result<()> {
    let mut console = conn.console(conn.auth_as(Role::Dispatcher, "360102", "bench")?);
    // the last whole month, one in the middle of the history and one near its start: an
    // older month has more history after it to look through for cases still overdue
    let months = u32::try_from(a.months.max(2))?;
    for back in [1, months / 2, months - 1] {
        let (from, to) = (month_start(back), month_start(back - 1));
        let mut ms = Vec::new();
        let mut reported = 0;
        for _ in 0..a.stats_runs {
            let t = Instant::now();
            let r = console
                .get_stats(v1::GetStatsRequest {
                    region_code: "360102".into(),
                    from: Some(convert::timestamp(cst_midnight(from))),
                    to: Some(convert::timestamp(cst_midnight(to))),
                    ..Default::default()
                })
                .await
                .map_err(|s| anyhow::anyhow!("GetStats: {}", crate::demo::describe(&s)))?
                .into_inner();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            reported = r.total.map_or(0, |t| t.reported);
        }
        println!(
            "GetStats, county 360102, {from} to {to} ({reported} cases reported): {}",
            percentiles(ms)
        );
    }
    Ok(())
}

/// The platform's `StreamEvents` over every region, from the feed position `after`.
async fn platform_stream(
    conn: &Conn,
    after: i64,
) -> anyhow::Result<tonic::Streaming<v1::ExportRecord>> {
    let auth = conn.auth_as(Role::Platform, "", "bench")?;
    let mut export =
        v1::export_service_client::ExportServiceClient::with_interceptor(conn.channel(), auth);
    Ok(export
        .stream_events(v1::StreamEventsRequest {
            after_cursor: after.to_string(),
            region_code: String::new(),
        })
        .await?
        .into_inner())
}

async fn time_export(
    conn: &Conn,
    store: &store::Store,
    a: &ConsoleBenchArgs,
) -> anyhow::Result<()> {
    let head = store.feed_head().await?;
    let n = i64::try_from(a.catch_up)?.min(head);
    let t = Instant::now();
    let mut stream = platform_stream(conn, head - n).await?;
    let mut got = 0i64;
    let mut bytes = 0usize;
    while got < n {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .context("the export stalled")?
            .context("the export ended early")??;
        bytes += r.data_json.len();
        got += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "StreamEvents catch-up: {got} events in {secs:.1} s = {:.0} events/s ({:.0} MB of event data)",
        got as f64 / secs,
        bytes as f64 / 1e6
    );
    Ok(())
}

pub async fn run(conn: &Conn, a: ConsoleBenchArgs) -> anyhow::Result<()> {
    let store = ::store::Store::connect(&a.database_url, 4)
        .await
        .context("connecting to the database")?;
    history::load(&store, &a).await?;
    // gridd's sequencer numbers the loaded events; the reads are timed once it has
    let started = Instant::now();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM case_events")
        .fetch_one(store.pool())
        .await?;
    let first = store.feed_head().await?;
    loop {
        let head = store.feed_head().await?;
        if head >= total {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the feed sequencer did not number the history within 30 minutes ({head} of {total})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    if total > first {
        println!(
            "feed: {} events numbered by the sequencer in {secs:.1} s ({:.0} events/s)",
            total - first,
            (total - first) as f64 / secs
        );
    }
    // as autovacuum would after a bulk load; the plans below depend on it
    sqlx::query("ANALYZE").execute(store.pool()).await?;
    time_pages(conn, &a).await?;
    if a.explain {
        explain(&store).await?;
    }
    time_repeats(&store, &a).await?;
    time_stats(conn, &a).await?;
    time_export(conn, &store, &a).await?;
    time_live_feed(conn, &store, &a).await?;
    Ok(())
}

/// How long a new case's events take to reach the platform's `StreamEvents` with this much
/// history in the log: a case committed through the store (one transaction, as a command's
/// would be), timed from its commit until its last event arrives on a stream opened at the
/// feed's head. What is timed is mostly the feed sequencer's step (ADR 0018), which must
/// read the window's events only, never the log before them.
async fn time_live_feed(
    conn: &Conn,
    store: &store::Store,
    a: &ConsoleBenchArgs,
) -> anyhow::Result<()> {
    if a.live == 0 {
        return Ok(());
    }
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(store.pool())
        .await?;
    let mut stream = platform_stream(conn, store.feed_head().await?).await?;
    let mut ms = Vec::with_capacity(a.live);
    for i in 0..a.live {
        let events = history::add(store, a, have + i64::try_from(i)?, 1).await?;
        let t = Instant::now();
        for _ in 0..events {
            tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .context("a new event did not reach the stream within 30 s")?
                .context("the export ended early")??;
        }
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "StreamEvents, a new case's events after its commit ({} cases in the log): {}",
        have + i64::try_from(a.live)?,
        percentiles(ms)
    );
    Ok(())
}

/// The search for repeats a report costs when its county keeps a repeat rule (ADR 0044): the
/// geohash cells around a random point of the sample county's town, the cases of a random
/// category in them since the rule's horizon (three days for open cases, 30 for recurrence),
/// and the pick of the open one within the distance — what `ReportEvent` runs, on the same
/// store, timed from the cells to the answer.
async fn time_repeats(store: &store::Store, a: &ConsoleBenchArgs) -> anyhow::Result<()> {
    use domain::repeat::{Recurrence, RecurrenceAction, RepeatRule};
    let county = RegionCode::parse("360102")?;
    let categories: Vec<domain::policy::CategoryCode> = store
        .list_categories()
        .await?
        .into_iter()
        .map(|c| c.code)
        .filter(|c| c.as_str().len() == 4)
        .collect();
    anyhow::ensure!(!categories.is_empty(), "no categories: seed the registry");
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(store.pool())
        .await?;
    println!(
        "search for repeats over {cases} cases, {} random points each:",
        a.searches
    );
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // and at the spot of an earlier case of the last 30 days, with its category: the search
    // that finds something, in the busiest places of the history
    let spots: Vec<(f64, f64, String)> = sqlx::query_as(
        "SELECT lat, lon, category FROM cases
          WHERE county_code = '360102' AND reported_at > now() - interval '30 days'
          ORDER BY random() LIMIT $1",
    )
    .bind(i64::try_from(a.searches)?)
    .fetch_all(store.pool())
    .await?;
    for distance_m in [50, 150, 500] {
        let rule = RepeatRule {
            distance_m,
            window_hours: 72,
            recurrence: Some(Recurrence {
                reports: 3,
                days: 30,
                action: RecurrenceAction::RaiseSeverity,
            }),
        };
        let (mut ms, mut found, mut linked, mut cells_n) = (Vec::new(), 0usize, 0usize, 0usize);
        for _ in 0..a.searches {
            let unit = |r: u64| (r >> 11) as f64 / (1u64 << 53) as f64;
            let p = domain::geo::LatLon::new(
                28.68 + (unit(next()) - 0.5) * 0.09,
                115.89 + (unit(next()) - 0.5) * 0.1,
            );
            let category = &categories[usize::try_from(next() % categories.len() as u64)?];
            let now = Utc::now();
            let t = Instant::now();
            let cells = domain::repeat::cells_around(p, rule.distance_m);
            let nearby = store
                .nearby(&county, category, &cells, rule.since(now))
                .await?;
            let pick = domain::repeat::nearest_open(&rule, p, &nearby, now);
            let _ = domain::repeat::reports_at_spot(&rule, p, &nearby, now);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            cells_n += cells.len();
            found += nearby.len();
            linked += usize::from(pick.is_some());
        }
        println!(
            "  within {distance_m:>3} m ({:>3} cells, {:.1} cases read, {:>4.1} % linked): {}",
            cells_n / a.searches.max(1),
            found as f64 / a.searches.max(1) as f64,
            100.0 * linked as f64 / a.searches.max(1) as f64,
            percentiles(ms)
        );
    }
    let rule = RepeatRule {
        distance_m: 150,
        window_hours: 72,
        recurrence: Some(Recurrence {
            reports: 3,
            days: 30,
            action: RecurrenceAction::RaiseSeverity,
        }),
    };
    let (mut ms, mut found, mut linked) = (Vec::new(), 0usize, 0usize);
    for (lat, lon, category) in &spots {
        let p = domain::geo::LatLon::new(*lat, *lon);
        let category = domain::policy::CategoryCode::parse(category).map_err(anyhow::Error::msg)?;
        let now = Utc::now();
        let t = Instant::now();
        let cells = domain::repeat::cells_around(p, rule.distance_m);
        let nearby = store
            .nearby(&county, &category, &cells, rule.since(now))
            .await?;
        let pick = domain::repeat::nearest_open(&rule, p, &nearby, now);
        let _ = domain::repeat::reports_at_spot(&rule, p, &nearby, now);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        found += nearby.len();
        linked += usize::from(pick.is_some());
    }
    if !ms.is_empty() {
        let n = ms.len();
        println!(
            "  at an earlier case's spot, 150 m ({:.1} cases read, {:>4.1} % linked): {}",
            found as f64 / n as f64,
            100.0 * linked as f64 / n as f64,
            percentiles(ms)
        );
    }
    Ok(())
}
