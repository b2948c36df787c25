//! Load for the fault suite: grid workers' phones reporting at a fixed rate and retrying with
//! the same idempotency key until they get a reply, and unit consoles watching their queue and
//! accepting what arrives. Everything they see is counted for the invariant checker.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::v1;
use server::auth::Role;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

use crate::{TestServer, report};

/// A lazily connected channel to one gridd address.
fn dial(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(addr.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy()
}

/// Channels to every gridd address, shared by all clients and dialled again after a failure,
/// as a phone app does when the network lets it down: a call to a dead process fails fast,
/// the next attempt goes to the next address, and a channel whose call failed for lack of
/// service is replaced, so one wedged connection cannot hold every later call.
#[derive(Clone)]
pub struct Dialer {
    addrs: Arc<Vec<String>>,
    /// Each address's current channel and how many times it was replaced.
    slots: Arc<Vec<Mutex<(u64, Channel)>>>,
    pub redials: Arc<AtomicU64>,
}

impl Dialer {
    pub fn new(addrs: &[String]) -> Dialer {
        Dialer {
            addrs: Arc::new(addrs.to_vec()),
            slots: Arc::new(addrs.iter().map(|a| Mutex::new((0, dial(a)))).collect()),
            redials: Arc::default(),
        }
    }

    /// The channel to address `i` (modulo their number) and its generation.
    pub fn get(&self, i: usize) -> (usize, u64, Channel) {
        let i = i % self.addrs.len();
        let slot = self.slots[i].lock().unwrap();
        (i, slot.0, slot.1.clone())
    }

    /// A call on generation `generation` of address `i`'s channel failed: replace it, unless
    /// another caller already did.
    pub fn failed(&self, i: usize, generation: u64) {
        let mut slot = self.slots[i].lock().unwrap();
        if slot.0 == generation {
            *slot = (generation + 1, dial(&self.addrs[i]));
            self.redials.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What the phones saw.
#[derive(Default)]
pub struct ReportStats {
    /// Reports begun (each with its own key).
    pub sent: AtomicU64,
    /// Calls made, retries included.
    pub attempts: AtomicU64,
    /// Replies that said "replayed": a retry whose first attempt had committed.
    pub replayed: AtomicU64,
    /// Reports that never got a reply before the phones gave up.
    pub gave_up: AtomicU64,
    /// Acknowledged reports: key → case id.
    pub acked: Mutex<HashMap<String, String>>,
    /// Failed calls by gRPC code.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// A few messages of each error code, for the record.
    pub samples: Mutex<BTreeMap<String, Vec<String>>>,
    /// Errors a retry must never see (the same request cannot become invalid).
    pub wrong: Mutex<Vec<String>>,
    /// When each acknowledgement arrived, in milliseconds from `start`.
    ack_at: Mutex<Vec<u64>>,
    /// Longest single call.
    pub longest_call: Mutex<Duration>,
    start: Mutex<Option<Instant>>,
}

impl ReportStats {
    pub fn acked(&self) -> HashMap<String, String> {
        self.acked.lock().unwrap().clone()
    }

    /// The longest stretch without any acknowledgement between the first and the last.
    pub fn longest_ack_gap(&self) -> Duration {
        self.longest_ack_gap_from()
            .map_or(Duration::ZERO, |(_, gap)| gap)
    }

    /// [`ReportStats::longest_ack_gap`] with the moment it began (the acknowledgement before it).
    pub fn longest_ack_gap_from(&self) -> Option<(Instant, Duration)> {
        let start = (*self.start.lock().unwrap())?;
        let mut at = self.ack_at.lock().unwrap().clone();
        at.sort_unstable();
        at.windows(2).max_by_key(|w| w[1] - w[0]).map(|w| {
            (
                start + Duration::from_millis(w[0]),
                Duration::from_millis(w[1] - w[0]),
            )
        })
    }

    /// Acknowledgements received at or after `t`.
    pub fn acked_since(&self, t: Instant) -> usize {
        let Some(start) = *self.start.lock().unwrap() else {
            return 0;
        };
        let from = u64::try_from(t.saturating_duration_since(start).as_millis()).unwrap_or(0);
        self.ack_at
            .lock()
            .unwrap()
            .iter()
            .filter(|&&a| a >= from)
            .count()
    }

    /// The first acknowledgement at or after `t`, as a delay from `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<Duration> {
        let start = (*self.start.lock().unwrap())?;
        let from = u64::try_from(t.saturating_duration_since(start).as_millis()).unwrap_or(0);
        let first = self
            .ack_at
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|&a| a >= from)
            .min()?;
        Some(Duration::from_millis(first - from))
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    fn error(&self, s: &tonic::Status) {
        let code = format!("{:?}", s.code());
        let mut samples = self.samples.lock().unwrap();
        let kept = samples.entry(code.clone()).or_default();
        if kept.len() < 3 && !kept.iter().any(|m| m == s.message()) {
            kept.push(s.message().to_owned());
        }
        *self.errors.lock().unwrap().entry(code).or_default() += 1;
    }

    pub fn summary(&self) -> String {
        format!(
            "reports sent {}, acknowledged {}, replayed on retry {}, gave up {}, calls {}, errors {:?}\n  error samples {:?}",
            self.sent.load(Ordering::Relaxed),
            self.acked.lock().unwrap().len(),
            self.replayed.load(Ordering::Relaxed),
            self.gave_up.load(Ordering::Relaxed),
            self.attempts.load(Ordering::Relaxed),
            self.errors(),
            self.samples.lock().unwrap(),
        )
    }

    /// One line for a long run's progress: reports begun, answered, still being tried.
    pub fn progress(&self) -> String {
        let sent = self.sent.load(Ordering::Relaxed);
        let acked = self.acked.lock().unwrap().len() as u64;
        let gave_up = self.gave_up.load(Ordering::Relaxed);
        let wrong = self.wrong.lock().unwrap().len() as u64;
        format!(
            "sent {sent}, acknowledged {acked}, in flight {}, calls {}, errors {:?}",
            sent.saturating_sub(acked + gave_up + wrong),
            self.attempts.load(Ordering::Relaxed),
            self.errors(),
        )
    }
}

/// How the phones report.
#[derive(Clone)]
pub struct ReportPlan {
    pub rate: u32,
    pub duration: Duration,
    pub grids: Vec<String>,
    pub category: String,
    /// Deadline of each call (sent as `grpc-timeout`).
    pub call_timeout: Duration,
    /// How long after the load ends a phone keeps retrying an unanswered report.
    pub retry_for: Duration,
    /// Title prefix; each report's title is unique, so duplicates show in the database.
    pub label: String,
}

/// A random fraction in [0, 1).
fn jitter_fraction() -> f64 {
    let r = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    r as f64 / 1_000_000.0
}

/// Whether a failed call may be retried with the same key: the outcome is unknown or the
/// service is briefly unable to answer.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::{
        Aborted, Cancelled, DeadlineExceeded, Internal, ResourceExhausted, Unavailable, Unknown,
    };
    matches!(
        code,
        Unavailable
            | DeadlineExceeded
            | Cancelled
            | Unknown
            | Internal
            | Aborted
            | ResourceExhausted
    )
}

/// Whether gridd itself answered INTERNAL or UNKNOWN. A status the server sent comes with the
/// response's headers (`content-type: application/grpc`) and has no source; one the client
/// made up for a broken connection (a killed process, a reset) has no headers, or, when the
/// process died after sending them, carries the transport error as its source.
fn server_failed(s: &tonic::Status) -> bool {
    use std::error::Error as _;
    matches!(s.code(), tonic::Code::Internal | tonic::Code::Unknown)
        && s.metadata().get("content-type").is_some()
        && s.source().is_none()
}

/// Reports at `plan.rate` per second for `plan.duration`, then waits for every report to be
/// answered or given up.
pub async fn report_load(dialer: Dialer, plan: ReportPlan, stats: Arc<ReportStats>) {
    let start = Instant::now();
    *stats.start.lock().unwrap() = Some(start);
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let give_up_at = start + plan.duration + plan.retry_for;
    let mut tasks = tokio::task::JoinSet::new();
    let mut n: usize = 0;
    while start.elapsed() < plan.duration {
        ticker.tick().await;
        let grid = plan.grids[n % plan.grids.len()].clone();
        let body = report(&grid, &plan.category, &format!("{} {n}", plan.label));
        let (dialer, stats) = (dialer.clone(), stats.clone());
        let timeout = plan.call_timeout;
        stats.sent.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let mut backoff = Duration::from_millis(200);
            for attempt in 0usize.. {
                let (slot, generation, ch) = dialer.get(n + attempt);
                // a fresh token for each try, as an app renews its session: tokens live ten
                // minutes and a soak runs for thirty
                let mut client =
                    v1::reporting_service_client::ReportingServiceClient::with_interceptor(
                        ch,
                        TestServer::bearer(Role::GridWorker, &grid),
                    );
                let mut req = tonic::Request::new(body.clone());
                req.set_timeout(timeout);
                stats.attempts.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                // the client keeps its own deadline too: a call the server never answers
                // (a stalled connection) ends here instead of holding the phone for ever
                let res = tokio::time::timeout(
                    timeout + Duration::from_secs(2),
                    client.report_event(req),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(
                        "no answer from the server in time",
                    ))
                });
                let took = t0.elapsed();
                {
                    let mut l = stats.longest_call.lock().unwrap();
                    *l = (*l).max(took);
                }
                match res {
                    Ok(r) => {
                        let r = r.into_inner();
                        if r.replayed {
                            stats.replayed.fetch_add(1, Ordering::Relaxed);
                        }
                        let case = r.case.map(|c| c.case_id).unwrap_or_default();
                        stats
                            .acked
                            .lock()
                            .unwrap()
                            .insert(body.idempotency_key.clone(), case);
                        let at = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
                        stats.ack_at.lock().unwrap().push(at);
                        return;
                    }
                    Err(s) => {
                        stats.error(&s);
                        if server_failed(&s) {
                            // gridd itself answered that it failed: a retry may succeed, but
                            // the answer is a defect the scenario must not pass over
                            stats.wrong.lock().unwrap().push(format!(
                                "server-made {:?}: {}",
                                s.code(),
                                s.message()
                            ));
                        }
                        if retryable(s.code()) {
                            dialer.failed(slot, generation);
                        } else {
                            stats.wrong.lock().unwrap().push(format!(
                                "{:?}: {}",
                                s.code(),
                                s.message()
                            ));
                            return;
                        }
                    }
                }
                if Instant::now() > give_up_at {
                    stats.gave_up.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // exponential backoff with full jitter, as a phone app retries: a crowd of
                // phones retrying in step would keep a recovering server down
                tokio::time::sleep(backoff.mul_f64(jitter_fraction())).await;
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        });
        n += 1;
        // reap finished calls so the set does not grow with the run
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// What the consoles saw.
#[derive(Default)]
pub struct ConsoleStats {
    pub items: AtomicU64,
    pub accepted: AtomicU64,
    /// Accepts refused because the case had moved on (accepted already, escalated): expected
    /// after a redelivery or a snapshot repeat, and harmless.
    pub refused: AtomicU64,
    /// Accepts that failed for lack of service (retried through the next snapshot).
    pub failed: AtomicU64,
    pub reconnects: AtomicU64,
    /// Accepts that failed any other way, by code: none are expected.
    pub other: Mutex<BTreeMap<String, u64>>,
    /// Late accepts (see [`LateAccepts`]) that beat the accept clock, and those the clock beat.
    pub late_accepted: AtomicU64,
    pub late_refused: AtomicU64,
}

/// Cases of one category that the consoles accept late: a few seconds either side of their
/// accept deadline, so that the accept and the deadline race, whatever fault is under way.
#[derive(Clone)]
pub struct LateAccepts {
    pub category: String,
    /// Each accept comes at the deadline plus a random offset within ± `spread`.
    pub spread: Duration,
}

impl ConsoleStats {
    /// An error no fault explains: counted by code, and every scenario asserts there are none.
    fn unexpected(&self, s: &tonic::Status) {
        let what = if server_failed(s) {
            format!("{:?} from gridd", s.code())
        } else {
            format!("{:?}", s.code())
        };
        *self.other.lock().unwrap().entry(what).or_default() += 1;
    }

    pub fn summary(&self) -> String {
        format!(
            "console items {}, accepted {}, refused as stale {}, failed {}, reconnects {}, other errors {:?}, late accepts {} in time and {} too late",
            self.items.load(Ordering::Relaxed),
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed),
            self.other.lock().unwrap(),
            self.late_accepted.load(Ordering::Relaxed),
            self.late_refused.load(Ordering::Relaxed),
        )
    }
}

/// One console per unit: watch the queue, accept every case offered; reconnect on any break.
/// Cases of `late`'s category are accepted at their deadline, give or take its spread.
pub fn consoles(
    dialer: &Dialer,
    units: &[String],
    stop: &CancellationToken,
    stats: &Arc<ConsoleStats>,
    late: Option<&LateAccepts>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for (i, unit) in units.iter().enumerate() {
        let (dialer, unit, stop, stats) =
            (dialer.clone(), unit.clone(), stop.clone(), stats.clone());
        let late = late.map(|l| Late {
            rule: l.clone(),
            scheduled: Arc::default(),
            dialer: dialer.clone(),
            stop: stop.clone(),
        });
        set.spawn(async move {
            let mut round = i;
            while !stop.is_cancelled() {
                let (slot, generation, ch) = dialer.get(round);
                round += 1;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = watch_once(ch, &unit, &stats, late.as_ref()) => {}
                }
                // the watch broke: the next one starts on a fresh connection
                dialer.failed(slot, generation);
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
    }
    set
}

/// A console's late accepts: scheduled once per case, outliving the watch that offered them.
struct Late {
    rule: LateAccepts,
    scheduled: Arc<Mutex<std::collections::HashSet<String>>>,
    dialer: Dialer,
    stop: CancellationToken,
}

impl Late {
    /// Accepts the case at its deadline plus a random offset, through whichever replica is up
    /// then, clicking again while the service is unavailable.
    fn schedule(&self, item: &v1::QueueItem, unit: &str, stats: &Arc<ConsoleStats>) {
        if !self.scheduled.lock().unwrap().insert(item.case_id.clone()) {
            return;
        }
        let due = item
            .due_at
            .as_ref()
            .map_or_else(std::time::SystemTime::now, |t| {
                std::time::UNIX_EPOCH
                    + Duration::new(
                        u64::try_from(t.seconds).unwrap_or(0),
                        u32::try_from(t.nanos).unwrap_or(0),
                    )
            });
        let r = uuid::Uuid::new_v4().as_u128() % 1_000_000;
        let offset = (self.rule.spread * 2).mul_f64(r as f64 / 1_000_000.0);
        let at = (due + offset).checked_sub(self.rule.spread).unwrap_or(due);
        let wait = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let (dialer, stop, stats, unit, case_id) = (
            self.dialer.clone(),
            self.stop.clone(),
            stats.clone(),
            unit.to_owned(),
            item.case_id.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            for round in 0usize.. {
                if stop.is_cancelled() {
                    return;
                }
                let (slot, generation, ch) = dialer.get(round);
                let res = accept(ch, &unit, &case_id).await;
                match res {
                    Ok(_) => {
                        stats.late_accepted.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(s) if s.code() == Code::FailedPrecondition => {
                        stats.late_refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(s) if retryable(s.code()) && !server_failed(&s) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        dialer.failed(slot, generation);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    Err(s) => {
                        stats.unexpected(&s);
                        return;
                    }
                }
            }
        });
    }
}

/// One console's `Accept` of a case, bounded on both sides like a console's click.
async fn accept(ch: Channel, unit: &str, case_id: &str) -> Result<(), tonic::Status> {
    let mut esc = v1::escalation_service_client::EscalationServiceClient::with_interceptor(
        ch,
        TestServer::staff(unit),
    );
    let mut req = tonic::Request::new(v1::AcceptRequest {
        case_id: case_id.to_owned(),
        unit_code: unit.to_owned(),
        expected_version: 0,
    });
    req.set_timeout(Duration::from_secs(3));
    tokio::time::timeout(Duration::from_secs(5), esc.accept(req))
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")))
        .map(drop)
}

async fn watch_once(ch: Channel, unit: &str, stats: &Arc<ConsoleStats>, late: Option<&Late>) {
    // each call carries a token minted for it, as a console renews its session
    let mut esc = v1::escalation_service_client::EscalationServiceClient::with_interceptor(
        ch.clone(),
        TestServer::staff(unit),
    );
    let Ok(stream) = esc
        .watch_queue(v1::WatchQueueRequest {
            unit_code: unit.to_owned(),
        })
        .await
    else {
        return;
    };
    let mut stream = stream.into_inner();
    // a few accepts in flight at once, as a unit's staff work through their queue together
    let mut accepts = tokio::task::JoinSet::new();
    while let Ok(Some(item)) = stream.message().await {
        if item.kind() != v1::QueueItemKind::ToAccept {
            continue;
        }
        stats.items.fetch_add(1, Ordering::Relaxed);
        if let Some(late) = late.filter(|l| {
            item.case
                .as_ref()
                .is_some_and(|c| c.category == l.rule.category)
        }) {
            late.schedule(&item, unit, stats);
            continue;
        }
        while accepts.len() >= 8 {
            accepts.join_next().await;
        }
        let (ch, stats, unit) = (ch.clone(), stats.clone(), unit.to_owned());
        accepts.spawn(async move {
            let res = accept(ch, &unit, &item.case_id).await;
            match res {
                Ok(_) => stats.accepted.fetch_add(1, Ordering::Relaxed),
                // gridd itself failing is never expected, whatever the fault
                Err(s) if server_failed(&s) => {
                    stats.unexpected(&s);
                    0
                }
                Err(s) if retryable(s.code()) => stats.failed.fetch_add(1, Ordering::Relaxed),
                Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::Aborted) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed)
                }
                Err(s) => {
                    stats.unexpected(&s);
                    0
                }
            };
        });
    }
    while accepts.join_next().await.is_some() {}
}
