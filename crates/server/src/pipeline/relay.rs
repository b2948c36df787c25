//! The outbox relay: publishes committed outbox rows to Redis streams, then marks them
//! published. A crash between the two publishes them again; every consumer is idempotent.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use queue::Queue;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Wake;
use super::WorkerResult;

const BATCH: i64 = 500;

/// How long the relay gathers commits after a wake-up before publishing.
const COALESCE: Duration = Duration::from_millis(3);

#[derive(Clone)]
pub struct Relay {
    pub store: store::Store,
    pub queue: Queue,
    pub wake: Arc<Wake>,
    /// Poll interval for rows other replicas wrote.
    pub poll: Duration,
}

impl Relay {
    /// Publishes one batch; answers how many rows it published.
    pub async fn publish_batch(&self) -> WorkerResult<usize> {
        let mut tx = self.store.begin().await?;
        let rows = tx.claim_outbox(BATCH).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(rows.len());
        for r in &rows {
            match &r.message {
                // a defect the fault checker must see (test builds only): a unit's new work
                // lost on its way to the inbox
                Ok(queue::Message::Inbox(m))
                    if m.kind == domain::effects::ItemKind::ToAccept
                        && crate::failpoint::fault_point("relay-lose-inbox-entry") => {}
                Ok(m) => messages.push(m.clone()),
                Err(e) => warn!(id = r.id, error = %e, "outbox row is no message; dropped"),
            }
        }
        crate::failpoint::crash_point("relay-before-publish");
        self.queue.publish(&messages).await?;
        crate::failpoint::crash_point("relay-after-publish");
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        tx.mark_published(&ids, Utc::now()).await?;
        tx.commit().await?;
        crate::metrics::global().batch("outbox", rows.len());
        Ok(rows.len())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        info!("outbox relay started");
        let mut last_prune = std::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let published = match super::bounded("relay batch", self.publish_batch()).await {
                Ok(n) => {
                    backoff = Duration::from_millis(50);
                    n
                }
                Err(e) => {
                    warn!(error = %e, "relay batch failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                if let Err(e) = self
                    .store
                    .prune_outbox(Utc::now() - chrono::Duration::hours(1))
                    .await
                {
                    warn!(error = %e, "pruning the outbox failed");
                }
            }
            if usize::try_from(BATCH).is_ok_and(|b| published >= b) {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.relay.notified() => {
                    // a wake-up comes with every commit: a moment's wait lets one batch carry
                    // the rows of many commits instead of one commit per row
                    tokio::time::sleep(COALESCE).await;
                }
                () = tokio::time::sleep(self.poll) => {}
            }
        }
        info!("outbox relay stopped");
    }
}
