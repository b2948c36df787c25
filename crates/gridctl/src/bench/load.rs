//! The load: grid workers reporting, and community consoles taking every case through
//! accept → result → on-site check → closed. Nothing in a timing path takes a shared lock:
//! each report carries its own send time (microseconds since the bench's epoch, in its title),
//! taken before the call; every task keeps its own samples and hands them back at the end;
//! the only shared state is two atomic counters for the drain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use proto::v1;
use server::auth::Role;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Samples;
use crate::{Conn, demo::report_request};

/// The title every bench report carries: its send time since the epoch.
const TITLE: &str = "压测上报 t=";

/// What every task shares: the bench's epoch and the counts the drain waits on.
pub(super) struct Clock {
    pub epoch: Instant,
    pub acked: AtomicU64,
    pub closed: AtomicU64,
}

impl Clock {
    pub(super) fn new() -> Arc<Clock> {
        Arc::new(Clock {
            epoch: Instant::now(),
            acked: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        })
    }

    /// The send time a case's title carries, if it is a bench report.
    fn sent_at(&self, title: &str) -> Option<Instant> {
        let us: u64 = title.strip_prefix(TITLE)?.parse().ok()?;
        Some(self.epoch + Duration::from_micros(us))
    }
}

/// One task's figures, merged at the end.
#[derive(Default)]
pub(super) struct Figures {
    pub ack: Samples,
    pub in_queue: Samples,
    pub accepted: Samples,
    pub closed: Samples,
    pub errors: BTreeMap<String, u64>,
}

impl Figures {
    pub(super) fn merge(&mut self, o: Figures) {
        self.ack.0.extend(o.ack.0);
        self.in_queue.0.extend(o.in_queue.0);
        self.accepted.0.extend(o.accepted.0);
        self.closed.0.extend(o.closed.0);
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn error(&mut self, call: &str, s: &tonic::Status) {
        *self
            .errors
            .entry(format!("{call} {:?}", s.code()))
            .or_default() += 1;
    }
}

/// Opens `community`'s console: a reader that stamps each new item as it arrives and hands it
/// to one of the console's `handlers_n` handlers in turn.
pub(super) async fn console(
    conn: &Conn,
    community: &str,
    handlers_n: usize,
    clock: &Arc<Clock>,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<Figures>>> {
    let who = |role| conn.auth_as(role, community, &format!("bench-{community}"));
    let mut watch = conn
        .escalation(who(Role::UnitStaff)?)
        .watch_queue(v1::WatchQueueRequest {
            unit_code: community.to_owned(),
        })
        .await
        .context("WatchQueue")?
        .into_inner();
    let mut tasks = Vec::new();
    let mut handlers = Vec::new();
    for _ in 0..handlers_n.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<(String, String, Instant)>();
        handlers.push(tx);
        let mut h = Handler {
            esc: conn.escalation(who(Role::UnitStaff)?),
            handling: conn.handling(who(Role::UnitStaff)?),
            // the community's dispatcher acts for its grids in the on-site check
            checker: conn.reporting(who(Role::Dispatcher)?),
            community: community.to_owned(),
            clock: clock.clone(),
            out: Figures::default(),
        };
        tasks.push(tokio::spawn(async move {
            let mut rx = rx;
            while let Some((id, grid, t0)) = rx.recv().await {
                h.handle(id, grid, t0).await;
            }
            h.out
        }));
    }
    let (clock, stop) = (clock.clone(), stop.clone());
    tasks.push(tokio::spawn(async move {
        let mut out = Figures::default();
        let mut next = 0;
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => break,
                m = watch.message() => match m { Ok(Some(i)) => i, _ => break },
            };
            let arrived = Instant::now();
            if item.kind() != v1::QueueItemKind::ToAccept {
                continue;
            }
            let Some(case) = item.case.as_ref() else {
                continue;
            };
            // the warm-up case and anything else not sent by the load is not timed
            let Some(t0) = clock.sent_at(&case.title) else {
                continue;
            };
            out.in_queue.add(arrived.saturating_duration_since(t0));
            let to = &handlers[next % handlers.len()];
            next += 1;
            if to
                .send((item.case_id.clone(), case.grid_code.clone(), t0))
                .is_err()
            {
                break;
            }
        }
        out
    }));
    Ok(tasks)
}

struct Handler {
    esc: v1::escalation_service_client::EscalationServiceClient<crate::Intercepted>,
    handling: v1::handling_service_client::HandlingServiceClient<crate::Intercepted>,
    checker: v1::reporting_service_client::ReportingServiceClient<crate::Intercepted>,
    community: String,
    clock: Arc<Clock>,
    out: Figures,
}

impl Handler {
    async fn handle(&mut self, id: String, grid: String, t0: Instant) {
        let accepted = self
            .esc
            .accept(v1::AcceptRequest {
                case_id: id.clone(),
                unit_code: self.community.clone(),
                expected_version: 0,
            })
            .await;
        if let Err(e) = accepted {
            return self.out.error("Accept", &e);
        }
        self.out.accepted.add(t0.elapsed());
        let submitted = self
            .handling
            .submit_result(v1::SubmitResultRequest {
                case_id: id.clone(),
                unit_code: self.community.clone(),
                note: "已处置".into(),
                ..Default::default()
            })
            .await;
        if let Err(e) = submitted {
            return self.out.error("SubmitResult", &e);
        }
        let verified = self
            .checker
            .verify_case(v1::VerifyCaseRequest {
                case_id: id,
                passed: true,
                unit_code: grid,
                ..Default::default()
            })
            .await;
        match verified {
            Ok(_) => {
                self.out.closed.add(t0.elapsed());
                self.clock.closed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.out.error("VerifyCase", &e),
        }
    }
}

/// One grid worker's loop until `window` has passed since `started`: open loop at one report
/// per `interval` (starting at `offset`), or closed loop when there is none.
#[allow(clippy::too_many_arguments)]
pub(super) fn reporter(
    conn: &Conn,
    grids: Vec<String>,
    first: usize,
    step: usize,
    started: Instant,
    window: Duration,
    interval: Option<Duration>,
    offset: Duration,
    clock: &Arc<Clock>,
) -> anyhow::Result<tokio::task::JoinHandle<Figures>> {
    let mut client = conn.reporting(conn.auth_as(Role::Admin, "", "bench-worker")?);
    let clock = clock.clone();
    Ok(tokio::spawn(async move {
        let mut out = Figures::default();
        let mut i = first;
        let mut next = started + offset;
        while started.elapsed() < window {
            if let Some(iv) = interval {
                tokio::time::sleep_until(next.into()).await;
                next += iv;
            }
            let grid = &grids[i % grids.len()];
            i += step;
            // the send time, taken before the request is built and sent, travels in the title
            let t0 = Instant::now();
            let us = t0.saturating_duration_since(clock.epoch).as_micros();
            let req = report_request(
                uuid::Uuid::now_v7().to_string(),
                grid,
                "0501",
                &format!("{TITLE}{us}"),
                "bench",
                (28.68, 115.89, v1::Crs::Wgs84),
                false,
            );
            match client.report_event(req).await {
                Ok(_) => {
                    out.ack.add(t0.elapsed());
                    clock.acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => out.error("ReportEvent", &e),
            }
        }
        out
    }))
}
