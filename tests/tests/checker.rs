//! The fault checker, checked: for each kind of breach, a defect armed in gridd (a fault
//! point of the test build) makes it happen, and the checker must report exactly that breach.
//! A checker that cannot see a defect is a defect. Fault points are set for the whole test
//! process, so these tests take turns.

use std::collections::HashMap;

use griddispatch_tests::*;
use sqlx::PgPool;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Category with a one-minute accept clock at the community.
const QUICK: &str = "0503";

async fn quick_clock(s: &TestServer) {
    community_limits(
        &s.store,
        QUICK,
        domain::calendar::TimeLimit::natural(1),
        None,
    )
    .await;
    // the directory's cache lives 200 ms in tests
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// Reports `n` cases with distinct titles; answers idempotency key → case id.
async fn report_some(s: &TestServer, n: usize, category: &str) -> HashMap<String, String> {
    let mut acked = HashMap::new();
    let mut phone = s.worker(GRID);
    for i in 0..n {
        let r = report(
            GRID,
            category,
            &format!("核查 {} {i}", uuid::Uuid::now_v7()),
        );
        let key = r.idempotency_key.clone();
        let c = phone
            .report_event(r)
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        acked.insert(key, c.case_id);
    }
    acked
}

/// Waits until the outbox is published and nothing more is routed for a moment.
async fn quiet(s: &TestServer) {
    s.eventually(20, "the outbox is published", || async {
        s.count("outbox WHERE published_at IS NULL").await == 0
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
}

async fn breaches(s: &TestServer, acked: &HashMap<String, String>) -> Vec<String> {
    let f = invariants::check(&s.pool, &redis_url(), s.queue.prefix(), acked).await;
    f.breaches()
}

/// The one breach found starts with `what`.
fn only(found: &[String], what: &str) {
    assert!(
        found.len() == 1 && found[0].starts_with(what),
        "expected only {what:?}, found {found:#?}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn with_no_defect_armed_the_checker_finds_nothing(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start(pool).await;
    quick_clock(&s).await;
    let mut acked = report_some(&s, 3, "0501").await;
    acked.extend(report_some(&s, 2, QUICK).await);
    quiet(&s).await;
    s.advance(chrono::Duration::minutes(2));
    s.eventually(20, "the quick cases escalated", || async {
        s.count("case_events WHERE event_type = 'escalated'").await == 2
    })
    .await;
    quiet(&s).await;
    assert_eq!(breaches(&s, &acked).await, Vec::<String>::new());
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_intake_entry_dropped_by_the_router_is_seen(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start_routing_by_intake(pool).await;
    fail::cfg("router-drop-entry", "1*return").unwrap();
    let acked = report_some(&s, 3, "0501").await;
    quiet(&s).await;
    fail::remove("router-drop-entry");
    only(&breaches(&s, &acked).await, "cases never routed: 1");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_dead_lettered_entry_is_seen(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start_routing_by_intake(pool).await;
    fail::cfg("router-dead-letter", "1*return").unwrap();
    let acked = report_some(&s, 3, "0501").await;
    quiet(&s).await;
    fail::remove("router-dead-letter");
    let found = breaches(&s, &acked).await;
    assert!(
        found
            .iter()
            .any(|b| b == "entries in dead-letter streams: 1"),
        "{found:#?}"
    );
    // its case is left unrouted too; nothing else is wrong
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found.iter().any(|b| b == "cases never routed: 1"),
        "{found:#?}"
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_inbox_entry_lost_on_its_way_is_seen(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start(pool).await;
    fail::cfg("relay-lose-inbox-entry", "1*return").unwrap();
    let acked = report_some(&s, 3, "0501").await;
    s.eventually(20, "all routed", || async {
        s.count("cases WHERE status = 'PENDING_ACCEPT'").await == 3
    })
    .await;
    quiet(&s).await;
    fail::remove("relay-lose-inbox-entry");
    only(
        &breaches(&s, &acked).await,
        "pending assignments not in their inbox: 1",
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deadline_fired_twice_is_seen(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start(pool).await;
    quick_clock(&s).await;
    let acked = report_some(&s, 1, QUICK).await;
    quiet(&s).await;
    // the warning at 80 % of the minute takes effect twice
    fail::cfg("timer-fire-twice", "1*return").unwrap();
    s.advance(chrono::Duration::seconds(50));
    s.eventually(20, "the warning fired", || async {
        s.count("case_events WHERE event_type = 'warned'").await >= 1
    })
    .await;
    fail::remove("timer-fire-twice");
    quiet(&s).await;
    only(&breaches(&s, &acked).await, "deadlines fired twice: 1");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deadline_that_took_no_effect_is_seen(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start(pool).await;
    quick_clock(&s).await;
    let acked = report_some(&s, 1, QUICK).await;
    quiet(&s).await;
    fail::cfg("timer-skip", "1*return").unwrap();
    s.advance(chrono::Duration::minutes(2));
    s.eventually(20, "every due deadline marked", || async {
        s.count("deadlines WHERE fired_at IS NULL").await == 0
    })
    .await;
    fail::remove("timer-skip");
    quiet(&s).await;
    only(
        &breaches(&s, &acked).await,
        "deadlines fired without their event: 1",
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_lost_intake_entry_is_repaired_by_the_reconciler_on_the_servers_clock_and_counted(
    pool: PgPool,
) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = TestServer::start_routing_by_intake(pool).await;
    // every entry is dropped while the reports are filed: a copy the relay sends again after
    // a slow reply from Redis is dropped too, so exactly these cases are stranded
    fail::cfg("router-drop-entry", "return").unwrap();
    let acked = report_some(&s, 3, "0501").await;
    quiet(&s).await;
    fail::remove("router-drop-entry");
    assert_eq!(s.count("cases WHERE status = 'REPORTED'").await, 3);
    // a minute later by the server's clock (not the wall clock), the reconciler sends the
    // stranded case to the router again
    s.advance(chrono::Duration::seconds(61));
    s.eventually(10, "the stranded case routed", || async {
        s.count("cases WHERE status = 'REPORTED'").await == 0
    })
    .await;
    quiet(&s).await;
    let mut f = invariants::check(&s.pool, &redis_url(), s.queue.prefix(), &acked).await;
    assert_eq!(f.resends, 3, "the re-sends are counted");
    // the repair is counted, and the case's minute without a unit breaks the routing bound
    let found = f.breaches();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0], "cases sent to the router again: 3 (allowed 0)");
    assert!(found[1].starts_with("a case waited 6"), "{found:#?}");
    f.resends_allowed = 3;
    only(&f.breaches(), "a case waited 6");
    s.stop().await;
}
