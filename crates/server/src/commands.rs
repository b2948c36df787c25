//! Group commit for commands. Concurrent commands (`Accept`, `SubmitResult`, `VerifyCase`, …)
//! queue here; a writer takes everything queued at that moment, locks those cases in one
//! statement (in id order, so writers never wait on each other in a cycle), lets each command
//! decide on its own case, writes every decision through the case writer's multi-row
//! statements and commits once. Alone, a command goes straight through as a batch of one.
//!
//! Each command still gets its own answer: refused (not found, out of area, stale version, the
//! state machine says no) it writes nothing and the rest of the batch goes on; the reply comes
//! after the commit. A second command on a case already in the batch waits for the next one,
//! so that it decides on the case as the first left it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use domain::CaseId;
use domain::record::CaseRecord;
use store::{Actor, Append, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::Instrument as _;

use crate::auth::Principal;
use crate::clock::SharedClock;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::{Directory, Env, Plan, Wake};

/// Commands written by one transaction at most.
const MAX_BATCH: usize = 128;

/// What a command decides once its case is loaded and locked.
pub type Decide = Box<dyn FnOnce(&Env, &CaseRecord, &mut Plan) -> ApiResult<()> + Send>;

/// One command on one case.
pub struct Command {
    pub who: Principal,
    pub case_id: CaseId,
    /// The version the caller saw; 0 takes the case as it is.
    pub expected_version: u64,
    /// The audit trail's name for the command.
    pub action: &'static str,
    pub decide: Decide,
}

struct Job {
    cmd: Command,
    reply: oneshot::Sender<ApiResult<CaseRecord>>,
}

/// A command that decided, waiting for the batch's write.
struct Decided {
    reply: oneshot::Sender<ApiResult<CaseRecord>>,
    action: &'static str,
    actor: Actor,
    before: CaseRecord,
    plan: Plan,
    span: tracing::Span,
}

/// Handle to the command writers; cheap to clone. The writers stop when every handle is gone.
#[derive(Clone)]
pub struct Commands {
    tx: mpsc::Sender<Job>,
}

struct Writer {
    store: Store,
    clock: SharedClock,
    directory: Arc<Directory>,
    wake: Arc<Wake>,
}

impl Commands {
    /// Starts `workers` writers: while one batch commits, the next one gathers.
    #[must_use]
    pub fn start(
        store: &Store,
        clock: &SharedClock,
        directory: &Arc<Directory>,
        wake: &Arc<Wake>,
        workers: usize,
    ) -> Commands {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let w = Writer {
                store: store.clone(),
                clock: clock.clone(),
                directory: directory.clone(),
                wake: wake.clone(),
            };
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut later = VecDeque::new();
                while let Some(jobs) = gather(&rx, &mut later).await {
                    w.run(jobs).await;
                }
            });
        }
        Commands { tx }
    }

    /// Queues one command and waits for its commit (or its refusal).
    pub async fn submit(&self, cmd: Command) -> ApiResult<CaseRecord> {
        let (reply, answer) = oneshot::channel();
        let closed = || ApiError::from(StoreError::Corrupt("command writer stopped".into()));
        // a full queue sheds the command at once: the writers are behind, and the caller's
        // retry with backoff does better than waiting here past its deadline
        self.tx.try_send(Job { cmd, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::from(StoreError::Busy),
            mpsc::error::TrySendError::Closed(_) => closed(),
        })?;
        answer.await.map_err(|_| closed())?
    }
}

/// The next batch: what waited from the last one, then everything queued now, one command per
/// case (a case's second command waits in `later`). `None` once every handle is gone.
async fn gather(rx: &Mutex<mpsc::Receiver<Job>>, later: &mut VecDeque<Job>) -> Option<Vec<Job>> {
    let mut taken: Vec<Job> = Vec::new();
    let mut cases = std::collections::HashSet::new();
    let mut carry = VecDeque::new();
    let mut offer = |j: Job, taken: &mut Vec<Job>, carry: &mut VecDeque<Job>| {
        // a caller that went away (deadline passed, connection dropped) is not written for
        if j.reply.is_closed() {
            return;
        }
        if taken.len() < MAX_BATCH && cases.insert(j.cmd.case_id) {
            taken.push(j);
        } else {
            carry.push_back(j);
        }
    };
    while let Some(j) = later.pop_front() {
        offer(j, &mut taken, &mut carry);
    }
    // with work in hand, the queue is only looked at if no other writer is waiting on it:
    // that writer holds it until the next command arrives
    let rx = if taken.is_empty() && carry.is_empty() {
        let mut rx = rx.lock().await;
        let first = rx.recv().await?;
        offer(first, &mut taken, &mut carry);
        Some(rx)
    } else {
        rx.try_lock().ok()
    };
    if let Some(mut rx) = rx {
        while taken.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => offer(j, &mut taken, &mut carry),
                Err(_) => break,
            }
        }
    }
    *later = carry;
    Some(taken)
}

impl Writer {
    async fn run(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let now = self.clock.now();
        let ids: Vec<CaseId> = jobs.iter().map(|j| j.cmd.case_id).collect();
        let mut tx = match self.store.begin().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(jobs.into_iter().map(|j| j.reply), e),
        };
        let locked = match tx.lock_cases(&ids).await {
            Ok(recs) => recs,
            Err(e) => return fail_all(jobs.into_iter().map(|j| j.reply), e),
        };
        let mut recs: HashMap<CaseId, CaseRecord> =
            locked.into_iter().map(|r| (r.case_id, r)).collect();
        let mut decided = Vec::with_capacity(jobs.len());
        for Job { cmd, reply } in jobs {
            let rec = recs.remove(&cmd.case_id);
            let (action, actor) = (cmd.action, cmd.who.actor());
            match self.decide(cmd, rec, now).await {
                Ok((before, plan, span)) => decided.push(Decided {
                    reply,
                    action,
                    actor,
                    before,
                    plan,
                    span,
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        if decided.is_empty() {
            // nothing to write; the locks end with the transaction
            return;
        }
        let items: Vec<Append<'_>> = decided
            .iter()
            .map(|d| Append {
                before: &d.before,
                after: d.plan.state.clone(),
                events: &d.plan.events,
                arms: &d.plan.arms,
                outbox: &d.plan.outbox,
                actor: &d.actor,
                action: d.action,
            })
            .collect();
        let written = match tx.append_many(&items, now).await {
            Ok(out) => tx.commit().await.map(|()| out),
            Err(e) => Err(e),
        };
        let n = items.len();
        drop(items);
        let out = match written {
            Ok(out) => {
                crate::metrics::global().batch("commands", n);
                out
            }
            Err(e) => return fail_all(decided.into_iter().map(|d| d.reply), e),
        };
        self.wake.armed(
            decided
                .iter()
                .flat_map(|d| d.plan.arms.iter().map(|a| a.fire_at))
                .min(),
        );
        self.wake.relay.notify_one();
        for (d, rec) in decided.into_iter().zip(out) {
            d.span.in_scope(|| {
                tracing::info!(
                    action = d.action,
                    version = rec.state.version,
                    "case changed"
                );
            });
            let _ = d.reply.send(Ok(rec));
        }
    }

    /// Checks one command against its locked case and lets it decide.
    async fn decide(
        &self,
        cmd: Command,
        rec: Option<CaseRecord>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<(CaseRecord, Plan, tracing::Span)> {
        let case_id = cmd.case_id;
        // a case outside the caller's scope is answered as one that does not exist (the
        // access table's NOT_FOUND): probing ids tells nothing
        let rec = rec
            .filter(|r| cmd.who.can_see(r))
            .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
        if cmd.expected_version != 0 && cmd.expected_version != rec.state.version {
            return Err(ApiError::Aborted(format!(
                "the case is at version {}, not {}: reload and retry",
                rec.state.version, cmd.expected_version
            )));
        }
        let span = crate::trace::case_span("command", case_id, &rec.trace);
        span.record("case_id", tracing::field::display(case_id));
        let env = self
            .directory
            .env(&rec, now)
            .instrument(span.clone())
            .await?;
        let mut plan = Plan::new(&rec, now);
        span.in_scope(|| (cmd.decide)(&env, &rec, &mut plan))?;
        Ok((rec, plan, span))
    }
}

/// Fails every command of a batch whose write failed: nothing of it was written.
fn fail_all(
    replies: impl IntoIterator<Item = oneshot::Sender<ApiResult<CaseRecord>>>,
    e: StoreError,
) {
    let shared = Arc::new(e);
    for reply in replies {
        let _ = reply.send(Err(ApiError::from(StoreError::Batch(shared.clone()))));
    }
}
