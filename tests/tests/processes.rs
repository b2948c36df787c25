//! Two real `gridd` processes (every role) on one PostgreSQL database and one Redis prefix:
//! a case handled through both, and accept deadlines on a one-minute clock that must fire
//! exactly once between the two timer workers. Real time: this test takes a little over a
//! minute.

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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let child = Command::new(cluster::gridd_binary())
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
            return Gridd { child, channel };
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
