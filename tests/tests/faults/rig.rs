//! The fault suite's rig: Postgres and Redis of a scenario's own, seeded, with gridd replicas
//! on them; the faults that strike them; and the load of phones and consoles.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use griddispatch_tests::cluster::{Gridd, GriddSpec, PrivatePg, PrivateRedis, Scratch};
use griddispatch_tests::invariants::{self, Findings};
use griddispatch_tests::load::{self, ConsoleStats, ReportPlan, ReportStats};
use griddispatch_tests::seed_sample;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Seconds of load per scenario: `GD_FAULT_SCALE` (a factor, 1 by default) lengthens or
/// shortens every scenario of the bounded form.
pub fn secs(default: u64) -> Duration {
    let scale = std::env::var("GD_FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    Duration::from_secs_f64(default as f64 * scale)
}

/// A gridd's open files: a leak check that cannot read them has checked nothing, so it fails.
pub fn readable_fds(g: &Gridd) -> usize {
    g.open_fds()
        .unwrap_or_else(|| panic!("cannot read the open files of gridd :{}", g.port))
}

/// A random duration in `lo..hi`.
pub fn jitter(lo: Duration, hi: Duration) -> Duration {
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
pub const SHORT_CLOCK_CATEGORY: &str = "0503";
/// Category routed to the community with the county's ordinary limits.
const BUSY_CATEGORY: &str = "0501";

/// The faults the deadline scenario takes in turn and the soak at random.
pub const FAULTS: [&str; 4] = [
    "kill -9",
    "Redis restarted empty",
    "Postgres immediate restart",
    "crash point armed",
];

/// Where the crash points stop a process: around the commit and the publish.
pub const CRASH_POINTS: [&str; 4] = [
    "relay-after-publish",
    "relay-before-publish",
    "report-after-commit",
    "router-after-commit",
];

/// Postgres and Redis of the scenario's own, seeded, with gridd replicas on them.
pub struct Rig {
    pub pg: PrivatePg,
    pub redis: PrivateRedis,
    pub pool: PgPool,
    pub prefix: String,
    pub logs: Scratch,
    pub gridds: Vec<Gridd>,
    /// Grids whose communities have a console, and those communities.
    busy_grids: Vec<String>,
    busy_units: Vec<String>,
    /// Grids of a community nobody watches.
    pub idle_grids: Vec<String>,
    /// Dead letters counted just before a Redis restart wiped them.
    wiped_dead_letters: u64,
}

impl Rig {
    pub async fn new() -> Rig {
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
        store
            .put_policy(&policy, &store::Actor::system())
            .await
            .unwrap();
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

    pub fn spec(&self, database_url: String, redis_url: String) -> GriddSpec {
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
    pub async fn replicas(&mut self, n: usize) {
        for _ in 0..n {
            let spec = self.spec(self.pg.url("griddispatch"), self.redis.url());
            self.gridds.push(Gridd::start(spec, &self.logs.0).await);
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.gridds.iter().map(Gridd::addr).collect()
    }

    pub fn plan(&self, rate: u32, duration: Duration, label: &str) -> ReportPlan {
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
    pub async fn check(&self, acked: &HashMap<String, String>) -> Findings {
        let settled = invariants::settle(&self.pool, Duration::from_secs(60)).await;
        let mut f = invariants::check(&self.pool, &self.redis.url(), &self.prefix, acked).await;
        f.dead_letters += self.wiped_dead_letters;
        println!("  settled in {:.1} s", settled.as_secs_f64());
        println!("  checker: {}", f.summary());
        f
    }

    /// TO_ACCEPT entries per case in the inboxes of the watched communities.
    pub async fn to_accept_entries(&self) -> HashMap<String, usize> {
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
    pub async fn keep_dead_letters(&mut self) {
        if let Ok(q) = queue::Queue::connect(&self.redis.url(), &self.prefix).await {
            self.wiped_dead_letters += q
                .len(&q.key(&griddispatch_tests::dead_stream(griddispatch_tests::COUNTY)))
                .await
                .unwrap_or(0);
        }
    }

    /// Starts again every gridd a crash point stopped, without its crash point; how many.
    pub async fn restart_crashed(&mut self) -> u32 {
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
    pub async fn strike(&mut self, kind: usize, victim: usize, n: usize) {
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

    pub fn logs_tail(&self) -> String {
        self.gridds
            .iter()
            .map(|g| format!("--- gridd :{}\n{}", g.port, g.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Load for one scenario: phones at `rate` and consoles on the busy communities.
pub struct Running {
    pub stats: Arc<ReportStats>,
    pub consoles: Arc<ConsoleStats>,
    /// The server-side deadline of each report call.
    call_timeout: Duration,
    stop: CancellationToken,
    phones: tokio::task::JoinHandle<()>,
    console_tasks: tokio::task::JoinSet<()>,
}

pub fn start_load(rig: &Rig, plan: ReportPlan) -> Running {
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
    pub async fn finish(mut self, rig: &Rig) -> (Arc<ReportStats>, Arc<ConsoleStats>) {
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

pub fn assert_no_wrong_answers(stats: &ReportStats) {
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
