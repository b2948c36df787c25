//! The event feed across real `gridd` processes, on a PostgreSQL of the test's own so that it
//! can be restarted: a console's watch on one process sees what another process changed and
//! resumes after a reconnect; the platform's export resumes with its last cursor after
//! `kill -9` of the gridd serving it and after a PostgreSQL restart, and in the end holds
//! every event exactly once, each case's versions in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use griddispatch_tests::cluster::{Gridd, GriddSpec, PrivatePg, Scratch};
use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};

const OTHER_TOWNSHIP_GRID: &str = "360102002001001";

async fn channel(g: &Gridd) -> Channel {
    Endpoint::from_shared(g.addr())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn console(ch: &Channel, b: Bearer) -> v1::console_service_client::ConsoleServiceClient<Authed> {
    v1::console_service_client::ConsoleServiceClient::with_interceptor(ch.clone(), b)
}

fn reporting(ch: &Channel) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
    v1::reporting_service_client::ReportingServiceClient::with_interceptor(
        ch.clone(),
        TestServer::bearer(Role::Admin, ""),
    )
}

async fn next<T>(s: &mut tonic::Streaming<T>, secs: u64) -> Option<Result<T, tonic::Status>> {
    tokio::time::timeout(Duration::from_secs(secs), s.next())
        .await
        .ok()
        .flatten()
}

/// Reports `n` cases through `ch`, alternating two townships; answers their ids.
async fn report_some(ch: &Channel, n: usize, tag: &str) -> Vec<String> {
    let mut r = reporting(ch);
    let mut ids = Vec::new();
    for i in 0..n {
        let grid = if i % 2 == 0 {
            GRID
        } else {
            OTHER_TOWNSHIP_GRID
        };
        // a phone retries with the same key until it has an answer (PostgreSQL may be
        // restarting)
        let req = report(grid, "0501", &format!("{tag} {i}"));
        let mut tries = 0;
        let c = loop {
            match r.report_event(req.clone()).await {
                Ok(resp) => break resp.into_inner().case.unwrap(),
                Err(e) => {
                    tries += 1;
                    assert!(tries < 200, "no answer: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        ids.push(c.case_id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_span_processes_and_the_export_survives_kill9_and_a_postgres_restart() {
    let pg = PrivatePg::start().await;
    let url = pg.url("griddispatch");
    store::Store::create_database_if_missing(&url)
        .await
        .unwrap();
    let store = store::Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    seed_sample(&store).await;
    let pool = store.pool().clone();
    let logs = Scratch::new("feed-processes");
    let spec = GriddSpec {
        database_url: url.clone(),
        redis_url: redis_url(),
        prefix: format!("gdtest-{}", uuid::Uuid::now_v7()),
        roles: Vec::new(),
        db_max_connections: 12,
        failpoints: None,
        route_at_report: true,
    };
    let mut p1 = Gridd::start(spec.clone(), &logs.0).await;
    let p2 = Gridd::start(spec.clone(), &logs.0).await;
    let (c1, c2) = (channel(&p1).await, channel(&p2).await);

    // a township console on process 1 sees what process 2 does, and nothing else
    let township = TestServer::staff("360102001");
    let mut watch = console(&c1, township.clone())
        .watch_cases(v1::WatchCasesRequest {
            region_code: "360102001".into(),
            after_cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids = report_some(&c2, 10, "两个进程").await;
    let mine: HashSet<&String> = ids.iter().step_by(2).collect();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let ch = next(&mut watch, 15).await.expect("a change").unwrap();
        seen.push(ch);
    }
    for ch in &seen {
        let e = ch.event.as_ref().unwrap();
        assert!(
            mine.contains(&e.case_id),
            "{} is not the township's",
            e.case_id
        );
        assert_eq!(ch.case.as_ref().unwrap().version, e.version);
    }
    let kinds: HashMap<&str, usize> = seen.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.event.as_ref().unwrap().event_type.as_str())
            .or_default() += 1;
        m
    });
    assert_eq!(kinds, HashMap::from([("reported", 5), ("routed", 5)]));
    let cursor = seen.last().unwrap().cursor.clone();
    drop(watch);

    // while it is away, process 2 reports more; it reconnects to process 2 this time
    let more = report_some(&c2, 6, "离线期间").await;
    let mut again = console(&c2, township)
        .watch_cases(v1::WatchCasesRequest {
            region_code: "360102001".into(),
            after_cursor: cursor,
        })
        .await
        .unwrap()
        .into_inner();
    let mut missed = Vec::new();
    while missed.len() < 6 {
        missed.push(
            next(&mut again, 15)
                .await
                .expect("a missed change")
                .unwrap(),
        );
    }
    let want: HashSet<&String> = more.iter().step_by(2).collect();
    let got: Vec<(String, u64)> = missed
        .iter()
        .map(|c| {
            let e = c.event.as_ref().unwrap();
            (e.case_id.clone(), e.version)
        })
        .collect();
    assert!(got.iter().all(|(id, _)| want.contains(id)), "{got:?}");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 6, "nothing twice");
    assert!(
        next(&mut again, 1).await.is_none(),
        "nothing beyond the missed changes"
    );
    drop(again);

    // the platform's export through process 1, with reports flowing through process 2
    let writer = {
        let c2 = c2.clone();
        tokio::spawn(async move {
            for round in 0..8 {
                report_some(&c2, 10, &format!("批次 {round}")).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let mut received: Vec<v1::ExportRecord> = Vec::new();
    let mut restarts = 0;
    let mut pg_restarted = false;
    let mut cursor = String::new();
    loop {
        let Ok(ch) = Endpoint::from_shared(p1.addr()).unwrap().connect().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut export = v1::export_service_client::ExportServiceClient::with_interceptor(
            ch,
            TestServer::bearer(Role::Platform, ""),
        );
        let Ok(stream) = export
            .stream_events(v1::StreamEventsRequest {
                after_cursor: cursor.clone(),
                region_code: String::new(),
            })
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = stream.into_inner();
        loop {
            match next(&mut stream, 3).await {
                Some(Ok(r)) => {
                    cursor.clone_from(&r.cursor);
                    received.push(r);
                }
                // the server went away or failed: reconnect with the cursor
                Some(Err(_)) | None => break,
            }
            if restarts == 0 && received.len() == 40 {
                p1.kill9().await;
                restarts += 1;
                p1.start_again().await;
            }
            if !pg_restarted && received.len() == 120 {
                pg.stop_immediate().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                pg.start_again().await;
                pg_restarted = true;
            }
        }
        if writer.is_finished() && next_is_done(&pool, received.len()).await {
            break;
        }
    }
    writer.await.unwrap();
    assert!(pg_restarted && restarts == 1);

    // exactly the events on file, once each, each case's versions rising
    let on_file: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT case_id, version FROM case_events")
            .fetch_all(&pool)
            .await
            .unwrap();
    let got: Vec<(uuid::Uuid, i64)> = received
        .iter()
        .map(|r| {
            (
                r.case_id.parse().unwrap(),
                i64::try_from(r.version).unwrap(),
            )
        })
        .collect();
    let unique: HashSet<&(uuid::Uuid, i64)> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "an event came twice");
    assert_eq!(
        unique,
        on_file.iter().collect::<HashSet<_>>(),
        "the export holds exactly the events on file"
    );
    let mut last: HashMap<uuid::Uuid, i64> = HashMap::new();
    for (id, v) in &got {
        assert!(last.insert(*id, *v).unwrap_or(0) < *v, "{id} out of order");
    }
    let cursors: Vec<i64> = received.iter().map(|r| r.cursor.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    let q = queue::Queue::connect(&redis_url(), &spec.prefix)
        .await
        .unwrap();
    delete_prefix(&q).await;
}

/// Whether the export has caught up with every event on file (after the writers stopped
/// and the pipeline drained).
async fn next_is_done(pool: &sqlx::PgPool, received: usize) -> bool {
    let pending: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM cases WHERE status = 'REPORTED')
              + (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(1);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM case_events")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    pending == 0 && usize::try_from(total).unwrap() == received
}
