//! `gridctl bench`: the whole pipeline under load over real gRPC, next to this machine's own
//! Postgres and Redis baselines measured in the same run.
//!
//! Grid workers report (closed loop at a concurrency, or open loop at a rate); consoles watch
//! their communities' queues and take each case through accept → result → on-site check →
//! closed; synthetic deadlines measure timer lateness; idle console streams measure memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use proto::v1;
use server::auth::Role;
use tokio::sync::Mutex;

use crate::{Conn, demo::report_request, load_seed};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Exit non-zero if any report or console call failed (the test suite's smoke run).
    #[arg(long)]
    pub fail_on_errors: bool,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Open loop: reports per second (0: closed loop at --concurrency).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Closed loop: reports in flight at once (and the baselines' concurrency).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Community consoles that watch their queue and handle every case to the end.
    #[arg(long, default_value_t = 20)]
    pub consoles: usize,
    /// Extra idle WatchQueue streams held open during the run (memory under many consoles).
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    /// Synthetic deadlines armed at the start (timer lateness with many armed).
    #[arg(long, default_value_t = 0)]
    pub deadlines: usize,
    /// Seconds over which the armed deadlines fall due (the ones due during the run fire).
    #[arg(long, default_value_t = 3600)]
    pub deadline_spread: u64,
    /// gridd's process id, for its CPU time and peak memory.
    #[arg(long)]
    pub gridd_pid: Option<u32>,
    /// gridd's database (for deadline lateness) and the baselines' server.
    #[arg(long, env = "GRIDD_DATABASE_URL")]
    pub database_url: String,
    #[arg(
        long,
        env = "GRIDD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Concurrency of the baselines (32: where this machine's Postgres peaks).
    #[arg(long, default_value_t = 32)]
    pub baseline_concurrency: usize,
    /// Seconds for each baseline.
    #[arg(long, default_value_t = 10)]
    pub baseline_secs: u64,
}

/// Idle console streams carried by one connection.
const WATCHERS_PER_CONNECTION: usize = 100;

/// Cases one console takes through the stages at once.
const HANDLERS_PER_CONSOLE: usize = 4;

/// Latency samples in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn add(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
    fn line(&mut self, name: &str) -> String {
        if self.0.is_empty() {
            return format!("  {name:<22} (no samples)");
        }
        self.0.sort_unstable();
        let p = |q: f64| {
            let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
            self.0[i] as f64 / 1000.0
        };
        format!(
            "  {name:<22} n={:<7} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms",
            self.0.len(),
            p(0.5),
            p(0.9),
            p(0.99),
            *self.0.last().unwrap_or(&0) as f64 / 1000.0
        )
    }
    fn p(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i] as f64 / 1000.0
    }
}

#[derive(Default)]
struct Stats {
    ack: Samples,
    in_queue: Samples,
    accepted: Samples,
    closed: Samples,
    errors: BTreeMap<String, u64>,
    acked: u64,
    closed_n: u64,
}

struct Shared {
    stats: Mutex<Stats>,
    sent: Mutex<HashMap<String, Instant>>,
}

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / 100.0, hwm))
}

fn code_name(s: &tonic::Status) -> String {
    format!("{:?}", s.code())
}

pub async fn run(conn: &Conn, server: &str, args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "== gridctl bench: {} s, {}",
        args.duration,
        if args.rate > 0 {
            format!("open loop at {} reports/s", args.rate)
        } else {
            format!("closed loop at concurrency {}", args.concurrency)
        }
    );
    // the baselines first, on a quiet machine
    let pg = baseline_postgres(&args).await?;
    let rd = baseline_redis(&args).await?;
    load_seed(conn, domain::seed::SAMPLE).await?;
    let seed = domain::seed::parse(domain::seed::SAMPLE)?;
    let grids: Vec<String> = seed
        .units
        .iter()
        .filter(|u| u.kind == domain::UnitKind::Grid)
        .map(|u| u.code.to_string())
        .collect();
    let communities: Vec<String> = seed
        .units
        .iter()
        .filter(|u| u.kind == domain::UnitKind::Community)
        .map(|u| u.code.to_string())
        .collect();
    let consoles = args.consoles.min(communities.len());
    // reports come only from grids whose community has a console
    let active: Vec<String> = grids
        .iter()
        .filter(|g| consoles == 0 || communities[..consoles].contains(&g[..12].to_owned()))
        .cloned()
        .collect();
    let shared = Arc::new(Shared {
        stats: Mutex::new(Stats::default()),
        sent: Mutex::new(HashMap::new()),
    });
    let stop = tokio_util::sync::CancellationToken::new();

    // consoles: watch, accept, submit the result; the reporting grid checks it
    let mut console_tasks = Vec::new();
    for community in &communities[..consoles] {
        let mut watch = conn
            .escalation(conn.auth_as(Role::UnitStaff, community, &format!("bench-{community}"))?)
            .watch_queue(v1::WatchQueueRequest {
                unit_code: community.clone(),
            })
            .await
            .context("WatchQueue")?
            .into_inner();
        let esc = conn.escalation(conn.auth_as(
            Role::UnitStaff,
            community,
            &format!("bench-{community}"),
        )?);
        let handling = conn.handling(conn.auth_as(
            Role::UnitStaff,
            community,
            &format!("bench-{community}"),
        )?);
        // the community's dispatcher acts for its grids in the on-site check
        let checker = conn.reporting(conn.auth_as(
            Role::Dispatcher,
            community,
            &format!("bench-{community}"),
        )?);
        // the reader stamps each item as it arrives; handlers take it through the stages, so
        // a busy console does not delay what it reads
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, Instant)>();
        let rx = Arc::new(Mutex::new(rx));
        {
            let shared = shared.clone();
            let stop = stop.clone();
            console_tasks.push(tokio::spawn(async move {
                loop {
                    let item = tokio::select! {
                        () = stop.cancelled() => break,
                        m = watch.message() => match m { Ok(Some(i)) => i, _ => break },
                    };
                    if item.kind() != v1::QueueItemKind::ToAccept {
                        continue;
                    }
                    let Some(t0) = shared.sent.lock().await.get(&item.case_id).copied() else {
                        continue;
                    };
                    shared.stats.lock().await.in_queue.add(t0.elapsed());
                    let grid = item
                        .case
                        .as_ref()
                        .map(|c| c.grid_code.clone())
                        .unwrap_or_default();
                    if tx.send((item.case_id, grid, t0)).is_err() {
                        break;
                    }
                }
            }));
        }
        for _ in 0..HANDLERS_PER_CONSOLE {
            let (mut esc, mut handling, mut checker) =
                (esc.clone(), handling.clone(), checker.clone());
            let (shared, rx, community) = (shared.clone(), rx.clone(), community.to_owned());
            console_tasks.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((id, grid, t0)) = next else { break };
                    if let Err(e) = esc
                        .accept(v1::AcceptRequest {
                            case_id: id.clone(),
                            unit_code: community.clone(),
                            expected_version: 0,
                        })
                        .await
                    {
                        *shared
                            .stats
                            .lock()
                            .await
                            .errors
                            .entry(format!("Accept {}", code_name(&e)))
                            .or_default() += 1;
                        continue;
                    }
                    shared.stats.lock().await.accepted.add(t0.elapsed());
                    let r = handling
                        .submit_result(v1::SubmitResultRequest {
                            case_id: id.clone(),
                            unit_code: community.clone(),
                            note: "已处置".into(),
                            ..Default::default()
                        })
                        .await;
                    if let Err(e) = r {
                        *shared
                            .stats
                            .lock()
                            .await
                            .errors
                            .entry(format!("SubmitResult {}", code_name(&e)))
                            .or_default() += 1;
                        continue;
                    }
                    let r = checker
                        .verify_case(v1::VerifyCaseRequest {
                            case_id: id.clone(),
                            passed: true,
                            unit_code: grid,
                            ..Default::default()
                        })
                        .await;
                    match r {
                        Ok(_) => {
                            let mut s = shared.stats.lock().await;
                            s.closed.add(t0.elapsed());
                            s.closed_n += 1;
                        }
                        Err(e) => {
                            *shared
                                .stats
                                .lock()
                                .await
                                .errors
                                .entry(format!("VerifyCase {}", code_name(&e)))
                                .or_default() += 1
                        }
                    }
                    shared.sent.lock().await.remove(&id);
                }
            }));
        }
    }
    // idle watchers: memory under many open consoles
    let mut idle = Vec::new();
    let mut idle_conn = None;
    for i in 0..args.watchers {
        if i % WATCHERS_PER_CONNECTION == 0 {
            idle_conn = Some(conn.another(server).await?);
        }
        let conn = idle_conn.as_ref().expect("opened above");
        // quiet units (grids hold no queue items): what is measured is the cost of holding a
        // console's stream open, not of feeding it
        let unit = grids[grids.len() - 1 - i % grids.len()].as_str();
        let s = conn
            .escalation(conn.auth_as(Role::UnitStaff, unit, "bench-idle")?)
            .watch_queue(v1::WatchQueueRequest {
                unit_code: unit.to_owned(),
            })
            .await
            .context("idle WatchQueue")?
            .into_inner();
        idle.push(s);
    }

    // warm-up: one case through the whole pipeline before the clock starts
    warm_up(conn, &active[0], &shared).await?;
    *shared.stats.lock().await = Stats::default();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&args.database_url)
        .await
        .context("connecting to gridd's database")?;
    let bench_run = uuid::Uuid::now_v7();
    let usage0 = args.gridd_pid.and_then(proc_usage);
    let started = Instant::now();
    let deadline_window = Duration::from_secs(args.duration);

    // load
    let mut load = Vec::new();
    let tasks = if args.rate > 0 {
        args.concurrency.max(64)
    } else {
        args.concurrency
    };
    let per_task_interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(tasks as f64 / args.rate as f64));
    for t in 0..tasks {
        let mut client = conn.reporting(conn.auth_as(Role::Admin, "", "bench-worker")?);
        let shared = shared.clone();
        let active = active.clone();
        load.push(tokio::spawn(async move {
            let mut i = t;
            let mut next = Instant::now()
                + per_task_interval
                    .map_or(Duration::ZERO, |iv| iv.mul_f64(t as f64 / tasks as f64));
            while started.elapsed() < deadline_window {
                if let Some(iv) = per_task_interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += iv;
                }
                let grid = &active[i % active.len()];
                i += tasks;
                let req = report_request(
                    uuid::Uuid::now_v7().to_string(),
                    grid,
                    "0501",
                    "压测上报",
                    "bench",
                    (28.68, 115.89, v1::Crs::Wgs84),
                    false,
                );
                let t0 = Instant::now();
                match client.report_event(req).await {
                    Ok(r) => {
                        let id = r.into_inner().case.map(|c| c.case_id).unwrap_or_default();
                        shared.sent.lock().await.insert(id, t0);
                        let mut s = shared.stats.lock().await;
                        s.ack.add(t0.elapsed());
                        s.acked += 1;
                    }
                    Err(e) => {
                        *shared
                            .stats
                            .lock()
                            .await
                            .errors
                            .entry(format!("ReportEvent {}", code_name(&e)))
                            .or_default() += 1
                    }
                }
            }
        }));
    }
    // synthetic deadlines, due across the load window: they fire as stale no-ops, which
    // measures the timer's own lateness
    if args.deadlines > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let any_case: Option<uuid::Uuid> = sqlx::query_scalar("SELECT case_id FROM cases LIMIT 1")
            .fetch_optional(&pool)
            .await?;
        if let Some(case_id) = any_case {
            sqlx::query(
                "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at, outcome)
                 SELECT $1, '360102', 'accept', true,
                        now() + interval '1 second' + random() * make_interval(secs => $3::double precision),
                        '1970-01-01', now(), $2
                   FROM generate_series(1, $4)",
            )
            .bind(case_id)
            .bind(format!("bench:{bench_run}"))
            .bind(args.deadline_spread.max(1) as f64)
            .bind(i64::try_from(args.deadlines).unwrap_or(0))
            .execute(&pool)
            .await?;
        }
    }
    for l in load {
        let _ = l.await;
    }
    let load_secs = started.elapsed().as_secs_f64();
    let usage_load = args.gridd_pid.and_then(proc_usage);
    // let the pipeline drain
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(10) && !shared.sent.lock().await.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let usage1 = args.gridd_pid.and_then(proc_usage);
    stop.cancel();
    for c in console_tasks {
        let _ = c.await;
    }
    drop(idle);

    let mut s = shared.stats.lock().await;
    let rps = s.acked as f64 / load_secs;
    println!("\n-- GridDispatch");
    println!(
        "  acknowledged reports   {} in {load_secs:.1} s = {rps:.0} reports/s",
        s.acked
    );
    println!("  closed cases           {}", s.closed_n);
    println!("{}", s.ack.line("report -> ack"));
    println!("{}", s.in_queue.line("report -> in queue"));
    println!("{}", s.accepted.line("report -> accepted"));
    println!("{}", s.closed.line("report -> closed"));
    let in_queue_p99 = s.in_queue.p(0.99);
    if args.deadlines > 0 {
        let late: Vec<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM fired_at - fire_at)::float8 * 1000 FROM deadlines
              WHERE clock_due_at = '1970-01-01' AND fired_at IS NOT NULL AND outcome <> $1",
        )
        .bind(format!("bench:{bench_run}"))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        let mut lat = Samples::default();
        for ms in &late {
            lat.add(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
        }
        println!(
            "{}",
            lat.line("deadline lateness")
                .replace("n=", &format!("of {} armed, fired n=", args.deadlines))
        );
        sqlx::query("DELETE FROM deadlines WHERE clock_due_at = '1970-01-01'")
            .execute(&pool)
            .await
            .ok();
    }
    let failed = s.errors.values().sum::<u64>();
    if s.errors.is_empty() {
        println!("  errors                 none");
    } else {
        for (k, v) in &s.errors {
            println!("  error {k:<16} {v}");
        }
    }
    if let (Some((cpu0, _)), Some((cpu1, _)), Some((_, hwm))) = (usage0, usage_load, usage1) {
        println!(
            "  gridd CPU              {:.0} % of one core during the load",
            (cpu1 - cpu0) / load_secs * 100.0
        );
        println!(
            "  gridd peak RSS         {:.1} MiB (with {} open WatchQueue streams)",
            hwm as f64 / 1024.0,
            args.watchers + consoles
        );
    }
    drop(s);

    // baselines on this machine
    println!(
        "\n-- this machine's baselines (concurrency {})",
        args.baseline_concurrency
    );
    println!("  Postgres single-row INSERT (jsonb, uuid key, synchronous_commit on)  {pg:.0} tx/s");
    println!(
        "  Redis XADD -> XREADGROUP -> XACK                                    {:.0} msgs/s, round trip p99 {:.2} ms",
        rd.0, rd.1
    );
    println!("\n-- ratios");
    println!(
        "  acknowledged reports/s / INSERT tx/s       {:.2}",
        rps / pg
    );
    println!(
        "  report->in-queue p99 / Redis round trip p99 {:.1}",
        in_queue_p99 / rd.1.max(0.001)
    );
    if args.fail_on_errors && failed > 0 {
        bail!("{failed} calls failed during the run");
    }
    Ok(())
}

async fn warm_up(conn: &Conn, grid: &str, shared: &Shared) -> anyhow::Result<()> {
    let mut reporting = conn.reporting(conn.auth_as(Role::Admin, "", "bench-warm-up")?);
    let mut console = conn.console(conn.auth_as(Role::Admin, "", "bench-warm-up")?);
    let req = report_request(
        uuid::Uuid::now_v7().to_string(),
        grid,
        "0501",
        "预热",
        "",
        (28.68, 115.89, v1::Crs::Wgs84),
        false,
    );
    let t0 = Instant::now();
    let id = reporting
        .report_event(req)
        .await?
        .into_inner()
        .case
        .context("no case")?
        .case_id;
    shared.sent.lock().await.insert(id.clone(), t0);
    for _ in 0..300 {
        let c = console
            .get_case(v1::GetCaseRequest {
                case_id: id.clone(),
            })
            .await?
            .into_inner()
            .case
            .context("no case")?;
        // routed is enough to know every role is up (with no consoles nothing closes it)
        if c.status() != v1::CaseStatus::Reported {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the warm-up case was not routed within 15 s: is every role running?")
}

async fn baseline_postgres(args: &BenchArgs) -> anyhow::Result<f64> {
    let admin_url = match args.database_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/postgres"),
        None => bail!("database url has no database name"),
    };
    let db = "griddispatch_bench_baseline";
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await?;
    let url = format!("{}/{db}", admin_url.rsplit_once('/').map_or("", |x| x.0));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(args.baseline_concurrency).unwrap_or(32))
        .connect(&url)
        .await?;
    sqlx::query("CREATE TABLE reports (id uuid PRIMARY KEY, payload jsonb NOT NULL)")
        .execute(&pool)
        .await?;
    let payload = serde_json::json!({
        "grid_code": "360102001001001", "category": "0501", "title": "压测上报", "description": "bench",
        "location": {"lat": 28.68, "lon": 115.89, "crs": "WGS84"}, "occurred_at": "2026-11-27T00:00:00Z",
        "attachments": [{"content_hash": "ab".repeat(32), "media_type": "image/jpeg", "size": 120000, "url": "https://objects.invalid/photos/1.jpg"}]
    });
    let started = Instant::now();
    let window = Duration::from_secs(args.baseline_secs);
    let mut tasks = Vec::new();
    for _ in 0..args.baseline_concurrency {
        let pool = pool.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                if sqlx::query("INSERT INTO reports VALUES ($1, $2)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(&payload)
                    .execute(&pool)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    Ok(rate)
}

/// Producers XADD (one command per round trip, at the bench's concurrency); one consumer
/// reads with XREADGROUP COUNT 100 and XACKs. Answers messages/s and the p99 time from XADD
/// to XACK.
async fn baseline_redis(args: &BenchArgs) -> anyhow::Result<(f64, f64)> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let key = format!("gd-bench-baseline:{}", uuid::Uuid::now_v7());
    let mut c = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await?;
    let started = Instant::now();
    let window = Duration::from_secs(args.baseline_secs);
    let payload = "x".repeat(480);
    let mut producers = Vec::new();
    for _ in 0..args.baseline_concurrency {
        let mut c = client.get_multiplexed_async_connection().await?;
        let key = key.clone();
        let payload = payload.clone();
        producers.push(tokio::spawn(async move {
            while started.elapsed() < window {
                let t = started.elapsed().as_micros().to_string();
                let _: Result<String, _> = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("t")
                    .arg(&t)
                    .arg("d")
                    .arg(&payload)
                    .query_async(&mut c)
                    .await;
            }
        }));
    }
    let mut consumer = client.get_multiplexed_async_connection().await?;
    let mut lat = Samples::default();
    let mut n = 0u64;
    while started.elapsed() < window + Duration::from_millis(500) {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut consumer)
            .await
            .unwrap_or_default();
        let mut ids = Vec::new();
        for k in reply.keys {
            for e in k.ids {
                if let Some(redis::Value::BulkString(t)) = e.map.get("t")
                    && let Ok(us) = String::from_utf8_lossy(t).parse::<u64>()
                {
                    lat.add(started.elapsed().saturating_sub(Duration::from_micros(us)));
                }
                ids.push(e.id);
            }
        }
        if !ids.is_empty() {
            n += ids.len() as u64;
            let _: Result<i64, _> = redis::cmd("XACK")
                .arg(&key)
                .arg("g")
                .arg(&ids)
                .query_async(&mut consumer)
                .await;
        }
    }
    for p in producers {
        let _ = p.await;
    }
    let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut consumer).await;
    Ok((n as f64 / window.as_secs_f64(), lat.p(0.99)))
}
