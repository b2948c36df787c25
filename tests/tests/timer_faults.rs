//! Deadlines under faults of the moment: a transient error while firing delays a deadline,
//! never retires it. In a test binary of its own, because fault points are configured for the
//! whole process.

use griddispatch_tests::*;
use sqlx::PgPool;

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
}

/// The community's deadlines of a case: (warning?, outcome), the warning first.
async fn outcomes(s: &TestServer, id: &str) -> Vec<(bool, Option<String>)> {
    sqlx::query_as(
        "SELECT warn, outcome FROM deadlines WHERE case_id = $1::uuid AND unit_code = $2
          ORDER BY warn DESC, id",
    )
    .bind(id)
    .bind(COMMUNITY)
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deadline_whose_firing_meets_a_transient_fault_fires_on_a_later_round(pool: PgPool) {
    let s = TestServer::start(pool).await;
    quick_clock(&s).await;
    // the policy cache of the server's directory lives 200 ms in tests
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let case = s.routed_case(GRID, QUICK).await;
    assert_eq!(case.holder_unit, COMMUNITY);
    let armed = outcomes(&s, &case.case_id).await;
    assert_eq!(
        armed,
        [(true, None), (false, None)],
        "a warning and the deadline"
    );

    // the directory fails for the next three lookups: the rounds that meet it roll back
    fail::cfg("timer-directory-unavailable", "3*return").unwrap();
    s.advance(chrono::Duration::minutes(2));
    s.eventually(20, "the case escalated to the township", || async {
        s.case_row(&case.case_id).await.1.as_deref() == Some("360102001")
    })
    .await;
    fail::remove("timer-directory-unavailable");
    let fired = outcomes(&s, &case.case_id).await;
    assert_eq!(
        fired,
        [
            (true, Some("warned".to_owned())),
            (false, Some("escalated".to_owned()))
        ],
        "both fired, neither retired: {fired:?}"
    );
    let refused: i64 = s
        .count("deadlines WHERE outcome IN ('refused', 'corrupt')")
        .await;
    assert_eq!(refused, 0);
    let file = s.get_case(&case.case_id).await;
    let kinds: Vec<&str> = file.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["reported", "routed", "warned", "escalated"]);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deadline_with_nothing_to_fire_it_with_is_retired_and_says_so(pool: PgPool) {
    let s = TestServer::start(pool).await;
    quick_clock(&s).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let case = s.routed_case(GRID, QUICK).await;
    // the county's policy goes away: a permanent reason, which no retry changes
    sqlx::query("DELETE FROM policies")
        .execute(&s.pool)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.advance(chrono::Duration::minutes(2));
    s.eventually(20, "both deadlines retired", || async {
        outcomes(&s, &case.case_id)
            .await
            .iter()
            .all(|(_, o)| o.as_deref() == Some("refused"))
    })
    .await;
    assert_eq!(
        s.case_row(&case.case_id).await.1.as_deref(),
        Some(COMMUNITY)
    );
    s.stop().await;
}
