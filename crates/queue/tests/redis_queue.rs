//! Against a real Redis (`GD_TEST_REDIS_URL`, else `redis://127.0.0.1:6379/`). Each test
//! works under a fresh random key prefix and deletes every key under it when it ends, even
//! when it panics, so tests can run in parallel against a shared server.

use std::time::{Duration, Instant};

use domain::region::{RegionCode, UnitCode};
use gd_queue::{Entry, Queue, QueueError, Stream};
use redis::Value;

const COUNTY: &str = "360102";
const GROUP: &str = "router";

fn intake(county: &str) -> Stream {
    Stream::Intake(RegionCode::parse(county).unwrap())
}

fn inbox(unit: &str) -> Stream {
    Stream::Inbox(UnitCode::parse(unit).unwrap())
}

fn dead(county: &str) -> Stream {
    Stream::Dead(RegionCode::parse(county).unwrap())
}

fn redis_url() -> String {
    std::env::var("GD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A queue under its own prefix; dropping it deletes the prefix's keys.
struct Ctx {
    q: Queue,
    url: String,
}

impl Ctx {
    async fn new() -> Ctx {
        let url = redis_url();
        let prefix = format!("gdtest-{}", uuid::Uuid::new_v4().simple());
        let q = Queue::connect(&url, &prefix)
            .await
            .expect("Redis must answer for these tests (deploy/local-services.sh starts it)");
        Ctx { q, url }
    }

    /// SCAN prefix:* + DEL. Synchronous so that `Drop` can run it after a panic too.
    fn purge(&self) -> usize {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let pattern = format!("{}:*", self.q.prefix());
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .expect("SCAN");
            if !keys.is_empty() {
                let n: usize = redis::cmd("DEL").arg(&keys).query(&mut conn).expect("DEL");
                deleted += n;
            }
            if next == 0 {
                return deleted;
            }
            cursor = next;
        }
    }

    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Number of entries pending in `group` (XPENDING summary form).
    async fn pending(&self, key: &str, group: &str) -> i64 {
        let reply: Value = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .query_async(&mut self.raw().await)
            .await
            .unwrap();
        match reply {
            Value::Array(parts) => match parts.first() {
                Some(Value::Int(n)) => *n,
                other => panic!("XPENDING count: {other:?}"),
            },
            other => panic!("XPENDING: {other:?}"),
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.purge();
    }
}

fn batch(key: &str, payloads: &[&str]) -> Vec<(String, String)> {
    payloads
        .iter()
        .map(|p| (key.to_owned(), (*p).to_owned()))
        .collect()
}

#[tokio::test]
async fn keys_carry_the_county_hash_tag() {
    let ctx = Ctx::new().await;
    let p = ctx.q.prefix().to_owned();
    assert_eq!(ctx.q.key(&intake(COUNTY)), format!("{p}:intake:{{360102}}"));
    assert_eq!(
        ctx.q.key(&inbox("360102001")),
        format!("{p}:inbox:{{360102}}:360102001")
    );
    assert_eq!(ctx.q.key(&dead(COUNTY)), format!("{p}:dead:{{360102}}"));
    ctx.q.ping().await.unwrap();
}

#[tokio::test]
async fn publish_read_group_ack() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let a = q.key(&intake(COUNTY));
    let b = q.key(&intake("360103"));
    q.ensure_group(&a, GROUP).await.unwrap();
    q.ensure_group(&a, GROUP).await.unwrap(); // BUSYGROUP is fine
    q.ensure_group(&b, GROUP).await.unwrap();

    let mut items = batch(&a, &["one", "two"]);
    items.push((b.clone(), "three".to_owned()));
    let ids = q.publish_raw(&items).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert!(q.publish_raw(&[]).await.unwrap().is_empty());

    let mut conn = q.blocking_conn().await.unwrap();
    let keys = vec![a.clone(), b.clone()];
    let got = q
        .read_group(&mut conn, &keys, GROUP, "c1", 10, Duration::from_secs(1))
        .await
        .unwrap();
    let expect = vec![
        Entry {
            key: a.clone(),
            id: ids[0].clone(),
            payload: "one".into(),
            deliveries: 1,
        },
        Entry {
            key: a.clone(),
            id: ids[1].clone(),
            payload: "two".into(),
            deliveries: 1,
        },
        Entry {
            key: b.clone(),
            id: ids[2].clone(),
            payload: "three".into(),
            deliveries: 1,
        },
    ];
    assert_eq!(got, expect);
    assert_eq!(ctx.pending(&a, GROUP).await, 2);

    q.ack(&a, GROUP, &ids[..2]).await.unwrap();
    q.ack(&b, GROUP, &ids[2..]).await.unwrap();
    q.ack(&b, GROUP, &[]).await.unwrap();
    assert_eq!(ctx.pending(&a, GROUP).await, 0);
    assert_eq!(ctx.pending(&b, GROUP).await, 0);
    assert_eq!(q.len(&a).await.unwrap(), 0, "acked entries are deleted");
    assert_eq!(q.len(&b).await.unwrap(), 0);

    // Nothing left: a short block returns empty.
    let none = q
        .read_group(
            &mut conn,
            &keys,
            GROUP,
            "c1",
            10,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn read_group_recovers_from_missing_group() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    // One stream exists without a group, the other does not exist at all.
    let existing = q.key(&intake(COUNTY));
    let missing = q.key(&intake("360104"));
    let ids = q
        .publish_raw(&batch(&existing, &["before-group"]))
        .await
        .unwrap();

    let mut conn = q.blocking_conn().await.unwrap();
    let got = q
        .read_group(
            &mut conn,
            &[existing.clone(), missing.clone()],
            GROUP,
            "c1",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    // The group starts at 0, so an entry written before it existed is not skipped.
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ids[0]);
    assert_eq!(got[0].payload, "before-group");
    assert_eq!(ctx.pending(&missing, GROUP).await, 0);
}

#[tokio::test]
async fn autoclaim_takes_idle_entries_and_counts_deliveries() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let key = q.key(&intake(COUNTY));
    q.ensure_group(&key, GROUP).await.unwrap();
    let ids = q.publish_raw(&batch(&key, &["stuck"])).await.unwrap();

    let mut conn = q.blocking_conn().await.unwrap();
    let first = q
        .read_group(
            &mut conn,
            std::slice::from_ref(&key),
            GROUP,
            "crashed",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].deliveries, 1);

    let idle = Duration::from_millis(200);
    // Not idle long enough yet.
    assert!(
        q.autoclaim(&key, GROUP, "c2", idle, 10)
            .await
            .unwrap()
            .is_empty()
    );

    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    let claimed = q.autoclaim(&key, GROUP, "c2", idle, 10).await.unwrap();
    assert_eq!(
        claimed,
        vec![Entry {
            key: key.clone(),
            id: ids[0].clone(),
            payload: "stuck".into(),
            deliveries: 2,
        }]
    );
    // Just claimed: idle again only after min_idle.
    assert!(
        q.autoclaim(&key, GROUP, "c3", idle, 10)
            .await
            .unwrap()
            .is_empty()
    );

    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    let again = q.autoclaim(&key, GROUP, "c3", idle, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].deliveries, 3);

    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    let third = q.autoclaim(&key, GROUP, "c2", idle, 10).await.unwrap();
    assert_eq!(third[0].deliveries, 4);

    q.ack(&key, GROUP, &[third[0].id.clone()]).await.unwrap();
    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    assert!(
        q.autoclaim(&key, GROUP, "c2", idle, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn autoclaim_respects_count_and_skips_deleted_entries() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let key = q.key(&intake(COUNTY));
    q.ensure_group(&key, GROUP).await.unwrap();
    let ids = q
        .publish_raw(&batch(&key, &["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    let mut conn = q.blocking_conn().await.unwrap();
    let read = q
        .read_group(
            &mut conn,
            std::slice::from_ref(&key),
            GROUP,
            "c1",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(read.len(), 5);

    // Delete one pending entry behind the group's back (what trimming would do): Redis 7
    // reports it in XAUTOCLAIM's third element and it must simply not come back.
    let _: i64 = redis::cmd("XDEL")
        .arg(&key)
        .arg(&ids[1])
        .query_async(&mut ctx.raw().await)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(150)).await;
    let idle = Duration::from_millis(100);
    let first = q.autoclaim(&key, GROUP, "c2", idle, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = q.autoclaim(&key, GROUP, "c2", idle, 10).await.unwrap();
    let mut seen: Vec<String> = first.iter().chain(&rest).map(|e| e.id.clone()).collect();
    seen.sort();
    let mut want = vec![
        ids[0].clone(),
        ids[2].clone(),
        ids[3].clone(),
        ids[4].clone(),
    ];
    want.sort();
    // The first batch was claimed a moment ago, so only the rest are idle enough now;
    // together they are every surviving entry, each exactly once.
    assert_eq!(seen, want);
    assert!(first.iter().chain(&rest).all(|e| e.deliveries == 2));
    assert_eq!(ctx.pending(&key, GROUP).await, 4);
}

#[tokio::test]
async fn autoclaim_on_missing_group_creates_it() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let key = q.key(&intake(COUNTY));
    let got = q
        .autoclaim(&key, GROUP, "c1", Duration::from_millis(10), 10)
        .await
        .unwrap();
    assert!(got.is_empty());
    assert_eq!(ctx.pending(&key, GROUP).await, 0, "group exists now");
}

#[tokio::test]
async fn dead_letter_then_redrive() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let key = q.key(&intake(COUNTY));
    let dead = q.key(&dead(COUNTY));
    q.ensure_group(&key, GROUP).await.unwrap();
    q.publish_raw(&batch(&key, &["poison"])).await.unwrap();

    let mut conn = q.blocking_conn().await.unwrap();
    let got = q
        .read_group(
            &mut conn,
            std::slice::from_ref(&key),
            GROUP,
            "c1",
            10,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let mut entry = got[0].clone();
    entry.deliveries = 5;
    q.dead_letter(&entry, GROUP, "unknown unit 999")
        .await
        .unwrap();

    assert_eq!(ctx.pending(&key, GROUP).await, 0);
    assert_eq!(q.len(&key).await.unwrap(), 0);
    let letters = q.list_dead(&dead, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.payload, "poison");
    assert_eq!(letter.source_key, key);
    assert_eq!(letter.reason, "unknown unit 999");
    assert_eq!(letter.deliveries, 5);

    assert!(q.redrive(&dead, &letter.id).await.unwrap());
    assert!(q.list_dead(&dead, 10).await.unwrap().is_empty());
    assert!(
        !q.redrive(&dead, &letter.id).await.unwrap(),
        "already re-driven"
    );

    let back = q
        .read_group(
            &mut conn,
            std::slice::from_ref(&key),
            GROUP,
            "c1",
            10,
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].payload, "poison");
    assert_eq!(back[0].deliveries, 1, "a re-driven entry starts afresh");
    assert_ne!(back[0].id, entry.id);
}

#[tokio::test]
async fn list_dead_is_oldest_first_and_bounded() {
    let ctx = Ctx::new().await;
    let q = &ctx.q;
    let key = q.key(&intake(COUNTY));
    let dead = q.key(&dead(COUNTY));
    for (i, id) in ["1-1", "1-2", "1-3"].iter().enumerate() {
        let e = Entry {
            key: key.clone(),
            id: (*id).to_owned(),
            payload: format!("p{i}"),
            deliveries: 3,
        };
        // Acking ids the group never delivered is harmless.
        q.dead_letter(&e, GROUP, "r").await.unwrap();
    }
    let two = q.list_dead(&dead, 2).await.unwrap();
    assert_eq!(
        two.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>(),
        ["p0", "p1"]
    );
    assert!(
        q.list_dead(
            &q.key(&Stream::Dead(RegionCode::parse("999999").unwrap())),
            10
        )
        .await
        .unwrap()
        .is_empty()
    );
}

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
