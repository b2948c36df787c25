//! The event feed: the provincial platform's export (StreamEvents) and the command centre's
//! live watch (WatchCases) against real PostgreSQL and Redis — commit order, gaps, resume,
//! masking and scope.

use std::collections::HashMap;
use std::time::Duration;

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tokio_stream::StreamExt as _;
use tonic::Code;

const TOWNSHIP: &str = "360102001";
const OTHER_TOWNSHIP_GRID: &str = "360102002001001";

type ExportClient = v1::export_service_client::ExportServiceClient<Authed>;

fn export(s: &TestServer, b: Bearer) -> ExportClient {
    v1::export_service_client::ExportServiceClient::with_interceptor(s.channel.clone(), b)
}

fn platform(s: &TestServer) -> ExportClient {
    export(s, TestServer::bearer(Role::Platform, ""))
}

/// Takes records from `stream` until `done` says enough, failing after `secs`.
async fn take_until<T>(
    stream: &mut tonic::Streaming<T>,
    secs: u64,
    mut done: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done(&got) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(r))) => got.push(r),
            Ok(Some(Err(e))) => panic!("stream failed: {e}"),
            Ok(None) => panic!("stream ended after {} items", got.len()),
            Err(_) => panic!("timed out after {} items", got.len()),
        }
    }
    got
}

/// Whether anything more arrives within `ms`.
async fn quiet<T>(stream: &mut tonic::Streaming<T>, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), stream.next())
        .await
        .is_err()
}

async fn event_count(s: &TestServer) -> usize {
    usize::try_from(s.count("case_events").await).unwrap()
}

/// Every (case, version) at most once, and each case's versions rising.
fn assert_once_in_order(recs: &[(String, u64)]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (case, v) in recs {
        let prev = last.insert(case, *v).unwrap_or(0);
        assert!(
            *v > prev,
            "case {case}: version {v} after {prev} (repeated or out of order)"
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_delivers_an_event_whose_transaction_commits_after_later_ones(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let held_case = s.routed_case(GRID, "0501").await;
    let mut stream = platform(&s)
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let before = take_until(&mut stream, 10, |r| r.len() == 2).await;
    assert_eq!(
        before
            .iter()
            .map(|r| r.event_type.as_str())
            .collect::<Vec<_>>(),
        ["reported", "routed"]
    );

    // a command's transaction writes its event and stays open: it has the lower sequence
    // number and the lower transaction id of everything that follows
    let rec = s
        .store
        .get_case(held_case.case_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut tx = s.store.begin().await.unwrap();
    let locked = tx.lock_cases(&[rec.case_id]).await.unwrap().remove(0);
    let now = chrono::Utc::now();
    let accepted = domain::case::Event::Accepted {
        unit: locked.state.holder.clone().unwrap(),
        handle_due_at: now + chrono::Duration::hours(4),
    };
    let after = locked.state.apply(&accepted, now).unwrap();
    tx.append(
        store::Append {
            before: &locked,
            after,
            events: std::slice::from_ref(&accepted),
            arms: &[],
            outbox: &[],
            actor: &store::Actor::system(),
            action: "test-held",
        },
        now,
    )
    .await
    .unwrap();

    // later transactions commit first
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(
            s.routed_case(GRID, &format!("050{}", 1 + i % 3))
                .await
                .case_id,
        );
    }
    let during = take_until(&mut stream, 10, |r| r.len() == 10).await;
    assert!(
        during.iter().all(|r| r.case_id != held_case.case_id),
        "nothing of the open transaction is visible yet"
    );
    assert!(quiet(&mut stream, 300).await, "only the ten later events");

    tx.commit().await.unwrap();
    let last = take_until(&mut stream, 10, |r| !r.is_empty()).await;
    assert_eq!(last.len(), 1);
    assert_eq!(
        (
            last[0].case_id.as_str(),
            last[0].version,
            last[0].event_type.as_str()
        ),
        (held_case.case_id.as_str(), 3, "accepted")
    );
    assert!(quiet(&mut stream, 300).await);

    // the whole stream: every event on file exactly once, cursors rising
    let all: Vec<v1::ExportRecord> = before.into_iter().chain(during).chain(last).collect();
    assert_eq!(all.len(), event_count(&s).await);
    let cursors: Vec<i64> = all.iter().map(|r| r.cursor.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_once_in_order(
        &all.iter()
            .map(|r| (r.case_id.clone(), r.version))
            .collect::<Vec<_>>(),
    );
    // a plain `seq > cursor` reader would have skipped it: its sequence number is lower than
    // those of events delivered before it
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT e.seq FROM event_feed f JOIN case_events e ON e.seq = f.event_seq ORDER BY f.pos",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert!(
        seqs.windows(2).any(|w| w[0] > w[1]),
        "the held event was numbered after events with higher sequence numbers: {seqs:?}"
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_resumes_from_a_cursor_filters_by_region_and_labels_records(pool: PgPool) {
    let s = TestServer::start(pool).await;
    for i in 0..6 {
        let grid = if i % 2 == 0 {
            GRID
        } else {
            OTHER_TOWNSHIP_GRID
        };
        s.routed_case(grid, "0501").await;
    }
    let total = event_count(&s).await;
    assert_eq!(total, 12);
    let mut first = platform(&s)
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let head = take_until(&mut first, 10, |r| r.len() == 5).await;
    drop(first);
    let mut rest = platform(&s)
        .stream_events(v1::StreamEventsRequest {
            after_cursor: head.last().unwrap().cursor.clone(),
            region_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let tail = take_until(&mut rest, 10, |r| r.len() == total - 5).await;
    assert!(quiet(&mut rest, 300).await);
    let all: Vec<_> = head.iter().chain(&tail).collect();
    assert_once_in_order(
        &all.iter()
            .map(|r| (r.case_id.clone(), r.version))
            .collect::<Vec<_>>(),
    );
    for r in &all {
        assert_eq!(r.category, "0501");
        assert!(r.region_code.starts_with("360102"), "{}", r.region_code);
        assert!(r.recorded_at.is_some());
        serde_json::from_str::<serde_json::Value>(&r.data_json).unwrap();
    }

    let mut township = platform(&s)
        .stream_events(v1::StreamEventsRequest {
            after_cursor: String::new(),
            region_code: TOWNSHIP.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mine = take_until(&mut township, 10, |r| r.len() == 6).await;
    assert!(mine.iter().all(|r| r.region_code.starts_with(TOWNSHIP)));
    assert!(quiet(&mut township, 300).await);
    // live: a new case in the township arrives, one in the other township does not
    s.routed_case(OTHER_TOWNSHIP_GRID, "0501").await;
    let c = s.routed_case(GRID, "0501").await;
    let live = take_until(&mut township, 10, |r| r.len() == 2).await;
    assert!(live.iter().all(|r| r.case_id == c.case_id));

    for (cursor, region) in [("abc", ""), ("-4", ""), ("", "36x")] {
        let err = platform(&s)
            .stream_events(v1::StreamEventsRequest {
                after_cursor: cursor.into(),
                region_code: region.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{cursor} {region}");
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_masks_personal_numbers_and_serves_the_platform_only(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let c = s.routed_case(GRID, "0501").await;
    let phone = "13912345678";
    let id_number = "36010219800101123X";
    s.escalation(TestServer::staff(COMMUNITY))
        .call_up(v1::CallUpRequest {
            case_id: c.case_id.clone(),
            unit_code: COMMUNITY.into(),
            reason: format!("居民电话{phone}，身份证{id_number}，需街道协调"),
            expected_version: 0,
        })
        .await
        .unwrap();
    let mut stream = platform(&s)
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let all = take_until(&mut stream, 10, |r| r.len() == 3).await;
    let called = &all[2];
    assert_eq!(called.event_type, "called_up");
    assert!(
        called.data_json.contains("139******78"),
        "{}",
        called.data_json
    );
    assert!(
        called.data_json.contains("360*************3X"),
        "{}",
        called.data_json
    );
    for r in &all {
        let text = format!("{r:?}");
        assert!(!text.contains(phone) && !text.contains(id_number), "{text}");
        assert!(
            !domain::pii::mask(&r.data_json).ne(&r.data_json),
            "nothing left to mask: {}",
            r.data_json
        );
    }
    // the case file still has it for those who handle the case
    let file = s.get_case(&c.case_id).await;
    assert!(file.events[2].data_json.contains(phone));

    for b in [
        TestServer::bearer(Role::Admin, ""),
        TestServer::bearer(Role::Dispatcher, COUNTY),
        TestServer::bearer(Role::UnitStaff, COMMUNITY),
        TestServer::bearer(Role::GridWorker, GRID),
    ] {
        let err = export(&s, b)
            .stream_events(v1::StreamEventsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let err = export(&s, TestServer::anonymous())
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    s.stop().await;
}

type ConsoleClient = v1::console_service_client::ConsoleServiceClient<Authed>;

async fn watch(
    c: &mut ConsoleClient,
    region: &str,
    after: &str,
) -> tonic::Streaming<v1::CaseChange> {
    c.watch_cases(v1::WatchCasesRequest {
        region_code: region.into(),
        after_cursor: after.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn watch_cases_is_live_scoped_and_resumes_without_repeats(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut township = s.console(TestServer::staff(TOWNSHIP));
    let mut live = watch(&mut township, TOWNSHIP, "").await;
    assert!(quiet(&mut live, 200).await, "from now: nothing old");

    let a = s.routed_case(GRID, "0501").await;
    s.routed_case(OTHER_TOWNSHIP_GRID, "0501").await;
    let first = take_until(&mut live, 10, |r| r.len() == 2).await;
    for ch in &first {
        let (e, c) = (ch.event.as_ref().unwrap(), ch.case.as_ref().unwrap());
        assert_eq!(e.case_id, a.case_id);
        assert_eq!(c.version, e.version, "the case as it was after the event");
    }
    assert_eq!(
        first[0].case.as_ref().unwrap().status(),
        v1::CaseStatus::Reported
    );
    assert_eq!(
        first[1].case.as_ref().unwrap().status(),
        v1::CaseStatus::PendingAccept
    );
    let cursor = first[1].cursor.clone();
    drop(live);

    // while the console is away: an accept and a call-up in its township, a case elsewhere
    let mut community = s.escalation(TestServer::staff(COMMUNITY));
    community
        .accept(v1::AcceptRequest {
            case_id: a.case_id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    community
        .call_up(v1::CallUpRequest {
            case_id: a.case_id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "需街道协调".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.routed_case(OTHER_TOWNSHIP_GRID, "0501").await;

    let mut again = watch(&mut township, TOWNSHIP, &cursor).await;
    let missed = take_until(&mut again, 10, |r| r.len() == 2).await;
    let kinds: Vec<(&str, u64, v1::CaseStatus)> = missed
        .iter()
        .map(|c| {
            let e = c.event.as_ref().unwrap();
            (
                e.event_type.as_str(),
                e.version,
                c.case.as_ref().unwrap().status(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("accepted", 3, v1::CaseStatus::InProgress),
            ("called_up", 4, v1::CaseStatus::PendingAccept)
        ],
        "missed changes, each with the case as it was then"
    );
    // then live, nothing twice
    s.escalation(TestServer::staff(TOWNSHIP))
        .accept(v1::AcceptRequest {
            case_id: a.case_id.clone(),
            unit_code: TOWNSHIP.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let next = take_until(&mut again, 10, |r| !r.is_empty()).await;
    assert_eq!(next[0].event.as_ref().unwrap().version, 5);
    assert!(quiet(&mut again, 300).await);

    // scope: another community's staff, a department, and a bad cursor
    let mut other = s.console(TestServer::staff("360102002001"));
    let err = other
        .watch_cases(v1::WatchCasesRequest {
            region_code: COMMUNITY.into(),
            after_cursor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = township
        .watch_cases(v1::WatchCasesRequest {
            region_code: "360102".into(),
            after_cursor: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "the county is above it");
    let err = township
        .watch_cases(v1::WatchCasesRequest {
            region_code: TOWNSHIP.into(),
            after_cursor: "x1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // a community's watch of its own area from the beginning sees only its own cases
    let mut mine = watch(&mut s.console(TestServer::staff(COMMUNITY)), "", "0").await;
    let own = take_until(&mut mine, 10, |r| r.len() == 5).await;
    assert!(
        own.iter()
            .all(|c| c.event.as_ref().unwrap().case_id == a.case_id)
    );
    assert!(quiet(&mut mine, 300).await);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_hundred_and_fifty_watches_each_see_every_change_once(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut streams = Vec::new();
    // one HTTP/2 connection carries them all, as a wall of consoles behind one proxy would
    for _ in 0..150 {
        let mut c = s.console(TestServer::staff(TOWNSHIP));
        streams.push(watch(&mut c, TOWNSHIP, "").await);
    }
    let c = s.routed_case(GRID, "0501").await;
    for st in &mut streams {
        let got = take_until(st, 10, |r| r.len() == 2).await;
        assert!(
            got.iter()
                .all(|g| g.event.as_ref().unwrap().case_id == c.case_id)
        );
        assert!(quiet(st, 1).await);
    }
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_stalled_export_holds_no_transaction_or_lock(pool: PgPool) {
    let s = TestServer::start(pool).await;
    for i in 0..30 {
        s.routed_case(GRID, &format!("050{}", 1 + i % 3)).await;
    }
    let mut stream = platform(&s)
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // the platform reads one record and stops reading
    take_until(&mut stream, 10, |r| r.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // a worker's transaction may be caught between two of its statements; a stalled
    // stream's would stay open: no session may hold a transaction or a lock, while not
    // running a statement, in every one of ten looks 50 ms apart
    let mut held: Option<std::collections::HashSet<i32>> = None;
    for _ in 0..10 {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT a.pid FROM pg_stat_activity a
              WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                AND (a.state LIKE 'idle in transaction%'
                     OR (a.state <> 'active'
                         AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted)))",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        let now: std::collections::HashSet<i32> = pids.into_iter().collect();
        held = Some(match held {
            None => now,
            Some(h) => h.intersection(&now).copied().collect(),
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        held.unwrap_or_default(),
        std::collections::HashSet::new(),
        "nothing held for a stalled reader"
    );
    // and it carries on where it stopped
    let rest = take_until(&mut stream, 10, |r| r.len() == 59).await;
    assert_eq!(rest.last().unwrap().cursor, "60");
    s.stop().await;
}
