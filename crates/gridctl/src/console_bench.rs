//! `gridctl bench-console`: the command centre's and the platform's reads at province scale.
//! Loads a year of case history over many counties straight into PostgreSQL (each case a real
//! fold of its events through the state machine), waits for the feed sequencer to number it,
//! then times the common console pages (ListCases), a county-month of indicators (GetStats)
//! and the platform's catch-up over a million events (StreamEvents) through a running gridd.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use clap::Args;
use domain::case::{CaseState, Clock, Event};
use domain::geo::{Crs, LatLon};
use domain::policy::CategoryCode;
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use domain::{Severity, Tier};
use proto::{convert, v1};
use server::auth::Role;
use tokio_stream::StreamExt as _;

use crate::Conn;

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
}

/// A small deterministic generator (xorshift64*): the same history on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The places cases happen: the sample county's grids, and made-up counties of the same shape.
struct Geography {
    counties: Vec<(RegionCode, Vec<UnitCode>, Vec<UnitCode>)>,
    categories: Vec<CategoryCode>,
}

fn geography(n: usize) -> anyhow::Result<Geography> {
    let seed = domain::seed::parse(domain::seed::SAMPLE)?;
    let grids: Vec<UnitCode> = seed
        .units
        .iter()
        .filter(|u| u.kind == domain::UnitKind::Grid)
        .map(|u| u.code.clone())
        .collect();
    let depts: Vec<UnitCode> = seed
        .units
        .iter()
        .filter(|u| u.code.is_department())
        .map(|u| u.code.clone())
        .collect();
    let mut counties = vec![(RegionCode::parse("360102")?, grids, depts)];
    for i in 1..n {
        let county = format!("3601{:02}", 10 + i);
        let mut g = Vec::new();
        for t in 1..=10 {
            for c in 1..=5 {
                for k in 1..=6 {
                    g.push(UnitCode::parse(&format!("{county}{t:03}{c:03}{k:03}"))?);
                }
            }
        }
        let d = ["CGJ", "ZJJ", "GAFJ", "SWJ", "HBJ"]
            .iter()
            .map(|s| UnitCode::parse(&format!("{county}-{s}")))
            .collect::<Result<_, _>>()?;
        counties.push((RegionCode::parse(&county)?, g, d));
    }
    let categories = seed
        .categories
        .iter()
        .filter(|c| c.parent_code.is_some())
        .map(|c| c.code.clone())
        .collect();
    Ok(Geography {
        counties,
        categories,
    })
}

/// A case's events with their times.
type Log = Vec<(Event, DateTime<Utc>)>;

/// Appends `e` at `dt` after the last event.
fn push(
    log: &mut Vec<(Event, DateTime<Utc>)>,
    e: Event,
    dt: chrono::Duration,
    t: &mut DateTime<Utc>,
) {
    *t += dt;
    log.push((e, *t));
}

fn up(u: &UnitCode, len: usize) -> UnitCode {
    UnitCode::parse(&u.as_str()[..len]).expect("a grid's parents are units")
}

/// One case's life: its events through the real state machine, ending at most at `now`.
fn life(
    rng: &mut Rng,
    grid: &UnitCode,
    depts: &[UnitCode],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<(CaseState, Log)> {
    let (community, township, county) = (up(grid, 12), up(grid, 9), up(grid, 6));
    let h = chrono::Duration::hours;
    let m = chrono::Duration::minutes;
    let mut log: Vec<(Event, DateTime<Utc>)> = Vec::new();
    let mut t = at;
    push(
        &mut log,
        Event::Reported {
            grid: grid.clone(),
            self_handled: false,
        },
        m(0),
        &mut t,
    );
    if rng.chance(6) {
        // settled on the spot
        log[0].0 = Event::Reported {
            grid: grid.clone(),
            self_handled: true,
        };
    } else {
        let young = now - at < chrono::Duration::days(14);
        let stop = if young { rng.below(5) } else { 9 };
        push(
            &mut log,
            Event::Routed {
                unit: community.clone(),
                tier: Tier::Community,
                accept_due_at: at + h(2),
                reason: "按类别和级别".into(),
            },
            m(1),
            &mut t,
        );
        let joint = rng.chance(8);
        if stop > 0 && !joint {
            push(
                &mut log,
                Event::Accepted {
                    unit: community.clone(),
                    handle_due_at: t + h(72),
                },
                m(30),
                &mut t,
            );
            if !young && rng.chance(3) {
                push(
                    &mut log,
                    Event::Overdue {
                        unit: community,
                        clock: Clock::Handle,
                    },
                    h(73),
                    &mut t,
                );
            } else if stop > 1 {
                push(
                    &mut log,
                    Event::ResultSubmitted {
                        unit: community.clone(),
                        note: "已处理".into(),
                    },
                    h(20),
                    &mut t,
                );
                if stop > 2 {
                    if rng.chance(4) {
                        push(
                            &mut log,
                            Event::Verified {
                                unit: grid.clone(),
                                passed: false,
                                note: "仍有问题".into(),
                                handle_due_at: Some(t + h(24)),
                            },
                            h(3),
                            &mut t,
                        );
                        push(
                            &mut log,
                            Event::ResultSubmitted {
                                unit: community,
                                note: "返工完成".into(),
                            },
                            h(10),
                            &mut t,
                        );
                    }
                    push(
                        &mut log,
                        Event::Verified {
                            unit: grid.clone(),
                            passed: true,
                            note: String::new(),
                            handle_due_at: None,
                        },
                        h(4),
                        &mut t,
                    );
                    if rng.chance(70) {
                        let score = [5, 5, 5, 4, 4, 3, 2][rng.below(7)];
                        push(
                            &mut log,
                            Event::Rated {
                                score,
                                comment: String::new(),
                            },
                            h(6),
                            &mut t,
                        );
                    }
                }
            }
        } else if stop > 0 {
            let (lead, help) = (
                depts[rng.below(depts.len())].clone(),
                depts[rng.below(depts.len())].clone(),
            );
            let assisting = if help == lead { Vec::new() } else { vec![help] };
            push(
                &mut log,
                Event::CalledUp {
                    unit: community,
                    reason: "超出社区能力".into(),
                    to_unit: township.clone(),
                    to_tier: Tier::Township,
                    accept_due_at: t + h(2),
                },
                m(40),
                &mut t,
            );
            push(
                &mut log,
                Event::CalledUp {
                    unit: township,
                    reason: "需区级部门".into(),
                    to_unit: county.clone(),
                    to_tier: Tier::County,
                    accept_due_at: t + h(2),
                },
                m(50),
                &mut t,
            );
            push(
                &mut log,
                Event::Dispatched {
                    unit: county,
                    lead: lead.clone(),
                    lead_tier: Tier::County,
                    assisting: assisting.clone(),
                    accept_due_at: t + h(2),
                    note: "联合处置".into(),
                },
                m(20),
                &mut t,
            );
            if stop > 1 {
                for u in assisting.iter().chain([&lead]) {
                    push(
                        &mut log,
                        Event::Accepted {
                            unit: u.clone(),
                            handle_due_at: t + h(120),
                        },
                        m(45),
                        &mut t,
                    );
                }
                if stop > 2 {
                    for u in &assisting {
                        push(
                            &mut log,
                            Event::PartSubmitted {
                                unit: u.clone(),
                                note: "配合完成".into(),
                            },
                            h(30),
                            &mut t,
                        );
                    }
                    push(
                        &mut log,
                        Event::ResultSubmitted {
                            unit: lead,
                            note: "已处置".into(),
                        },
                        h(12),
                        &mut t,
                    );
                    if stop > 3 {
                        push(
                            &mut log,
                            Event::Verified {
                                unit: grid.clone(),
                                passed: true,
                                note: String::new(),
                                handle_due_at: None,
                            },
                            h(5),
                            &mut t,
                        );
                    }
                }
            }
        }
    }
    // nothing in the future: a young case's life is cut at `now`
    log.retain(|(_, when)| *when <= now);
    let state = CaseState::replay(log.iter().map(|(e, w)| (e, *w)))
        .context("the generated life breaks the state machine")?
        .context("a case has events")?;
    Ok((state, log))
}

async fn load(store: &store::Store, a: &ConsoleBenchArgs) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(store.pool())
        .await?;
    let want = a.cases.saturating_sub(usize::try_from(have).unwrap_or(0));
    if want == 0 {
        println!("history: {have} cases already loaded");
        return Ok(());
    }
    let geo = geography(a.counties)?;
    let now = Utc::now();
    let span = chrono::Duration::days(30 * a.months).num_seconds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (have as u64 + 1));
    let started = Instant::now();
    let (mut events, mut batch) = (0usize, Vec::with_capacity(2000));
    let mut numbers = vec![0u64; geo.counties.len()];
    for i in 0..want {
        let k = i % geo.counties.len();
        let (county, grids, depts) = &geo.counties[k];
        let grid = &grids[rng.below(grids.len())];
        let at = now - chrono::Duration::seconds(i64::try_from(rng.next() % span as u64)?);
        let (state, log) = life(&mut rng, grid, depts, at, now)?;
        numbers[k] += 1;
        let category = geo.categories[rng.below(geo.categories.len())].clone();
        events += log.len();
        batch.push((
            CaseRecord {
                case_id: uuid::Uuid::now_v7(),
                case_number: format!(
                    "{county}-{}-H{:07}",
                    at.format("%Y%m%d"),
                    numbers[k] + have as u64
                ),
                county: county.clone(),
                grid: grid.region(),
                category,
                severity: if rng.chance(10) {
                    Severity::Larger
                } else {
                    Severity::General
                },
                title: format!("历史案件 {i}"),
                description: "网格巡查发现".into(),
                location: LatLon {
                    lat: 28.68,
                    lon: 115.89,
                },
                reported_crs: Crs::Wgs84,
                attachments: Vec::new(),
                occurred_at: at,
                reported_at: at,
                reported_by: format!("worker@{grid}"),
                updated_at: log.last().map_or(at, |(_, w)| *w),
                state,
                trace: std::collections::BTreeMap::new(),
            },
            log,
        ));
        if batch.len() == 2000 || i + 1 == want {
            store.load_history(&batch).await?;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                println!("  loaded {} cases", i + 1);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "history: {want} cases and {events} events over {} counties and {} months loaded in {secs:.0} s ({:.0} cases/s)",
        geo.counties.len(),
        a.months,
        want as f64 / secs
    );
    Ok(())
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

async fn time_export(
    conn: &Conn,
    store: &store::Store,
    a: &ConsoleBenchArgs,
) -> anyhow::Result<()> {
    let head = store.feed_head().await?;
    let n = i64::try_from(a.catch_up)?.min(head);
    let auth = conn.auth_as(Role::Platform, "", "bench")?;
    let mut export =
        v1::export_service_client::ExportServiceClient::with_interceptor(conn.channel(), auth);
    let t = Instant::now();
    let mut stream = export
        .stream_events(v1::StreamEventsRequest {
            after_cursor: (head - n).to_string(),
            region_code: String::new(),
        })
        .await?
        .into_inner();
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
    load(&store, &a).await?;
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
    time_stats(conn, &a).await?;
    time_export(conn, &store, &a).await?;
    Ok(())
}
