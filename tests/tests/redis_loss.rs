//! Redis restarted empty mid-run (FLUSHALL): every pending item is back in its unit's inbox
//! within 10 s, cases waiting for the router are routed, nothing is duplicated in Postgres.
//! Alone in its test binary, so the FLUSHALL touches no other test's keys.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use griddispatch_tests::*;
use sqlx::PgPool;

const GRIDS: [&str; 4] = [GRID, OTHER_GRID, "360102003001001", "360102001002001"];

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn flushall_mid_run_rebuilds_every_queue_from_postgres(pool: PgPool) {
    let s = TestServer::start(pool).await;
    for i in 0..40 {
        s.admin_reporting()
            .report_event(report(GRIDS[i % 4], "0501", &format!("清空前 {i}")))
            .await
            .unwrap();
    }
    s.eventually(20, "all routed", || async {
        s.count("cases WHERE status = 'PENDING_ACCEPT'").await == 40
    })
    .await;

    // reports keep arriving while Redis loses everything
    let reporter = {
        let mut client = s.admin_reporting();
        tokio::spawn(async move {
            for i in 0..60 {
                client
                    .report_event(report(GRIDS[i % 4], "0501", &format!("清空中 {i}")))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = redis_conn().await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    let flushed = Instant::now();
    reporter.await.unwrap();

    s.eventually(10, "every pending case back in its unit's inbox", || async {
        let pending: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT case_id, unit_code FROM assignments WHERE status = 'PENDING_ACCEPT' AND ended_at IS NULL",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        if pending.len() != 100 {
            return false;
        }
        let mut conn = s.queue.blocking_conn().await.unwrap();
        let units: HashSet<&String> = pending.iter().map(|(_, u)| u).collect();
        let mut seen = HashSet::new();
        for u in units {
            let key = s.queue.key(&griddispatch_tests::inbox_stream(u));
            for e in s.queue.read_after(&mut conn, &key, "0-0", 10_000, Duration::from_millis(1)).await.unwrap() {
                let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
                if v["kind"] == "TO_ACCEPT" {
                    seen.insert((v["case_id"].as_str().unwrap().to_owned(), u.clone()));
                }
            }
        }
        pending.iter().all(|(id, u)| seen.contains(&(id.to_string(), u.clone())))
    })
    .await;
    println!("queues rebuilt {:?} after FLUSHALL", flushed.elapsed());
    assert!(flushed.elapsed() < Duration::from_secs(10));

    // nothing duplicated in Postgres
    assert_eq!(s.count("cases").await, 100);
    assert_eq!(
        s.count("case_events WHERE event_type = 'routed'").await,
        100,
        "each case routed once"
    );
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT case_id FROM case_events GROUP BY case_id HAVING max(version) <> count(*)) g",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(dup, 0, "no gaps or repeats in any case's versions");
    s.stop().await;
}
