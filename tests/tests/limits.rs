//! Per-principal limits: a noisy caller is slowed down alone; streams, messages and headers
//! are bounded.

use std::time::{Duration, Instant};

use griddispatch_tests::*;
use proto::v1;
use server::CallLimits;
use sqlx::PgPool;
use tonic::Code;

const QUIET_GRIDS: [&str; 4] = [
    "360102001001002",
    "360102001002001",
    "360102002001001",
    "360102002001002",
];

/// `calls` ListCategories calls as a grid worker of `grid`, `every` apart: latencies of the
/// answered ones and the codes of the refused ones.
async fn calls(
    s: &TestServer,
    grid: &str,
    calls: usize,
    every: Duration,
) -> (Vec<Duration>, Vec<Code>) {
    let mut c = s.worker(grid);
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(every);
    for _ in 0..calls {
        tick.tick().await;
        let t = Instant::now();
        match c
            .list_categories(v1::ListCategoriesRequest::default())
            .await
        {
            Ok(_) => ok.push(t.elapsed()),
            Err(e) => refused.push(e.code()),
        }
    }
    (ok, refused)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

async fn quiet_callers(s: &TestServer) -> (Duration, usize) {
    let runs = futures::future::join_all(
        QUIET_GRIDS
            .iter()
            .map(|g| calls(s, g, 40, Duration::from_millis(50))),
    )
    .await;
    let refused = runs.iter().map(|r| r.1.len()).sum();
    (p99(runs.into_iter().flat_map(|r| r.0).collect()), refused)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_noisy_caller_is_refused_alone(pool: PgPool) {
    let s = TestServer::start_with_call_limits(
        pool,
        CallLimits {
            per_sec: 20.0,
            burst: 20.0,
            max_streams: 0,
        },
    )
    .await;
    // four quiet grid workers at 20 calls/s each, the quota: before, then beside a noisy one
    let (quiet_before, refused_before) = quiet_callers(&s).await;
    let noisy = calls(&s, GRID, 400, Duration::from_millis(5));
    let ((noisy_ok, noisy_refused), (quiet_during, refused_during)) =
        tokio::join!(noisy, quiet_callers(&s));
    println!(
        "noisy caller at 10x its quota: {} answered, {} refused; quiet callers' p99 {:?} alone, {:?} beside it",
        noisy_ok.len(),
        noisy_refused.len(),
        quiet_before,
        quiet_during
    );
    assert!(
        noisy_refused.iter().all(|c| *c == Code::ResourceExhausted),
        "{noisy_refused:?}"
    );
    // 2 s at 200 calls/s against 20/s with a burst of 20: about 60 answered
    assert!(
        noisy_refused.len() > 250 && noisy_ok.len() < 120,
        "{} answered, {} refused",
        noisy_ok.len(),
        noisy_refused.len()
    );
    assert_eq!(
        (refused_before, refused_during),
        (0, 0),
        "quiet callers refused"
    );
    // within noise: refusals cost the server next to nothing
    assert!(
        quiet_during <= quiet_before * 4 + Duration::from_millis(50),
        "quiet p99 {quiet_before:?} -> {quiet_during:?}"
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn streams_messages_and_headers_are_bounded(pool: PgPool) {
    let s = TestServer::start_with_call_limits(
        pool,
        CallLimits {
            per_sec: 0.0,
            burst: 0.0,
            max_streams: 2,
        },
    )
    .await;
    let watch = || {
        let mut c = s.escalation(TestServer::staff(COMMUNITY));
        async move {
            c.watch_queue(v1::WatchQueueRequest {
                unit_code: COMMUNITY.into(),
            })
            .await
        }
    };
    let first = watch().await.unwrap();
    let _second = watch().await.unwrap();
    assert_eq!(watch().await.unwrap_err().code(), Code::ResourceExhausted);
    // another principal has its own streams
    s.escalation(TestServer::staff("360102001"))
        .watch_queue(v1::WatchQueueRequest {
            unit_code: COMMUNITY.into(),
        })
        .await
        .unwrap();
    // closing one frees its place
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match watch().await {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }

    // a message over the limit (1 MiB) is refused whole, and nothing is written
    let mut big = report(GRID, "0501", "超大");
    big.description = "长".repeat(400_000);
    let err = s.worker(GRID).report_event(big).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{err}"
    );
    // headers over 16 KiB are refused by the transport
    let mut req = tonic::Request::new(v1::ListCategoriesRequest::default());
    req.metadata_mut()
        .insert("x-padding", "x".repeat(20_000).parse().unwrap());
    assert!(s.worker(GRID).list_categories(req).await.is_err());
    // and the server is none the worse
    s.worker(GRID)
        .report_event(report(GRID, "0501", "正常"))
        .await
        .unwrap();
    assert_eq!(s.count("cases").await, 1);
    s.stop().await;
}
