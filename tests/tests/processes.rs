//! Two real `gridd` processes (every role) on one PostgreSQL database and one Redis prefix:
//! a case handled through both, and accept deadlines on a one-minute clock that must fire
//! exactly once between the two timer workers (a little over a minute of real time); and the
//! main job's county day, short, against a gridd on a demo clock.

use std::process::Stdio;
use std::time::Duration;

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tokio::process::{Child, Command};

struct Gridd {
    child: Child,
    channel: tonic::transport::Channel,
}

async fn spawn(db_url: &str, prefix: &str) -> Gridd {
    spawn_with(db_url, prefix, &[]).await.0
}

async fn spawn_with(
    db_url: &str,
    prefix: &str,
    env: &[(&str, String)],
) -> (Gridd, std::net::SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let child = Command::new(cluster::gridd_binary())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("serve")
        .env("GRIDD_DATABASE_URL", db_url)
        .env("GRIDD_REDIS_URL", redis_url())
        .env("GRIDD_REDIS_PREFIX", prefix)
        .env("GRIDD_LISTEN", addr.to_string())
        .env("GRIDD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect(cluster::GRIDD_MISSING);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap();
    for _ in 0..200 {
        if let Ok(channel) = endpoint.connect().await {
            return (Gridd { child, channel }, addr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gridd did not start on {addr}");
}

impl Gridd {
    fn reporting(&self, b: Bearer) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
        v1::reporting_service_client::ReportingServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }
    fn escalation(
        &self,
        b: Bearer,
    ) -> v1::escalation_service_client::EscalationServiceClient<Authed> {
        v1::escalation_service_client::EscalationServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }
    fn handling(&self, b: Bearer) -> v1::handling_service_client::HandlingServiceClient<Authed> {
        v1::handling_service_client::HandlingServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }
}

async fn events(pool: &PgPool, id: &str) -> Vec<String> {
    let id: uuid::Uuid = id.parse().unwrap();
    sqlx::query_scalar("SELECT event_type FROM case_events WHERE case_id = $1 ORDER BY version")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn two_gridd_processes_share_the_work_and_fire_each_deadline_once(pool: PgPool) {
    let store = store::Store::from_pool(pool.clone());
    seed_sample(&store).await;
    // a one-minute accept clock at the community for category 0503, so deadlines fire in real
    // time during the test
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let mut policy = seed.policies[0].clone();
    policy.sla.push(domain::policy::SlaRule {
        tier: domain::Tier::Community,
        category: Some(domain::policy::CategoryCode::parse("0503").unwrap()),
        severity: None,
        accept: Some(domain::calendar::TimeLimit::natural(1)),
        handle: None,
    });
    store
        .put_policy(&policy, &store::Actor::system())
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL names the test server");
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let db_url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let p1 = spawn(&db_url, &prefix).await;
    let p2 = spawn(&db_url, &prefix).await;
    let pick = |i: usize| if i.is_multiple_of(2) { &p1 } else { &p2 };

    // cases that nobody accepts: each must escalate exactly once, by one process or the other
    let mut idle = Vec::new();
    for i in 0..20 {
        let c = pick(i)
            .reporting(TestServer::bearer(Role::GridWorker, GRID))
            .report_event(report(GRID, "0503", &format!("无人受理 {i}")))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        idle.push(c.case_id);
    }

    // one case handled through both processes, command by command
    let id = p1
        .reporting(TestServer::bearer(Role::GridWorker, GRID))
        .report_event(report(GRID, "0501", "两个进程处理"))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .case_id;
    for _ in 0..200 {
        if events(&pool, &id).await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let staff = || TestServer::bearer(Role::UnitStaff, COMMUNITY);
    p2.escalation(staff())
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    p1.handling(staff())
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            note: "已处理".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    p2.reporting(TestServer::bearer(Role::GridWorker, GRID))
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap();
    p1.reporting(TestServer::bearer(Role::GridWorker, GRID))
        .rate_case(v1::RateCaseRequest {
            case_id: id.clone(),
            score: 5,
            comment: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        events(&pool, &id).await,
        [
            "reported",
            "routed",
            "accepted",
            "result_submitted",
            "verified",
            "rated"
        ]
    );

    // wait past the one-minute clocks
    let deadline = std::time::Instant::now() + Duration::from_secs(100);
    loop {
        let mut done = 0;
        for c in &idle {
            if events(&pool, c).await.iter().any(|e| e == "escalated") {
                done += 1;
            }
        }
        if done == idle.len() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for c in &idle {
        let ev = events(&pool, c).await;
        assert_eq!(
            ev.iter().filter(|e| *e == "escalated").count(),
            1,
            "{c}: {ev:?}"
        );
        assert_eq!(
            ev.iter().filter(|e| *e == "warned").count(),
            1,
            "{c}: {ev:?}"
        );
        assert_eq!(
            ev.iter().filter(|e| *e == "routed").count(),
            1,
            "{c}: {ev:?}"
        );
    }
    let fired_twice = invariants::fired_twice(&pool).await;
    assert_eq!(fired_twice, 0);
    for mut p in [p1, p2] {
        let _ = p.child.kill().await;
    }
    let q = queue::Queue::connect(&redis_url(), &prefix).await.unwrap();
    delete_prefix(&q).await;
}

/// The README's main job in short: a county's day (`gridctl day`) against a gridd process on
/// an accelerated clock, 16 hours in about 10 seconds. Through the real API the day files its
/// reports from each source, units accept, call up and dispatch, unaccepted cases escalate on
/// their clocks, results are checked (some sent back) and rated, and the indicators close it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_county_day_runs_through_the_real_api(pool: PgPool) {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL names the test server");
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let db_url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let anchor = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    let clock = [
        ("GRIDD_DEMO_CLOCK_SPEED", "6000".to_owned()),
        (
            "GRIDD_DEMO_CLOCK_START",
            "2026-12-03T06:00:00+08:00".to_owned(),
        ),
        ("GRIDD_DEMO_CLOCK_ANCHOR", anchor),
    ];
    let (mut gridd, addr) = spawn_with(&db_url, &prefix, &clock).await;
    let gridctl = cluster::gridd_binary().with_file_name("gridctl");
    let out = Command::new(&gridctl)
        .args(["day", "--seed", "7", "--volume", "80", "--plain"])
        .envs(clock.iter().map(|(k, v)| (k, v)))
        .env("GRIDD_SERVER", format!("http://{addr}"))
        .env("GRIDD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .kill_on_drop(true)
        .output()
        .await
        .expect("gridctl runs (./scripts/test builds it first)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "80 reports planned from seed 7",
        "-- 09:",
        "== the day ends at 22:00",
        "the day's indicators per township",
        "360102011 扬子洲镇",
        "where to look next",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in:\n{stdout}");
    }
    // what the day did, from the database
    let n = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let cases = n("SELECT count(*) FROM cases").await;
    assert!((70..=80).contains(&cases), "{cases} cases of 80 planned");
    for source in ["GRID_WORKER", "RESIDENT", "HOTLINE_12345"] {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM cases WHERE source = $1")
            .bind(source)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(count > 0, "no case from {source}");
    }
    for (event, what) in [
        ("accepted", "acceptances"),
        ("called_up", "calls up"),
        ("escalated", "escalations on the clock"),
        ("dispatched", "dispatches to departments"),
        ("result_submitted", "results"),
        ("verified", "checks"),
        ("rated", "ratings"),
    ] {
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM case_events WHERE event_type = $1")
                .bind(event)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(count > 0, "the day had no {what}:\n{stdout}");
    }
    assert!(n("SELECT count(*) FROM cases WHERE status = 'CLOSED'").await > 0);
    let _ = gridd.child.kill().await;
    let q = queue::Queue::connect(&redis_url(), &prefix).await.unwrap();
    delete_prefix(&q).await;
}
