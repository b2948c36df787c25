//! The Redis queue against a real Redis (`GD_TEST_REDIS_URL`, else `redis://127.0.0.1:6379/`):
//! keys, publishing, consumer groups, claiming idle entries, dead letters. Each test works under
//! a fresh key prefix (`common::Ctx`).

mod common;

use std::time::Duration;

use domain::region::RegionCode;
use gd_queue::{Entry, Stream};

use common::*;

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
