//! Group commit for reports. Concurrent `ReportEvent`s (and `SyncReports` items) queue here;
//! each worker takes everything queued at that moment and writes it in one transaction. Under
//! load a burst costs a few statements and one WAL flush; alone, a report goes straight
//! through as a batch of one, so nothing waits for a timer.

use std::sync::Arc;

use std::collections::HashMap;

use domain::policy::CategoryCode;
use domain::record::CaseRecord;
use domain::region::RegionCode;
use store::{BatchItem, ReportOutcome, Routed, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::debug;

use crate::clock::SharedClock;
use crate::pipeline::router::route_plan;
use crate::pipeline::{Directory, Env, Wake};

/// Reports written by one transaction at most.
const MAX_BATCH: usize = 256;

struct Job {
    item: BatchItem,
    reply: oneshot::Sender<Result<ReportOutcome, StoreError>>,
}

/// Handle to the batch writers; cheap to clone. The writers stop when every handle is gone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// Routing new cases in the report's own transaction (a process that runs the router role):
/// the case is in its first unit's inbox one commit after it was reported, instead of going
/// through the intake stream and a second transaction. A case that cannot be planned here
/// (no policy, no unit, the directory unavailable) goes to the router as before.
#[derive(Clone)]
pub struct Inline {
    pub directory: Arc<Directory>,
    pub wake: Arc<Wake>,
}

/// Each report's county and category facts, looked up once per pair in the batch: for every
/// report when new cases are routed here, else for those at a spot that keeps being reported
/// (the county's recurrence rule acts in the report's transaction whatever the roles).
async fn envs(
    directory: &Directory,
    items: &[BatchItem],
    routing: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> HashMap<(RegionCode, CategoryCode), Env> {
    let mut envs = HashMap::new();
    {
        for it in items
            .iter()
            .filter(|it| !it.report.self_handled && (routing || it.spot_reports > 1))
        {
            let Some(county) = it.report.grid.county() else {
                continue;
            };
            let key = (county, it.report.category.clone());
            if envs.contains_key(&key) {
                continue;
            }
            match directory.env_for(&key.0, &key.1, now).await {
                Ok(env) => {
                    envs.insert(key, env);
                }
                Err(e) => debug!(error = %e, "no inline route; the router takes these cases"),
            }
        }
    }
    envs
}

/// What the county's recurrence rule does to `rec`, whose spot has been reported
/// `spot_reports` times (ADR 0044): once per case, raise its severity one level, or call it up
/// to the tier above its holder as the holder's own call-up would. A case not yet held (a new
/// one, before its route) only has its severity raised; its route follows from it.
fn recurrence_plan(
    env: &Env,
    rec: &CaseRecord,
    spot_reports: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<crate::pipeline::Plan> {
    use domain::case::Event;
    use domain::repeat::{RecurrenceAction, raised, recurrence_due};
    let rule = env.policy.repeats.as_ref()?;
    let action = recurrence_due(rule, spot_reports, rec.state.recurred)?;
    let days = rule.recurrence.as_ref().map_or(0, |r| r.days);
    let mut plan = crate::pipeline::Plan::new(rec, now);
    let severity = (action == RecurrenceAction::RaiseSeverity)
        .then(|| raised(rec.severity))
        .filter(|s| *s != rec.severity);
    plan.push(Event::Recurred {
        reports: spot_reports,
        days,
        severity,
    })
    .ok()?;
    if action == RecurrenceAction::CallUp
        && let Some(holder) = &rec.state.holder
    {
        // a holder at the top, or a case the state machine will not move, keeps the event alone
        let _ = plan.call_up(
            env,
            rec,
            holder,
            format!(
                "復發: the spot was reported {spot_reports} times in {days} days (the county's \
                 recurrence rule)"
            ),
        );
    }
    Some(plan)
}

/// The plans of one batch: routes when new cases are routed here, recurrence always.
struct Plans<'a> {
    envs: &'a HashMap<(RegionCode, CategoryCode), Env>,
    routing: bool,
    now: chrono::DateTime<chrono::Utc>,
    /// The earliest timer the plans arm, for the timer worker's wake-up.
    earliest: Option<chrono::DateTime<chrono::Utc>>,
}

impl Plans<'_> {
    fn routed(&mut self, plan: crate::pipeline::Plan) -> Routed {
        self.earliest = plan
            .arms
            .iter()
            .map(|a| a.fire_at)
            .chain(self.earliest)
            .min();
        Routed {
            state: plan.state,
            events: plan.events,
            arms: plan.arms,
            outbox: plan.outbox,
        }
    }
}

impl store::Planner for Plans<'_> {
    fn route(&mut self, rec: &CaseRecord) -> Option<Routed> {
        if !self.routing {
            return None;
        }
        let env = self.envs.get(&(rec.county.clone(), rec.category.clone()))?;
        let plan = route_plan(env, rec, self.now).ok()?;
        Some(self.routed(plan))
    }

    fn recur(&mut self, rec: &CaseRecord, spot_reports: u32) -> Option<Routed> {
        let env = self.envs.get(&(rec.county.clone(), rec.category.clone()))?;
        let plan = recurrence_plan(env, rec, spot_reports, self.now)?;
        Some(self.routed(plan))
    }
}

impl Batcher {
    /// Starts `workers` writers: while one batch commits, the next one gathers.
    #[must_use]
    pub fn start(
        store: &Store,
        clock: &SharedClock,
        workers: usize,
        directory: &Arc<Directory>,
        inline: Option<&Inline>,
    ) -> Batcher {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (store, clock, rx) = (store.clone(), clock.clone(), rx.clone());
            let inline = inline.cloned();
            let directory = directory.clone();
            tokio::spawn(async move {
                loop {
                    let jobs = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { break };
                        let mut jobs = vec![first];
                        while jobs.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(j) => jobs.push(j),
                                Err(_) => break,
                            }
                        }
                        // a caller that went away (its deadline passed, its connection
                        // dropped) is not written for: after an outage the queue holds many
                        // abandoned attempts, and writing them first would make the retries
                        // that replace them miss their deadlines too. The retry writes the
                        // report; its key makes it one case whichever attempt lands.
                        jobs.retain(|j| !j.reply.is_closed());
                        jobs
                    };
                    if jobs.is_empty() {
                        continue;
                    }
                    let items: Vec<BatchItem> = jobs.iter().map(|j| j.item.clone()).collect();
                    let now = clock.now();
                    let routing = inline.is_some();
                    let envs = envs(&directory, &items, routing, now).await;
                    let mut plans = Plans {
                        envs: &envs,
                        routing,
                        now,
                        earliest: None,
                    };
                    let results = store.report_batch(&items, now, &mut plans).await;
                    let earliest = plans.earliest;
                    debug!(reports = items.len(), "report batch committed");
                    crate::metrics::global().batch("reports", items.len());
                    if let Some(i) = &inline
                        && results.iter().any(Result::is_ok)
                    {
                        // a failed batch armed nothing; a replayed report's timers were armed
                        // when it was first written, and waking for them is harmless
                        i.wake.armed(earliest);
                    }
                    // (without the router role here, a recurrence's call-up clock is found by
                    // the timer worker's next poll)
                    crate::failpoint::crash_point("report-after-commit");
                    for (job, result) in jobs.into_iter().zip(results) {
                        // a caller that went away no longer needs its answer
                        let _ = job.reply.send(result);
                    }
                }
            });
        }
        Batcher { tx }
    }

    /// Queues one report and waits for its commit.
    pub async fn submit(&self, item: BatchItem) -> Result<ReportOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Corrupt("report writer stopped".into());
        // a full queue sheds the report at once: the writers are behind (the database is slow
        // or gone), and a caller retrying later with backoff does better than one waiting here
        // past its deadline while holding its place
        self.tx.try_send(Job { item, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => closed(),
        })?;
        answer.await.map_err(|_| closed())?
    }
}
