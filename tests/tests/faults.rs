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

#[path = "faults/outcomes.rs"]
mod outcomes;
#[path = "faults/rig.rs"]
mod rig;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use griddispatch_tests::cluster::Gridd;
use griddispatch_tests::load::{self, ReportStats};
use griddispatch_tests::proxy::{Fault, FaultProxy};
use tokio_util::sync::CancellationToken;

use outcomes::{assert_escalated_once, assert_raced, outcomes, print_lateness};
use rig::{
    CRASH_POINTS, FAULTS, Rig, SHORT_CLOCK_CATEGORY, assert_no_wrong_answers, jitter, readable_fds,
    secs, start_load,
};

/// Scenarios share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
