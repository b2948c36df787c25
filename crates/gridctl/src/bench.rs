//! `gridctl bench`: the whole pipeline under load over real gRPC, next to this machine's own
//! Postgres and Redis baselines measured in the same run.
//!
//! Grid workers report (closed loop at a concurrency, or open loop at a rate); consoles watch
//! their communities' queues and take each case through accept → result → on-site check →
//! closed; synthetic deadlines measure timer lateness; idle console streams measure memory.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use proto::v1;
use server::auth::Role;

use crate::{Conn, demo::report_request, load_seed};

mod baseline;
mod load;
mod observe;
mod targets;

use load::{Clock, Figures};
use observe::DbCounters;

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
    /// Cases each console takes through the stages at once (default: enough for --rate).
    #[arg(long)]
    pub handlers: Option<usize>,
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
    /// gridd's database: the fixture step (synthetic deadlines) and the counters read beside
    /// the API (deadline lateness, statements, WAL flushes); also the baselines' server.
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

/// Latency samples in microseconds.
#[derive(Default)]
pub(crate) struct Samples(pub(crate) Vec<u64>);
impl Samples {
    pub(crate) fn add(&mut self, d: Duration) {
        self.0
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }
    pub(crate) fn line(&mut self, name: &str) -> String {
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
    pub(crate) fn p(&mut self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i] as f64 / 1000.0
    }
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
    let pg = baseline::postgres(&args).await?;
    let rd = baseline::redis(&args).await?;
    load_seed(conn, domain::seed::SAMPLE).await?;
    let seed = domain::seed::parse(domain::seed::SAMPLE)?;
    let of_kind = |k| -> Vec<String> {
        seed.units
            .iter()
            .filter(|u| u.kind == k)
            .map(|u| u.code.to_string())
            .collect()
    };
    let grids = of_kind(domain::UnitKind::Grid);
    let communities = of_kind(domain::UnitKind::Community);
    let consoles = args.consoles.min(communities.len());
    // reports come only from grids whose community has a console
    let active: Vec<String> = grids
        .iter()
        .filter(|g| consoles == 0 || communities[..consoles].contains(&g[..12].to_owned()))
        .cloned()
        .collect();
    // handlers per console: by default enough that the consoles keep up with the rate asked
    // (a case takes three calls, up to 0.7 s near saturation), at least 4
    let handlers = args.handlers.unwrap_or_else(|| {
        let wanted = (args.rate as f64 * 0.7 / consoles.max(1) as f64).ceil() as usize;
        wanted.max(4)
    });
    let clock = Clock::new();
    let stop = tokio_util::sync::CancellationToken::new();

    // consoles: watch, accept, submit the result; the reporting grid checks it
    let mut console_tasks = Vec::new();
    for community in &communities[..consoles] {
        console_tasks.extend(load::console(conn, community, handlers, &clock, &stop).await?);
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

    // warm-up: one case through routing before the clock starts
    let warm = warm_up(conn, &active[0]).await?;
    // the fixture step, before the clock starts: synthetic deadlines armed in gridd's database
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await
        .context("connecting to gridd's database")?;
    let tag = format!("bench:{}", uuid::Uuid::now_v7());
    if args.deadlines > 0 {
        observe::arm_deadlines(&pool, warm, args.deadlines, args.deadline_spread, &tag).await?;
    }
    let counting = DbCounters::enable(&pool).await;
    let db0 = DbCounters::read(&pool).await;
    let usage0 = args.gridd_pid.and_then(observe::proc_usage);
    let postmaster = observe::postmaster(&pool).await;
    let cpu0 = observe::CpuSplit::read(args.gridd_pid, postmaster);
    let started = Instant::now();
    let window = Duration::from_secs(args.duration);

    // load
    // open loop: enough senders that each has 250 ms for a call before it falls behind its
    // schedule, so the rate is the one asked for, not what a few senders manage
    let tasks = if args.rate > 0 {
        args.concurrency
            .max(64)
            .max(usize::try_from(args.rate / 4).unwrap_or(usize::MAX))
    } else {
        args.concurrency
    };
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(tasks as f64 / args.rate as f64));
    let mut reporters = Vec::new();
    for t in 0..tasks {
        let offset = interval.map_or(Duration::ZERO, |iv| iv.mul_f64(t as f64 / tasks as f64));
        reporters.push(load::reporter(
            conn,
            active.clone(),
            t,
            tasks,
            started,
            window,
            interval,
            offset,
            &clock,
        )?);
    }
    // the relay's backlog, sampled every second: where a pipeline that falls behind waits
    let backlog = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut worst = 0;
            while !stop.is_cancelled() {
                worst = worst.max(observe::outbox_backlog(&pool).await);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            worst
        })
    };
    let mut f = Figures::default();
    for r in reporters {
        f.merge(r.await?);
    }
    let load_secs = started.elapsed().as_secs_f64();
    let usage_load = args.gridd_pid.and_then(observe::proc_usage);
    let cpu_load = observe::CpuSplit::read(args.gridd_pid, postmaster);
    // let the pipeline drain: every acknowledged case closed, or 10 s
    let drain = Instant::now();
    while consoles > 0
        && drain.elapsed() < Duration::from_secs(10)
        && clock.closed.load(Ordering::Relaxed) < clock.acked.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let usage1 = args.gridd_pid.and_then(observe::proc_usage);
    let db1 = DbCounters::read(&pool).await;
    stop.cancel();
    // a handler's queue closes with its reader, so every task ends
    for c in console_tasks {
        f.merge(c.await?);
    }
    drop(idle);
    let backlog = backlog.await.unwrap_or(0);

    let acked = clock.acked.load(Ordering::Relaxed);
    let closed = clock.closed.load(Ordering::Relaxed);
    let rps = acked as f64 / load_secs;
    println!("\n-- GridDispatch");
    println!("  acknowledged reports   {acked} in {load_secs:.1} s = {rps:.0} reports/s");
    println!("  closed cases           {closed}");
    println!("{}", f.ack.line("report -> ack"));
    println!("{}", f.in_queue.line("report -> in queue"));
    println!("{}", f.accepted.line("report -> accepted"));
    println!("{}", f.closed.line("report -> closed"));
    let in_queue_p99 = f.in_queue.p(0.99);
    let mut lateness_p99 = None;
    if args.deadlines > 0 {
        let mut lat = Samples::default();
        for ms in observe::deadline_lateness(&pool, &tag).await {
            lat.add(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
        }
        lateness_p99 = Some(lat.p(0.99));
        println!(
            "{}",
            lat.line("deadline lateness")
                .replace("n=", &format!("of {} armed, fired n=", args.deadlines))
        );
    }
    println!("  outbox backlog         at most {backlog} rows unpublished (sampled each second)");
    let failed = f.errors.values().sum::<u64>();
    if f.errors.is_empty() {
        println!("  errors                 none");
    } else {
        for (k, v) in &f.errors {
            println!("  error {k:<16} {v}");
        }
    }
    let rss_mib = usage1.map(|(_, hwm)| hwm as f64 / 1024.0);
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
    cpu0.print(&cpu_load, load_secs, acked, "report");
    let (statements, wal_flushes) =
        print_costs(&pool, &db0, &db1, counting, acked, closed, consoles > 0).await;

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
    targets::print(&targets::Measured {
        rate: args.rate,
        acknowledged_per_sec: rps,
        acked,
        closed,
        lifecycle: consoles > 0,
        ack_p99_ms: f.ack.p(0.99),
        in_queue_p99_ms: (consoles > 0).then_some(in_queue_p99),
        insert_ratio: rps / pg,
        statements,
        wal_flushes,
        lateness_p99_ms: lateness_p99,
        armed: args.deadlines,
        rss_mib,
        streams: args.watchers + consoles,
    });
    if args.fail_on_errors && failed > 0 {
        bail!("{failed} calls failed during the run");
    }
    Ok(())
}

/// Statements, transactions and WAL flushes during the load (and the drain), per case: per
/// closed case when consoles took cases through the whole lifecycle, per report otherwise.
/// Everything gridd did in that time counts, the synthetic deadlines' firing included.
async fn print_costs(
    pool: &sqlx::PgPool,
    db0: &DbCounters,
    db1: &DbCounters,
    counting: bool,
    acked: u64,
    closed: u64,
    lifecycle: bool,
) -> (Option<f64>, f64) {
    let (per, n) = if lifecycle {
        ("closed case", closed)
    } else {
        ("report", acked)
    };
    let n = n.max(1) as f64;
    println!("\n-- cost per {per} (gridd's database, during the load)");
    let mut statements = None;
    match (db0.statements, db1.statements) {
        (Some(a), Some(b)) if counting => {
            statements = Some((b - a) as f64 / n);
            println!("  SQL statements         {:.2}", (b - a) as f64 / n);
            let fk = db1.fk_checks.unwrap_or(0) - db0.fk_checks.unwrap_or(0);
            println!(
                "  foreign-key checks     {:.2}   (run by the server for those statements)",
                fk as f64 / n
            );
        }
        _ => println!("  SQL statements         n/a (the server does not load pg_stat_statements)"),
    }
    println!(
        "  transactions           {:.2}",
        (db1.commits - db0.commits) as f64 / n
    );
    let wal_flushes = (db1.wal_syncs - db0.wal_syncs) as f64 / n;
    println!(
        "  WAL flushes            {:.2}   ({:.0} bytes of WAL)",
        wal_flushes,
        (db1.wal_bytes - db0.wal_bytes) as f64 / n
    );
    if counting {
        println!(
            "  time in statements     {:.3} ms executing, {:.3} ms planning",
            (db1.exec_ms - db0.exec_ms) / n,
            (db1.plan_ms - db0.plan_ms) / n
        );
        println!("  statements by their share of that time (planning's part in brackets):");
        for (calls, share, plan, q) in DbCounters::top_statements(pool, 12).await {
            println!(
                "    {share:>5.1} % ({plan:>4.1})  {:>9.2}/{per}  {q}",
                calls as f64 / n
            );
        }
    }
    (statements, wal_flushes)
}

/// Reports one case and waits until it is routed: every role is up. Answers its id.
async fn warm_up(conn: &Conn, grid: &str) -> anyhow::Result<uuid::Uuid> {
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
    let id = reporting
        .report_event(req)
        .await?
        .into_inner()
        .case
        .context("no case")?
        .case_id;
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
            return Ok(id.parse()?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the warm-up case was not routed within 15 s: is every role running?")
}
