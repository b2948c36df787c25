//! The Redis queue against a real Redis: blocking reads, the marker that tells a wiped Redis,
//! capping, recovery after Redis loses everything, an unreachable Redis. Each test works under
//! a fresh key prefix (`common::Ctx`).

mod common;

use std::time::{Duration, Instant};

use gd_queue::{Queue, QueueError};

use common::*;

#[tokio::test]
async fn read_after_sees_new_entries_and_times_out_empty() {
    let ctx = Ctx::new().await;
    let q = ctx.q.clone();
    let inbox = q.key(&inbox("360102001"));
    assert_eq!(q.last_id(&inbox).await.unwrap(), "0-0");

    let ids = q
        .publish_raw(&batch(&inbox, &["old1", "old2"]))
        .await
        .unwrap();
    let last = q.last_id(&inbox).await.unwrap();
    assert_eq!(last, ids[1]);

    let mut conn = q.blocking_conn().await.unwrap();
    let all = q
        .read_after(&mut conn, &inbox, "0-0", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        ["old1", "old2"]
    );
    assert!(all.iter().all(|e| e.deliveries == 0 && e.key == inbox));

    let start = Instant::now();
    let none = q
        .read_after(&mut conn, &inbox, &last, 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(250), "it blocked");

    let publisher = {
        let q = q.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            q.publish_raw(&batch(&inbox, &["new"])).await.unwrap()
        })
    };
    let start = Instant::now();
    let fresh = q
        .read_after(&mut conn, &inbox, &last, 10, Duration::from_secs(3))
        .await
        .unwrap();
    let new_ids = publisher.await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "woken by the XADD"
    );
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].id, new_ids[0]);
    assert_eq!(fresh[0].payload, "new");
    // Every reader sees every item: a second console reading from the same point gets it too.
    let mut other = q.blocking_conn().await.unwrap();
    let seen = q
        .read_after(&mut other, &inbox, &last, 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(seen, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_read_does_not_delay_the_shared_connection() {
    let ctx = Ctx::new().await;
    let q = ctx.q.clone();
    let inbox = q.key(&inbox("360102001001"));
    let key = q.key(&intake(COUNTY));
    q.ensure_group(&key, GROUP).await.unwrap();
    let mut conn = q.blocking_conn().await.unwrap();
    let mut conn2 = q.blocking_conn().await.unwrap();

    let reader = {
        let q = q.clone();
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let got = q
                .read_after(&mut conn, &inbox, "$", 10, Duration::from_secs(2))
                .await
                .unwrap();
            (got, start.elapsed())
        })
    };
    let group_reader = {
        let q = q.clone();
        let key = key.clone();
        tokio::spawn(async move {
            q.read_group(&mut conn2, &[key], GROUP, "c1", 10, Duration::from_secs(2))
                .await
                .unwrap()
        })
    };
    // Let both reads reach the server and block there.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let start = Instant::now();
    for _ in 0..20 {
        q.ping().await.unwrap();
    }
    q.len(&key).await.unwrap();
    let pings = start.elapsed();
    assert!(
        pings < Duration::from_millis(500),
        "20 pings took {pings:?} while reads were blocked"
    );

    let (got, blocked) = reader.await.unwrap();
    assert!(got.is_empty());
    assert!(
        blocked >= Duration::from_millis(1900),
        "read blocked {blocked:?}"
    );
    assert!(group_reader.await.unwrap().is_empty());
}

#[tokio::test]
async fn marker_set_present_and_gone_after_flush() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    assert!(
        !q.marker_present().await.unwrap(),
        "fresh Redis has no marker"
    );
    q.set_marker().await.unwrap();
    assert!(q.marker_present().await.unwrap());
    assert_eq!(ctx.purge(), 1);
    assert!(
        !q.marker_present().await.unwrap(),
        "lost data means a rebuild"
    );
}

#[tokio::test]
async fn inbox_is_capped_but_intake_is_not() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let inbox = q.key(&inbox("360102002001"));
    let intake = q.key(&intake(COUNTY));
    let payload = "x".repeat(16);
    let many: Vec<(String, String)> = (0..12_000)
        .map(|_| (inbox.clone(), payload.clone()))
        .collect();
    let ids = q.publish_raw(&many).await.unwrap();
    assert_eq!(ids.len(), 12_000);
    let len = q.len(&inbox).await.unwrap();
    assert!((10_000..=11_000).contains(&len), "inbox XLEN {len}");

    let many: Vec<(String, String)> = (0..12_000)
        .map(|_| (intake.clone(), payload.clone()))
        .collect();
    q.publish_raw(&many).await.unwrap();
    assert_eq!(q.len(&intake).await.unwrap(), 12_000);
}

#[tokio::test]
async fn queues_work_again_after_redis_loses_everything() {
    let ctx = Ctx::new().await;
    let q = ctx.q.clone();
    let key = q.key(&intake(COUNTY));
    q.ensure_group(&key, GROUP).await.unwrap();
    q.publish_raw(&batch(&key, &["before"])).await.unwrap();
    let mut conn = q.blocking_conn().await.unwrap();
    let keys = vec![key.clone()];
    assert_eq!(
        q.read_group(
            &mut conn,
            &keys,
            GROUP,
            "c1",
            10,
            Duration::from_millis(200)
        )
        .await
        .unwrap()
        .len(),
        1
    );

    assert!(ctx.purge() >= 1);
    q.ensure_group(&key, GROUP).await.unwrap();
    q.publish_raw(&batch(&key, &["after"])).await.unwrap();
    let got = q
        .read_group(
            &mut conn,
            &keys,
            GROUP,
            "c1",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, "after");

    // Without ensure_group: NOGROUP recovery.
    ctx.purge();
    q.publish_raw(&batch(&key, &["again"])).await.unwrap();
    let got = q
        .read_group(
            &mut conn,
            &keys,
            GROUP,
            "c1",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, "again");

    // Lost while a reader is blocked on it: Redis 7 unblocks it with an error, the read
    // recreates the group and still returns what arrives next.
    ctx.purge();
    q.ensure_group(&key, GROUP).await.unwrap();
    let reader = {
        let q = q.clone();
        let keys = keys.clone();
        tokio::spawn(async move {
            q.read_group(&mut conn, &keys, GROUP, "c1", 10, Duration::from_secs(2))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctx.purge();
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.publish_raw(&batch(&key, &["while-blocked"]))
        .await
        .unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, "while-blocked");
}

#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    let err = Queue::connect("redis://127.0.0.1:1/", "gdtest-unreachable")
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
}
