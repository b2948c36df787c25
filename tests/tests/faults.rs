//! The fault suite: gridd as real processes on a PostgreSQL cluster and a Redis server of the
//! suite's own, under load from phones that retry with the same idempotency key and consoles
//! that accept what arrives, while processes are killed, Redis restarts empty, Postgres
//! crashes, the network misbehaves and crash points fire between commit and publish. After
//! each scenario the invariant checker (`griddispatch_tests::invariants`) reads Postgres and
//! Redis and every invariant must hold.
//!
//! Run by `./scripts/test` in a bounded form (`cargo test -p griddispatch-tests --test faults`);
//! `./scripts/soak` runs the long form (`GD_SOAK_SECS`, default 30 minutes). Each scenario
//! prints its figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use griddispatch_tests::cluster::{Gridd, GriddSpec, PrivatePg, PrivateRedis, Scratch};
use griddispatch_tests::invariants::{self, Findings};
use griddispatch_tests::load::{self, ConsoleStats, ReportPlan, ReportStats};
use griddispatch_tests::proxy::{Fault, FaultProxy};
use griddispatch_tests::seed_sample;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Scenarios share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Seconds of load per scenario: `GD_FAULT_SCALE` (a factor, 1 by default) lengthens or
/// shortens every scenario of the bounded form.
fn secs(default: u64) -> Duration {
    let scale = std::env::var("GD_FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(default as f64 * scale)
}

/// A gridd's open files: a leak check that cannot read them has checked nothing, so it fails.
fn readable_fds(g: &Gridd) -> usize {
    g.open_fds()
        .unwrap_or_else(|| panic!("cannot read the open files of gridd :{}", g.port))
}

/// A random duration in `lo..hi`.
fn jitter(lo: Duration, hi: Duration) -> Duration {
    let r = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    lo + (hi - lo).mul_f64(r as f64 / 1_000_000.0)
}

/// The sample county's grids, by community, in code order.
fn communities() -> Vec<(String, Vec<String>)> {
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let mut by: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for u in &seed.units {
        if u.kind == domain::UnitKind::Grid {
            let parent = u.parent_code.as_ref().unwrap().as_str().to_owned();
            by.entry(parent)
                .or_default()
                .push(u.code.as_str().to_owned());
        }
    }
    by.into_iter().collect()
}

/// Category whose accept clock at the community is one natural minute in these scenarios:
/// reports of it on grids nobody watches escalate (and warn) in real time, and on watched grids
/// the consoles accept them late, a few seconds either side of the deadline, so the accept and
/// the escalation race.
const SHORT_CLOCK_CATEGORY: &str = "0503";
/// Category routed to the community with the county's ordinary limits.
const BUSY_CATEGORY: &str = "0501";

/// The faults the deadline scenario takes in turn and the soak at random.
const FAULTS: [&str; 4] = [
    "kill -9",
    "Redis restarted empty",
    "Postgres immediate restart",
    "crash point armed",
];

/// Where the crash points stop a process: around the commit and the publish.
const CRASH_POINTS: [&str; 4] = [
    "relay-after-publish",
    "relay-before-publish",
    "report-after-commit",
    "router-after-commit",
];

/// Postgres and Redis of the scenario's own, seeded, with gridd replicas on them.
struct Rig {
    pg: PrivatePg,
    redis: PrivateRedis,
    pool: PgPool,
    prefix: String,
    logs: Scratch,
    gridds: Vec<Gridd>,
    /// Grids whose communities have a console, and those communities.
    busy_grids: Vec<String>,
    busy_units: Vec<String>,
    /// Grids of a community nobody watches.
    idle_grids: Vec<String>,
    /// Dead letters counted just before a Redis restart wiped them.
    wiped_dead_letters: u64,
}

impl Rig {
    async fn new() -> Rig {
        let pg = PrivatePg::start().await;
        let redis = PrivateRedis::start().await;
        let url = pg.url("griddispatch");
        store::Store::create_database_if_missing(&url)
            .await
            .unwrap();
        let store = store::Store::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        seed_sample(&store).await;
        let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
        let mut policy = seed.policies[0].clone();
        policy.sla.push(domain::policy::SlaRule {
            tier: domain::Tier::Community,
            category: Some(domain::policy::CategoryCode::parse(SHORT_CLOCK_CATEGORY).unwrap()),
            severity: None,
            accept: Some(domain::calendar::TimeLimit::natural(1)),
            handle: None,
        });
        store.put_policy(&policy).await.unwrap();
        let pool = store.pool().clone();
        let all = communities();
        let busy = &all[..6];
        Rig {
            pg,
            redis,
            pool,
            prefix: format!("gdfault-{}", uuid::Uuid::now_v7()),
            logs: Scratch::new("gridd-logs"),
            gridds: Vec::new(),
            busy_grids: busy.iter().flat_map(|(_, g)| g.clone()).collect(),
            busy_units: busy.iter().map(|(c, _)| c.clone()).collect(),
            idle_grids: all[6].1.clone(),
            wiped_dead_letters: 0,
        }
    }

    fn spec(&self, database_url: String, redis_url: String) -> GriddSpec {
        GriddSpec {
            database_url,
            redis_url,
            prefix: self.prefix.clone(),
            roles: Vec::new(),
            db_max_connections: 16,
            failpoints: None,
            route_at_report: true,
        }
    }

    /// Starts `n` gridd processes, every role in each.
    async fn replicas(&mut self, n: usize) {
        for _ in 0..n {
            let spec = self.spec(self.pg.url("griddispatch"), self.redis.url());
            self.gridds.push(Gridd::start(spec, &self.logs.0).await);
        }
    }

    fn addrs(&self) -> Vec<String> {
        self.gridds.iter().map(Gridd::addr).collect()
    }

    fn plan(&self, rate: u32, duration: Duration, label: &str) -> ReportPlan {
        ReportPlan {
            rate,
            duration,
            grids: self.busy_grids.clone(),
            category: BUSY_CATEGORY.into(),
            call_timeout: Duration::from_secs(3),
            retry_for: Duration::from_secs(30),
            label: label.into(),
        }
    }

    /// Waits for the pipeline to go quiet, then runs the checker.
    async fn check(&self, acked: &HashMap<String, String>) -> Findings {
        let settled = invariants::settle(&self.pool, Duration::from_secs(60)).await;
        let mut f = invariants::check(&self.pool, &self.redis.url(), &self.prefix, acked).await;
        f.dead_letters += self.wiped_dead_letters;
        println!("  settled in {:.1} s", settled.as_secs_f64());
        println!("  checker: {}", f.summary());
        f
    }

    /// TO_ACCEPT entries per case in the inboxes of the watched communities.
    async fn to_accept_entries(&self) -> HashMap<String, usize> {
        let q = queue::Queue::connect(&self.redis.url(), &self.prefix)
            .await
            .unwrap();
        let mut conn = redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut per_case: HashMap<String, usize> = HashMap::new();
        for unit in &self.busy_units {
            let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(q.key(&griddispatch_tests::inbox_stream(unit)))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap();
            for v in entries
                .ids
                .iter()
                .filter_map(|e| e.get::<String>("data"))
                .filter_map(|d| serde_json::from_str::<queue::InboxMsg>(&d).ok())
                .filter(|m| m.kind == domain::effects::ItemKind::ToAccept)
            {
                *per_case.entry(v.case_id.to_string()).or_default() += 1;
            }
        }
        per_case
    }

    /// Counts the dead letters a Redis restart is about to wipe, so the checker still sees
    /// them.
    async fn keep_dead_letters(&mut self) {
        if let Ok(q) = queue::Queue::connect(&self.redis.url(), &self.prefix).await {
            self.wiped_dead_letters += q
                .len(&q.key(&griddispatch_tests::dead_stream(griddispatch_tests::COUNTY)))
                .await
                .unwrap_or(0);
        }
    }

    /// Starts again every gridd a crash point stopped, without its crash point; how many.
    async fn restart_crashed(&mut self) -> u32 {
        let mut n = 0;
        for g in &mut self.gridds {
            if g.exited() {
                n += 1;
                g.spec.failpoints = None;
                g.start_again().await;
            }
        }
        n
    }

    /// Fault `FAULTS[kind]`, on gridd `victim` where it strikes one process; `n` picks the
    /// crash point.
    async fn strike(&mut self, kind: usize, victim: usize, n: usize) {
        match kind {
            0 => {
                self.gridds[victim].kill9().await;
                self.gridds[victim].start_again().await;
            }
            1 => {
                self.keep_dead_letters().await;
                self.redis.kill().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.redis.start_again().await;
            }
            2 => {
                self.pg.stop_immediate().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.pg.start_again().await;
            }
            _ => {
                let g = &mut self.gridds[victim];
                g.kill9().await;
                g.spec.failpoints = Some(format!(
                    "{}=200*off->return",
                    CRASH_POINTS[n % CRASH_POINTS.len()]
                ));
                g.start_again().await;
            }
        }
    }

    fn logs_tail(&self) -> String {
        self.gridds
            .iter()
            .map(|g| format!("--- gridd :{}\n{}", g.port, g.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Load for one scenario: phones at `rate` and consoles on the busy communities.
struct Running {
    stats: Arc<ReportStats>,
    consoles: Arc<ConsoleStats>,
    /// The server-side deadline of each report call.
    call_timeout: Duration,
    stop: CancellationToken,
    phones: tokio::task::JoinHandle<()>,
    console_tasks: tokio::task::JoinSet<()>,
}

fn start_load(rig: &Rig, plan: ReportPlan) -> Running {
    let dialer = load::Dialer::new(&rig.addrs());
    let stats = Arc::new(ReportStats::default());
    let consoles = Arc::new(ConsoleStats::default());
    let stop = CancellationToken::new();
    let late = load::LateAccepts {
        category: SHORT_CLOCK_CATEGORY.into(),
        spread: Duration::from_secs(5),
    };
    let console_tasks = load::consoles(&dialer, &rig.busy_units, &stop, &consoles, Some(&late));
    let call_timeout = plan.call_timeout;
    let phones = tokio::spawn(load::report_load(dialer, plan, stats.clone()));
    Running {
        stats,
        consoles,
        call_timeout,
        stop,
        phones,
        console_tasks,
    }
}

impl Running {
    /// Waits for every phone to be answered (or to give up), then for the consoles to accept
    /// what is still arriving, and stops the consoles.
    async fn finish(mut self, rig: &Rig) -> (Arc<ReportStats>, Arc<ConsoleStats>) {
        self.phones.await.unwrap();
        // on two shared cores the router drains a 300/s run's backlog in up to about a
        // minute; the checker needs the pipeline quiet, however long that takes
        let drained = invariants::settle(&rig.pool, Duration::from_secs(150)).await;
        println!(
            "  pipeline drained (outbox published, every case routed) {:.1} s after the last reply",
            drained.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.stop.cancel();
        // a console task that panicked fails the scenario
        while let Some(joined) = self.console_tasks.join_next().await {
            joined.expect("a console task failed");
        }
        println!("  {}", self.stats.summary());
        println!("  {}", self.consoles.summary());
        println!(
            "  longest call {:.2} s, longest stretch without an acknowledgement {:.2} s",
            self.stats.longest_call.lock().unwrap().as_secs_f64(),
            self.stats.longest_ack_gap().as_secs_f64()
        );
        // consoles meet faults as unavailability and stale versions only
        let other = self.consoles.other.lock().unwrap().clone();
        assert!(
            other.is_empty(),
            "consoles met unexpected errors: {other:?}"
        );
        // every report sent was answered (the checker then finds each answer in Postgres),
        // and no call outlived its deadline by more than a second
        let sent = self.stats.sent.load(Ordering::Relaxed);
        let acked = self.stats.acked.lock().unwrap().len() as u64;
        assert_eq!(sent, acked, "reports sent and acknowledged");
        let longest = *self.stats.longest_call.lock().unwrap();
        assert!(
            longest <= self.call_timeout + Duration::from_secs(1),
            "a call took {longest:?}, past its {:?} deadline",
            self.call_timeout
        );
        (self.stats, self.consoles)
    }
}

fn assert_no_wrong_answers(stats: &ReportStats) {
    let wrong = stats.wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "retries got errors no retry may get: {wrong:?}"
    );
    assert_eq!(
        stats.gave_up.load(Ordering::Relaxed),
        0,
        "reports never answered"
    );
}

/// 1. `kill -9` of a gridd every 10–30 s under 300 reports/s with consoles accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_and_duplicates_nothing() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    let duration = secs(45);
    println!(
        "== kill -9 every 10-30 s, 300 reports/s, {} s",
        duration.as_secs()
    );
    let load = start_load(&rig, rig.plan(300, duration, "kill9"));
    let t = Instant::now();
    let mut kills = 0;
    loop {
        let wait = jitter(Duration::from_secs(10), Duration::from_secs(30));
        if t.elapsed() + wait >= duration {
            break;
        }
        tokio::time::sleep(wait).await;
        let victim = kills % rig.gridds.len();
        rig.gridds[victim].kill9().await;
        kills += 1;
        rig.gridds[victim].start_again().await;
    }
    let (stats, consoles) = load.finish(&rig).await;
    println!("  gridd killed {kills} times");
    let f = rig.check(&stats.acked()).await;
    assert!(kills >= 1);
    assert_no_wrong_answers(&stats);
    assert!(consoles.accepted.load(Ordering::Relaxed) > 0);
    f.assert_clean();
}

/// 2. Crash points between the Postgres commit and the Redis publish (and around it): the
/// relay publishes again, consumers drop the repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_commit_and_publish_is_republished_once() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    let points = CRASH_POINTS;
    // each point lets a few dozen operations pass, then kills the process there
    let arm = |i: usize| Some(format!("{}=40*off->return", points[i % points.len()]));
    let duration = secs(30);
    println!(
        "== crash points around commit and publish, 150 reports/s, {} s",
        duration.as_secs()
    );
    // replica 0 carries the crash points, one after another; replica 1 keeps serving while
    // it restarts. Replica 0 sends its reports through the intake stream, so that its router
    // has work to crash in; replica 1 routes its own in the report's transaction
    rig.gridds[0].spec.failpoints = arm(0);
    rig.gridds[0].spec.route_at_report = false;
    rig.gridds[0].kill9().await;
    rig.gridds[0].start_again().await;
    let load = start_load(&rig, rig.plan(150, duration, "crash"));
    let t = Instant::now();
    let mut restarts = 0;
    while t.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if rig.gridds[0].exited() {
            restarts += 1;
            rig.gridds[0].spec.failpoints = arm(restarts);
            rig.gridds[0].start_again().await;
        }
    }
    let (stats, _) = load.finish(&rig).await;
    // the process says where it died
    let log = rig.gridds[0].log_text();
    let fired: Vec<(&str, usize)> = points
        .iter()
        .map(|p| (*p, log.matches(&format!("failpoint {p}: aborting")).count()))
        .collect();
    println!(
        "  {} crashes: {fired:?}",
        fired.iter().map(|(_, n)| n).sum::<usize>()
    );
    let f = rig.check(&stats.acked()).await;
    assert_no_wrong_answers(&stats);
    for (p, n) in fired {
        assert!(n >= 1, "no crash at {p}\n{}", rig.logs_tail());
    }
    // a crash after publishing and before marking the rows published makes the relay
    // publish them again: some case's TO_ACCEPT entry is in its inbox twice, and its console
    // still took it once (the case was routed once and accepted once: the checker above)
    let per_case = rig.to_accept_entries().await;
    let repeated = per_case.values().filter(|n| **n > 1).count();
    println!(
        "  TO_ACCEPT entries in the watched inboxes: {} for {} cases, {repeated} cases with more than one",
        per_case.values().sum::<usize>(),
        per_case.len()
    );
    assert!(
        repeated >= 1,
        "the relay's crash points never made it publish an inbox entry again"
    );
    f.assert_clean();
}

/// 3. Redis killed and restarted empty under load: every queue rebuilt from Postgres, cases
/// flow to consoles again within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_rebuilds_the_queues() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    let duration = secs(30);
    println!(
        "== Redis killed and restarted empty, 300 reports/s, {} s",
        duration.as_secs()
    );
    let load = start_load(&rig, rig.plan(300, duration, "redis"));
    tokio::time::sleep(duration / 3).await;
    rig.keep_dead_letters().await;
    rig.redis.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.redis.start_again().await;
    let restarted: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&rig.pool)
        .await
        .unwrap();
    let t = Instant::now();
    // back: the queues rebuilt (the marker is there again), and a case reported after the
    // restart routed to its community and accepted at a console
    let q = queue::Queue::connect(&rig.redis.url(), &rig.prefix)
        .await
        .unwrap();
    let (mut rebuilt, mut routed, mut accepted) = (None, None, None);
    // until all three have happened: a console may accept a new case before the rebuild of
    // the older queues has finished
    while t.elapsed() < Duration::from_secs(30)
        && (rebuilt.is_none() || routed.is_none() || accepted.is_none())
    {
        if rebuilt.is_none() && q.marker_present().await.unwrap_or(false) {
            rebuilt = Some(t.elapsed());
        }
        let count = |kind: &'static str| {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM case_events e JOIN cases c USING (case_id)
                  WHERE e.event_type = $1 AND c.reported_at > $2",
            )
            .bind(kind)
            .bind(restarted)
            .fetch_one(&rig.pool)
        };
        if routed.is_none() && count("routed").await.unwrap() > 0 {
            routed = Some(t.elapsed());
        }
        if accepted.is_none() && count("accepted").await.unwrap() > 0 {
            accepted = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stats, _) = load.finish(&rig).await;
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    println!(
        "  Redis down 1 s; after the restart: queues rebuilt {:.2} s, a new case routed {:.2} s, \
         accepted at a console {:.2} s",
        secs(rebuilt),
        secs(routed),
        secs(accepted)
    );
    let f = rig.check(&stats.acked()).await;
    assert_no_wrong_answers(&stats);
    // service back within 10 s: the queues rebuilt, a new case routed to its unit's queue
    // and accepted there by a console
    for (what, d) in [
        ("rebuilt", rebuilt),
        ("routed", routed),
        ("accepted", accepted),
    ] {
        let d = d.unwrap_or_else(|| panic!("never {what} after Redis came back"));
        assert!(d < Duration::from_secs(10), "{what} only after {d:?}");
    }
    f.assert_clean();
}

/// 4. Postgres restarted with `pg_ctl -m immediate` under load: no acknowledged report lost,
/// acknowledgements again within 10 s, connection pools bounded throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_immediate_restart_loses_no_acknowledged_report() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    let duration = secs(30);
    println!(
        "== pg_ctl -m immediate restart, 300 reports/s, {} s",
        duration.as_secs()
    );
    let load = start_load(&rig, rig.plan(300, duration, "pg"));
    // connections sampled all along
    let stop = CancellationToken::new();
    let sampler = {
        let (pool, stop) = (rig.pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut max = 0i64;
            while !stop.is_cancelled() {
                if let Ok(n) = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'griddispatch'",
                )
                .fetch_one(&pool)
                .await
                {
                    max = max.max(n);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            max
        })
    };
    tokio::time::sleep(duration / 3).await;
    // the baseline once the pools have warmed up under load
    let fds_before: Vec<usize> = rig.gridds.iter().map(readable_fds).collect();
    rig.pg.stop_immediate().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.pg.start_again().await;
    let up = Instant::now();
    let (stats, _) = load.finish(&rig).await;
    stop.cancel();
    let max_conns = sampler.await.unwrap();
    let back = stats.first_ack_after(up);
    println!(
        "  Postgres down about 1 s; first acknowledgement {:.2} s after it accepted connections \
         again; at most {max_conns} connections to the database (2 replicas x (16 + 4) + 4 allowed)",
        back.map_or(f64::NAN, |b| b.as_secs_f64())
    );
    let f = rig.check(&stats.acked()).await;
    let fds_after: Vec<usize> = rig.gridds.iter().map(readable_fds).collect();
    println!("  gridd open files before {fds_before:?}, after {fds_after:?}");
    assert_no_wrong_answers(&stats);
    let back = back.expect("no acknowledgement after Postgres came back");
    assert!(
        back < Duration::from_secs(10),
        "service back after {back:?}"
    );
    assert!(max_conns <= 2 * (16 + 4) + 4, "{max_conns} connections");
    for (b, a) in fds_before.iter().zip(&fds_after) {
        assert!(*a <= b + 10, "file descriptors grew from {b} to {a}");
    }
    f.assert_clean();
}

/// 5. A fault proxy in front of Postgres and Redis: latency, resets, blackholes. Calls end by
/// their deadline with UNAVAILABLE or DEADLINE_EXCEEDED instead of hanging, nothing leaks,
/// and everything acknowledged is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_end_calls_by_their_deadline() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    let pg_proxy = FaultProxy::start(format!("127.0.0.1:{}", rig.pg.port).parse().unwrap()).await;
    let redis_proxy =
        FaultProxy::start(format!("127.0.0.1:{}", rig.redis.port).parse().unwrap()).await;
    let spec = rig.spec(
        format!("postgres://postgres@{}/griddispatch", pg_proxy.addr),
        format!("redis://{}", redis_proxy.addr),
    );
    rig.gridds.push(Gridd::start(spec, &rig.logs.0).await);
    let mut fds_before = 0;
    let step = secs(5);
    let phases = [
        ("pass", None, Fault::Pass),
        (
            "Postgres +25 ms latency",
            Some(&pg_proxy),
            Fault::Latency(Duration::from_millis(25)),
        ),
        ("Redis connections reset", Some(&redis_proxy), Fault::Reset),
        ("Postgres blackholed", Some(&pg_proxy), Fault::Blackhole),
        ("Redis blackholed", Some(&redis_proxy), Fault::Blackhole),
        ("Postgres connections reset", Some(&pg_proxy), Fault::Reset),
        ("healed", None, Fault::Pass),
        ("healed", None, Fault::Pass),
    ];
    let duration = step * u32::try_from(phases.len()).unwrap();
    println!(
        "== fault proxy: {} phases of {} s, 100 reports/s",
        phases.len(),
        step.as_secs()
    );
    let mut plan = rig.plan(100, duration, "proxy");
    plan.call_timeout = Duration::from_secs(2);
    let load = start_load(&rig, plan);
    for (name, target, fault) in phases {
        let hits_before = target.map(FaultProxy::hits);
        if let Some(p) = target {
            p.set(fault);
        }
        let before = load.stats.acked.lock().unwrap().len();
        tokio::time::sleep(step).await;
        let after = load.stats.acked.lock().unwrap().len();
        if let (Some(p), Some((d0, r0, s0))) = (target, hits_before) {
            p.set(Fault::Pass);
            // the fault hit something: a phase whose fault touched nothing tested nothing
            let (d1, r1, s1) = p.hits();
            let hit = match fault {
                Fault::Latency(_) => d1 - d0,
                Fault::Reset => r1 - r0,
                Fault::Blackhole => s1 - s0,
                Fault::Pass => 1,
            };
            println!(
                "  {name}: {} acknowledged; the fault hit {hit} times",
                after - before
            );
            assert!(hit > 0, "{name}: the fault never hit");
        } else {
            println!("  {name}: {} acknowledged", after - before);
        }
        if fds_before == 0 {
            // the baseline once the pools have warmed up under load
            fds_before = readable_fds(&rig.gridds[0]);
        }
    }
    let (stats, _) = load.finish(&rig).await;
    let longest = *stats.longest_call.lock().unwrap();
    let errors = stats.errors();
    let f = rig.check(&stats.acked()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fds_after = readable_fds(&rig.gridds[0]);
    println!(
        "  gridd open files before {fds_before}, after {fds_after}; connections through the \
         proxies now: Postgres {}, Redis {}",
        pg_proxy.live_connections(),
        redis_proxy.live_connections()
    );
    assert_no_wrong_answers(&stats);
    // a deadline of 2 s is kept: the answer comes by then (plus scheduling slack)
    assert!(
        longest < Duration::from_millis(2_500),
        "a call took {longest:?}"
    );
    for code in errors.keys() {
        assert!(
            ["Unavailable", "DeadlineExceeded"].contains(&code.as_str()),
            "unexpected error code {code}: {errors:?}"
        );
    }
    assert!(
        fds_after <= fds_before + 10,
        "file descriptors grew from {fds_before} to {fds_after}"
    );
    assert!(pg_proxy.live_connections() <= 16 + 4 + 2);
    assert!(redis_proxy.live_connections() <= 16);
    f.assert_clean();
}

/// 6. Deadlines under every fault. Two replicas of every role; 60 cases nobody accepts, and a
/// case a second for 35 s that the consoles accept late (at its deadline ± 5 s), all on
/// one-minute accept clocks; 50 reports/s accepted meanwhile; and a fault every 5-15 s, each
/// kind in turn: kill -9, Redis restarted empty, Postgres immediate restart, a crash point.
/// Each idle case warns once and escalates once, whichever replica is alive at the time; each
/// late case is either accepted or escalated, never both, and both outcomes happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_fire_once_under_every_fault() {
    let _one = SERIAL.lock().await;
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    let dialer = load::Dialer::new(&rig.addrs());
    let idle = 60;
    let mut idle_ids = Vec::new();
    for i in 0..idle {
        let grid = &rig.idle_grids[i % rig.idle_grids.len()];
        let mut c = proto::v1::reporting_service_client::ReportingServiceClient::with_interceptor(
            dialer.get(i).2,
            griddispatch_tests::TestServer::bearer(server::auth::Role::GridWorker, grid),
        );
        let r = c
            .report_event(griddispatch_tests::report(
                grid,
                SHORT_CLOCK_CATEGORY,
                &format!("idle {i}"),
            ))
            .await
            .unwrap()
            .into_inner();
        idle_ids.push(r.case.unwrap().case_id);
    }
    let duration = secs(100).max(Duration::from_secs(100));
    println!(
        "== deadlines under every fault: two replicas of every role, a fault every 5-15 s; \
         {idle} one-minute deadlines nobody meets, a case a second for 35 s accepted at its \
         deadline +/- 5 s; 50 reports/s accepted meanwhile, {} s",
        duration.as_secs()
    );
    let load = start_load(&rig, rig.plan(50, duration, "timers"));
    let race_stats = Arc::new(ReportStats::default());
    let race = {
        let mut plan = rig.plan(1, Duration::from_secs(35), "race");
        plan.category = SHORT_CLOCK_CATEGORY.into();
        tokio::spawn(load::report_load(dialer.clone(), plan, race_stats.clone()))
    };
    let t = Instant::now();
    let mut struck: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut n = 0usize;
    while t.elapsed() < duration {
        tokio::time::sleep(jitter(Duration::from_secs(5), Duration::from_secs(15))).await;
        let crashed = rig.restart_crashed().await;
        if crashed > 0 {
            *struck.entry("crash point fired").or_default() += crashed;
        }
        let kind = n % FAULTS.len();
        rig.strike(kind, n % 2, n).await;
        *struck.entry(FAULTS[kind]).or_default() += 1;
        n += 1;
    }
    race.await.unwrap();
    rig.restart_crashed().await;
    let (stats, consoles) = load.finish(&rig).await;
    println!("  faults: {struck:?}");
    println!("  late cases: {}", race_stats.summary());
    let race_ids: Vec<String> = race_stats.acked().into_values().collect();
    // wait until every clock has run out or been met
    let waiting = Instant::now() + Duration::from_secs(60);
    let (mut idle_out, mut race_out);
    loop {
        idle_out = outcomes(&rig.pool, &idle_ids).await;
        race_out = outcomes(&rig.pool, &race_ids).await;
        let open = idle_out.iter().filter(|o| o.escalated == 0).count()
            + race_out
                .iter()
                .filter(|o| o.escalated + o.accepted == 0)
                .count();
        if open == 0 || Instant::now() > waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    print_lateness(&rig.pool).await;
    let f = rig.check(&stats.acked()).await;
    assert_no_wrong_answers(&stats);
    assert_no_wrong_answers(&race_stats);
    assert_escalated_once(&idle_out);
    let escalated_late = assert_raced(&race_out, &consoles);
    assert_eq!(f.escalations, i64::try_from(idle + escalated_late).unwrap());
    f.assert_clean();
}

/// What became of one case's first accept clock: at the unit the router gave it to.
#[derive(Debug)]
struct Outcome {
    case_id: String,
    /// Escalated away from that unit, warned for its accept clock, accepted by it.
    escalated: usize,
    warned: usize,
    accepted: usize,
}

async fn outcomes(pool: &PgPool, ids: &[String]) -> Vec<Outcome> {
    use domain::case::{Clock, Event};
    let mut out = Vec::new();
    for id in ids {
        let events: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT data FROM case_events WHERE case_id = $1::uuid ORDER BY version",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let events: Vec<Event> = events
            .into_iter()
            .map(|e| serde_json::from_value(e).unwrap())
            .collect();
        // later tiers have clocks of their own, which may run out in a long run too
        let first = events.iter().find_map(|e| match e {
            Event::Routed { unit, .. } => Some(unit.clone()),
            _ => None,
        });
        let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        let at_first = |u: &domain::region::UnitCode| Some(u) == first.as_ref();
        out.push(Outcome {
            case_id: id.clone(),
            escalated: count(
                &|e| matches!(e, Event::Escalated { from_unit, .. } if at_first(from_unit)),
            ),
            warned: count(
                &|e| matches!(e, Event::Warned { unit, clock: Clock::Accept } if at_first(unit)),
            ),
            accepted: count(&|e| matches!(e, Event::Accepted { unit, .. } if at_first(unit))),
        });
    }
    out
}

/// Cases nobody accepted: each warned once and escalated once.
fn assert_escalated_once(out: &[Outcome]) {
    assert!(!out.is_empty());
    for o in out {
        assert!(
            o.escalated == 1 && o.warned == 1 && o.accepted == 0,
            "idle case {}: {o:?}",
            o.case_id
        );
    }
}

/// Cases accepted at their deadline, give or take: each warned once, then either accepted or
/// escalated, never both and never neither; and the race went both ways. Returns how many
/// escalated.
fn assert_raced(out: &[Outcome], consoles: &ConsoleStats) -> usize {
    for o in out {
        assert!(
            o.warned == 1 && o.escalated + o.accepted == 1,
            "late case {}: {o:?}",
            o.case_id
        );
    }
    let escalated = out.iter().filter(|o| o.escalated == 1).count();
    println!(
        "  late cases: {} accepted before their clock ran out, {escalated} escalated by it; \
         consoles saw {} accepts succeed and {} refused",
        out.len() - escalated,
        consoles.late_accepted.load(Ordering::Relaxed),
        consoles.late_refused.load(Ordering::Relaxed),
    );
    assert!(
        escalated > 0 && escalated < out.len(),
        "the accepts and the deadlines never raced both ways"
    );
    escalated
}

/// How late the deadlines fired, from the deadlines table.
async fn print_lateness(pool: &PgPool) {
    let lateness: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM fired_at - fire_at)::float8 FROM deadlines
          WHERE fired_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let p = |q: f64| {
        lateness
            .get(((lateness.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "  deadlines fired {}: lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lateness.len(),
        p(0.5) * 1e3,
        p(0.99) * 1e3,
        p(1.0) * 1e3
    );
}

/// The soak: every fault above, one after another at random every 10–30 s, under
/// `GD_SOAK_RATE` (default 100) reports/s with consoles accepting and one-minute deadlines
/// running out, for `GD_SOAK_SECS` (default 1,800). `./scripts/soak` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the soak runs for half an hour: ./scripts/soak"]
async fn soak_every_fault_at_random() {
    let _one = SERIAL.lock().await;
    let soak = Duration::from_secs(
        std::env::var("GD_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800),
    );
    let rate = std::env::var("GD_SOAK_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut rig = Rig::new().await;
    rig.replicas(2).await;
    println!(
        "== soak: {} s, {rate} reports/s, a fault every 10-30 s",
        soak.as_secs()
    );
    let load = start_load(&rig, rig.plan(rate, soak, "soak"));
    // one idle case a second, on the one-minute clock
    let idle_stats = Arc::new(ReportStats::default());
    let idle = {
        let mut plan = rig.plan(1, soak, "soak-idle");
        plan.grids = rig.idle_grids.clone();
        plan.category = SHORT_CLOCK_CATEGORY.into();
        tokio::spawn(load::report_load(
            load::Dialer::new(&rig.addrs()),
            plan,
            idle_stats.clone(),
        ))
    };
    // and one case a second on watched grids, accepted at its deadline, give or take
    let race_stats = Arc::new(ReportStats::default());
    let race = {
        let mut plan = rig.plan(1, soak, "soak-race");
        plan.category = SHORT_CLOCK_CATEGORY.into();
        tokio::spawn(load::report_load(
            load::Dialer::new(&rig.addrs()),
            plan,
            race_stats.clone(),
        ))
    };
    let t = Instant::now();
    let mut faults: std::collections::BTreeMap<&str, u32> = Default::default();
    // when each fault struck, to say which ones came before the longest stall
    let mut timeline: Vec<(Instant, &str)> = Vec::new();
    let mut n = 0usize;
    let mut last_note = Instant::now();
    loop {
        let wait = jitter(Duration::from_secs(10), Duration::from_secs(30));
        if t.elapsed() + wait >= soak {
            break;
        }
        tokio::time::sleep(wait).await;
        let crashed = rig.restart_crashed().await;
        if crashed > 0 {
            *faults.entry("crash point fired").or_default() += crashed;
            timeline.push((Instant::now(), "crash point fired (found exited)"));
        }
        let victim = n % 2;
        // a random byte of a v4 id picks the fault
        let kind = usize::from(uuid::Uuid::new_v4().as_bytes()[15]) % FAULTS.len();
        n += 1;
        let name = FAULTS[kind];
        timeline.push((Instant::now(), name));
        *faults.entry(name).or_default() += 1;
        rig.strike(kind, victim, n).await;
        if last_note.elapsed() >= Duration::from_secs(60) {
            last_note = Instant::now();
            println!(
                "  {:>5} s: {}; {}; faults {faults:?}",
                t.elapsed().as_secs(),
                load.stats.progress(),
                load.consoles.summary(),
            );
        }
    }
    idle.await.unwrap();
    race.await.unwrap();
    rig.restart_crashed().await;
    let (stats, consoles) = load.finish(&rig).await;
    println!("  idle: {}", idle_stats.summary());
    println!("  late: {}", race_stats.summary());
    println!("  faults: {faults:?}");
    if let Some((from, gap)) = stats.longest_ack_gap_from() {
        let near: Vec<String> = timeline
            .iter()
            .filter(|(at, _)| {
                *at <= from + gap && from.saturating_duration_since(*at).as_secs() <= 30
            })
            .map(|(at, what)| format!("{what} at {:.1} s", at.duration_since(t).as_secs_f64()))
            .collect();
        println!(
            "  longest stretch without an acknowledgement: {:.2} s from {:.1} s; faults in the 30 s before it and during it: {near:?}",
            gap.as_secs_f64(),
            from.saturating_duration_since(t).as_secs_f64(),
        );
    }
    // the last idle cases' clocks run out a minute after they were filed
    tokio::time::sleep(Duration::from_secs(70)).await;
    let idle_ids: Vec<String> = idle_stats.acked().into_values().collect();
    let race_ids: Vec<String> = race_stats.acked().into_values().collect();
    let idle_out = outcomes(&rig.pool, &idle_ids).await;
    let race_out = outcomes(&rig.pool, &race_ids).await;
    print_lateness(&rig.pool).await;
    let mut acked = stats.acked();
    acked.extend(idle_stats.acked());
    acked.extend(race_stats.acked());
    let f = rig.check(&acked).await;
    assert_no_wrong_answers(&stats);
    assert_no_wrong_answers(&idle_stats);
    assert_no_wrong_answers(&race_stats);
    // each idle case escalated exactly once; each late case accepted or escalated, not both
    assert_escalated_once(&idle_out);
    assert_raced(&race_out, &consoles);
    f.assert_clean();
}
