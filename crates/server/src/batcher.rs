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
                        jobs
                    };
                    let items: Vec<BatchItem> = jobs.iter().map(|j| j.item.clone()).collect();
                    let results = store.report_batch(&items, clock.now()).await;
                    debug!(reports = items.len(), "report batch committed");
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
        self.tx
            .send(Job { item, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
