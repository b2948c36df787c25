//! Queue delivery guarantees: an entry read by a consumer that dies before acknowledging is
//! delivered again and applied once; a poison entry is dead-lettered after N deliveries while
//! other entries keep flowing.

use std::sync::Arc;
use std::time::Duration;

use griddispatch_tests::*;
use server::clock::OffsetClock;
use sqlx::PgPool;

async fn pending_count(key: &str) -> i64 {
    let mut c = redis_conn().await;
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(key)
        .arg("router")
        .query_async(&mut c)
        .await
        .unwrap();
    match reply {
        redis::Value::Array(v) => match v.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

async fn routed_events(s: &TestServer, id: &str) -> i64 {
    let id: uuid::Uuid = id.parse().unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM case_events WHERE case_id = $1 AND event_type = 'routed'",
    )
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_consumer_killed_before_acking_is_redelivered_and_applied_once(pool: PgPool) {
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let clock = Arc::new(OffsetClock::default());
    // no router yet: the report waits in the county's intake stream
    let s = TestServer::start_roles(pool.clone(), &prefix, clock.clone(), true, NO_ROUTER).await;
    let key = s.queue.key(&griddispatch_tests::intake_stream(COUNTY));
    let case = s
        .worker(GRID)
        .report_event(report(GRID, "0501", "待路由"))
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    s.eventually(10, "published to intake", || async {
        s.queue.len(&key).await.unwrap_or(0) == 1
    })
    .await;

    // a router reads it and dies without acknowledging
    s.queue.ensure_group(&key, "router").await.unwrap();
    let mut conn = s.queue.blocking_conn().await.unwrap();
    let taken = s
        .queue
        .read_group(
            &mut conn,
            std::slice::from_ref(&key),
            "router",
            "doomed",
            10,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(pending_count(&key).await, 1);

    // a live router claims it once it has been idle long enough, and routes it
    let router = TestServer::start_roles(pool, &prefix, clock, false, ROUTER_ONLY).await;
    s.eventually(10, "routed after redelivery", || async {
        s.case_row(&case.case_id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    s.eventually(5, "acknowledged", || async {
        pending_count(&key).await == 0
    })
    .await;
    assert_eq!(routed_events(&s, &case.case_id).await, 1);

    // the same message again (a relay that crashed before marking it published): dropped
    s.queue
        .publish_raw(&[(key.clone(), taken[0].payload.clone())])
        .await
        .unwrap();
    s.eventually(5, "the repeat is consumed", || async {
        s.queue.len(&key).await.unwrap_or(1) == 0
    })
    .await;
    assert_eq!(routed_events(&s, &case.case_id).await, 1, "applied once");
    let (_, _, version) = s.case_row(&case.case_id).await;
    assert_eq!(version, 2);
    router.stop().await;
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_poison_entry_is_dead_lettered_while_others_flow(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let key = s.queue.key(&griddispatch_tests::intake_stream(COUNTY));
    s.queue.ensure_group(&key, "router").await.unwrap();
    s.queue
        .publish_raw(&[(key.clone(), "{\"not\": \"an intake message\"}".into())])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = s
            .admin_reporting()
            .report_event(report(GRID, "0501", &format!("正常 {i}")))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        ids.push(c.case_id);
    }
    for id in &ids {
        s.eventually(10, "good entries keep flowing", || async {
            s.case_row(id).await.0 == "PENDING_ACCEPT"
        })
        .await;
    }
    let dead_key = s.queue.key(&griddispatch_tests::dead_stream(COUNTY));
    s.eventually(15, "the poison entry is dead-lettered", || async {
        !s.queue
            .list_dead(&dead_key, 10)
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let dead = s.queue.list_dead(&dead_key, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].payload.contains("not"));
    assert_eq!(dead[0].source_key, key);
    assert!(
        dead[0].deliveries > 3,
        "after N = 3 deliveries: {}",
        dead[0].deliveries
    );
    assert!(!dead[0].reason.is_empty());
    s.eventually(5, "nothing left pending", || async {
        pending_count(&key).await == 0
    })
    .await;
    s.stop().await;
}
