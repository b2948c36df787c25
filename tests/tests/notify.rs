//! The duty notifier (ADR 0043): a case reaching a unit's queue calls whoever is on duty there
//! through a signed webhook. A flaky receiver gets each call until it takes it, always under
//! the same delivery id (kept once); an unanswered call (the unit has not accepted) calls the
//! next person, then the head; a call that never gets through is dead-lettered and the next one
//! made; a unit that accepts stops the calls.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use griddispatch_tests::*;
use proto::v1;
use server::notify::{NotifierOptions, Webhook};
use sqlx::PgPool;

const KEY: &[u8] = b"a-webhook-secret-for-tests-only";

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    requests: usize,
    /// Each delivery it took, once: (delivery id, person id).
    kept: Vec<(String, String)>,
    ids: HashSet<String>,
    bad_signatures: usize,
}

/// A receiver that fails its first two requests, always fails the head's calls, checks every
/// signature and keeps each delivery once.
async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/duty",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = state.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let ts: i64 = h("x-griddispatch-timestamp").parse().unwrap_or(0);
                let call: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let mut s = seen.lock().unwrap();
                s.requests += 1;
                if h("x-griddispatch-signature") != Webhook::signature(KEY, ts, &body)
                    || h("x-griddispatch-delivery") != call["delivery_id"]
                {
                    s.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                if s.requests <= 2 || call["person_id"] == "H01" {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let id = h("x-griddispatch-delivery");
                if s.ids.insert(id.clone()) {
                    s.kept
                        .push((id, call["person_id"].as_str().unwrap().to_owned()));
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/duty", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn calls_go_through_a_flaky_receiver_once_then_to_the_next_person_and_stop_on_accept(
    pool: PgPool,
) {
    let (url, seen) = receiver().await;
    let s = TestServer::start_with_notifier(
        pool,
        NotifierOptions {
            notifier: Arc::new(Webhook::new(&url, KEY).unwrap()),
            // long enough for the accept below to land first on a busy machine
            answer_within: Duration::from_secs(3),
            max_attempts: 4,
            retry_base: Duration::from_millis(100),
            poll: Duration::from_millis(100),
        },
    )
    .await;
    let duty = proto::convert::roster_from_wire(roster(COMMUNITY)).unwrap();
    s.store
        .put_roster(&duty, &store::Actor::system())
        .await
        .unwrap();
    // nobody accepts: each person on duty in turn, each call kept once; the head's calls
    // never get through and are dead-lettered
    let case = s.routed_case(GRID, "0501").await;
    let id: domain::CaseId = case.case_id.parse().unwrap();
    // whom the community's roster calls when the case reached it: those on duty, then the head
    let cal = domain::seed::parse(domain::seed::SAMPLE).unwrap().policies[0]
        .calendar
        .clone();
    let routed = s.get_case(&case.case_id).await.events;
    let routed_at =
        proto::convert::from_timestamp(routed[1].recorded_at.as_ref().unwrap()).unwrap();
    let order: Vec<String> = duty
        .call_order(&cal, routed_at)
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(order.last().unwrap(), "H01");
    let on_duty = &order[..order.len() - 1];
    s.eventually(20, "every call made", || async {
        let n = s.store.notices_of(id).await.unwrap();
        n.len() == order.len() && n.last().unwrap().2 == "dead"
    })
    .await;
    let calls = s.store.notices_of(id).await.unwrap();
    let people: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(people, order);
    // the first call was refused twice, then taken: three deliveries, one kept
    assert_eq!((calls[0].2.as_str(), calls[0].3), ("unanswered", 3));
    assert_eq!(
        (calls.last().unwrap().2.as_str(), calls.last().unwrap().3),
        ("dead", 4)
    );
    {
        let s = seen.lock().unwrap();
        let kept: Vec<&str> = s.kept.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(kept, on_duty, "each person on duty called once, in order");
        assert_eq!(s.bad_signatures, 0);
    }

    // a unit that accepts stops the calls after the first
    let second = s.routed_case(GRID, "0501").await;
    let second_id: domain::CaseId = second.case_id.parse().unwrap();
    s.eventually(10, "the first call delivered", || async {
        s.store
            .notices_of(second_id)
            .await
            .unwrap()
            .first()
            .is_some_and(|c| c.2 == "delivered")
    })
    .await;
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: second.case_id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.eventually(10, "the call answered", || async {
        s.store.notices_of(second_id).await.unwrap()[0].2 == "answered"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = s.store.notices_of(second_id).await.unwrap();
    assert!(calls[1..].iter().all(|c| c.2 == "waiting"), "{calls:?}");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_holder_whose_lease_ran_out_settles_nothing_and_accepted_cases_are_not_called(
    pool: PgPool,
) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let id: domain::CaseId = case.case_id.parse().unwrap();
    let statuses = || async {
        s.store
            .notices_of(id)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.2)
            .collect::<Vec<_>>()
    };
    // two calls about the case reaching the community (its routed event, version 2)
    let from = s.store.notifier_cursor().await.unwrap();
    let calls: Vec<store::NewNotice> = (0..2)
        .map(|step| store::NewNotice {
            case_id: id,
            version: 2,
            unit: COMMUNITY.into(),
            step,
            person_id: format!("S0{step}"),
            person_name: format!("值班员S0{step}"),
        })
        .collect();
    let now = chrono::Utc::now();
    assert!(s.store.add_notices(from, from, &calls, now).await.unwrap());
    assert!(
        !s.store
            .add_notices(from - 1, from, &calls, now)
            .await
            .unwrap(),
        "a window another notifier took is not recorded twice"
    );
    let sec = chrono::Duration::seconds;
    let stale = s.store.claim_notices(now, now + sec(1), 10).await.unwrap();
    assert_eq!(stale.len(), 1);
    // the lease runs out and another holder claims the call
    let fresh = s
        .store
        .claim_notices(now + sec(2), now + sec(60), 10)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    // the stale holder's last failure neither dead-letters it nor calls the next person
    s.store
        .notice_failed(&stale[0], None, "timed out", now)
        .await
        .unwrap();
    assert_eq!(statuses().await, ["pending", "waiting"]);
    s.store
        .notice_delivered(&fresh[0], now + sec(60))
        .await
        .unwrap();
    assert_eq!(statuses().await, ["delivered", "waiting"]);
    // the community accepts: the call is answered when its time comes, and nobody else called
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: case.case_id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    assert!(
        s.store
            .settle_unanswered(now + sec(61), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(statuses().await, ["answered", "waiting"]);
    s.stop().await;
}
