//! Group commit for reports. Concurrent `ReportEvent`s (and `SyncReports` items) queue here;
//! each worker takes everything queued at that moment and writes it in one transaction. Under
//! load a burst costs a few statements and one WAL flush; alone, a report goes straight
//! through as a batch of one, so nothing waits for a timer.

use std::sync::Arc;

use store::{BatchItem, ReportOutcome, Store, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::debug;

use crate::clock::SharedClock;

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

impl Batcher {
    /// Starts `workers` writers: while one batch commits, the next one gathers.
    #[must_use]
    pub fn start(store: &Store, clock: &SharedClock, workers: usize) -> Batcher {
        let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (store, clock, rx) = (store.clone(), clock.clone(), rx.clone());
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
                    let results = store.report_batch(&items, clock.now()).await;
                    debug!(reports = items.len(), "report batch committed");
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
