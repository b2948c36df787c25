//! The feed's sequencer against real PostgreSQL: committed events numbered in chunks, and an
//! event whose transaction was still open numbered after it commits.

use griddispatch_tests::*;
use sqlx::PgPool;

/// No relay, so no sequencer of the server's own: the test drives the store's steps.
const NO_SEQUENCER: server::RoleSet = server::RoleSet::Some {
    api: true,
    relay: false,
    router: false,
    timers: false,
    reconciler: false,
};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_sequencer_numbers_large_windows_in_chunks_and_waits_for_open_transactions(
    pool: PgPool,
) {
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let s = TestServer::start_roles(
        pool,
        &prefix,
        std::sync::Arc::new(server::clock::OffsetClock::default()),
        true,
        NO_SEQUENCER,
    )
    .await;
    let mut reporting = s.admin_reporting();
    let mut ids = Vec::new();
    for i in 0..10 {
        let c = reporting
            .report_event(report(GRID, "0501", &format!("批量 {i}")))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        ids.push(c.case_id);
    }
    // an open transaction with an event of its own, numbered lower than what follows
    let mut held = s.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO case_events (case_id, version, event_type, data, actor, county_code,
                                  category, recorded_at)
         VALUES ($1::uuid, 2, 'warned', '{}', 'test', '360102', '0501', now())",
    )
    .bind(&ids[0])
    .execute(&mut *held)
    .await
    .unwrap();
    for i in 0..5 {
        reporting
            .report_event(report(GRID, "0501", &format!("之后 {i}")))
            .await
            .unwrap();
    }
    let mut steps = Vec::new();
    loop {
        let n = s.store.sequence_feed(3).await.unwrap();
        steps.push(n);
        if n == 0 {
            break;
        }
        assert!(steps.len() < 20);
    }
    assert_eq!(
        steps,
        [3, 3, 3, 3, 3, 0],
        "15 committed events in chunks of 3"
    );
    assert_eq!(s.store.feed_head().await.unwrap(), 15);
    held.commit().await.unwrap();
    assert_eq!(s.store.sequence_feed(3).await.unwrap(), 1);
    assert_eq!(s.store.sequence_feed(3).await.unwrap(), 0);
    let feed: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT f.pos, e.seq, e.event_type FROM event_feed f JOIN case_events e ON e.seq = f.event_seq
          ORDER BY f.pos",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert_eq!(
        feed.iter().map(|f| f.0).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    assert_eq!(
        feed.last().unwrap().2,
        "warned",
        "the late commit comes last"
    );
    let all: i64 = s.count("case_events").await;
    assert_eq!(all, 16);
    // the events committed together keep log order among themselves
    assert!(feed[..15].windows(2).all(|w| w[0].1 < w[1].1));
    assert!(
        feed[15].1 < feed[14].1,
        "numbered after events with higher seq"
    );
    s.stop().await;
}
