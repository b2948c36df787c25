//! The event feed's two workers (ADR 0018).
//!
//! The sequencer numbers committed events in visibility order (one at a time across
//! replicas: it holds the feed state's row lock). The tail, one per api process, follows the
//! numbered feed and hands each new batch, with the cases as they were after each event, to
//! every open console watch of the process at once: a hundred watches cost one reader.

use std::sync::Arc;
use std::time::Duration;

use domain::record::{CaseRecord, EventRecord};
use store::{FeedEvent, FeedRegion, Store};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::WorkerResult;

/// How many feed events one read takes.
pub const FEED_PAGE: u32 = 1000;

/// How many events one sequencer step numbers at most.
pub const SEQUENCER_CHUNK: u32 = 20_000;

/// Numbers committed events; runs with the relay role.
pub struct Sequencer {
    pub store: Store,
    /// How often it looks for new commits when nothing woke it.
    pub poll: Duration,
    /// Woken after each step that numbered something.
    pub numbered: Arc<Notify>,
}

impl Sequencer {
    pub async fn run(self, shutdown: CancellationToken) {
        info!("feed sequencer started");
        let mut backoff = Duration::from_millis(50);
        loop {
            let pause = match super::bounded("feed sequencer", async {
                Ok(self.store.sequence_feed(SEQUENCER_CHUNK).await?)
            })
            .await
            {
                Ok(0) => {
                    backoff = Duration::from_millis(50);
                    self.poll
                }
                Ok(n) => {
                    backoff = Duration::from_millis(50);
                    self.numbered.notify_waiters();
                    if n >= u64::from(SEQUENCER_CHUNK) {
                        // a large window: its next chunk at once
                        Duration::ZERO
                    } else {
                        // more may be committing right behind: look again soon, but let a
                        // few commits gather so each step numbers a batch
                        Duration::from_millis(5)
                    }
                }
                Err(e) => {
                    warn!(error = %e, "feed sequencer step failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    backoff
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        info!("feed sequencer stopped");
    }
}

/// One numbered event with the case as it was right after it.
#[derive(Debug, Clone)]
pub struct Change {
    pub pos: i64,
    pub event: EventRecord,
    pub case: CaseRecord,
}

impl Change {
    /// Whether the case lies in the region whose code is `prefix` (grid codes begin with
    /// every code above them).
    #[must_use]
    pub fn within(&self, prefix: &str) -> bool {
        self.case.grid.as_str().starts_with(prefix)
    }
}

/// Pairs feed events with their cases as of each event's version.
pub async fn changes(
    store: &Store,
    events: Vec<FeedEvent>,
) -> Result<Vec<Change>, store::StoreError> {
    let wanted: Vec<(domain::CaseId, u64)> = events
        .iter()
        .map(|e| (e.event.case_id, e.event.version))
        .collect();
    let cases = store.cases_at(&wanted).await?;
    let mut by_key: std::collections::HashMap<(domain::CaseId, u64), CaseRecord> = cases
        .into_iter()
        .map(|c| ((c.case_id, c.state.version), c))
        .collect();
    Ok(events
        .into_iter()
        .filter_map(|e| {
            let case = by_key.remove(&(e.event.case_id, e.event.version))?;
            Some(Change {
                pos: e.pos,
                event: e.event,
                case,
            })
        })
        .collect())
}

/// The process's follower of the feed.
pub struct FeedTail {
    /// The last position this process has read.
    head: watch::Sender<i64>,
    batches: broadcast::Sender<Arc<Vec<Change>>>,
}

/// Batches a slow watch may fall behind by before it reads the feed from Postgres instead.
const BACKLOG_BATCHES: usize = 256;

impl FeedTail {
    #[must_use]
    pub fn new() -> Arc<FeedTail> {
        let (head, _) = watch::channel(0);
        let (batches, _) = broadcast::channel(BACKLOG_BATCHES);
        Arc::new(FeedTail { head, batches })
    }

    /// The last position read, to wait for more with [`watch::Receiver::changed`].
    #[must_use]
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }

    /// Live batches from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Change>>> {
        self.batches.subscribe()
    }

    /// Follows the feed until shutdown: reads after the last position whenever the local
    /// sequencer numbered something, and every `poll` for what other replicas numbered.
    pub async fn run(
        self: Arc<Self>,
        store: Store,
        poll: Duration,
        numbered: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let mut last = loop {
            match store.feed_head().await {
                Ok(h) => break h,
                Err(e) => {
                    warn!(error = %e, "feed tail cannot read the feed head; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        };
        self.head.send_replace(last);
        info!(head = last, "feed tail started");
        loop {
            let woken = numbered.notified();
            match super::bounded("feed tail", self.step(&store, last)).await {
                Ok(Some(pos)) => {
                    last = pos;
                    continue;
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "feed tail read failed; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = woken => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Reads one page after `last`; answers the new last position, if there was anything.
    async fn step(&self, store: &Store, last: i64) -> WorkerResult<Option<i64>> {
        let events = store.feed_after(last, FeedRegion::All, FEED_PAGE).await?;
        let Some(newest) = events.last().map(|e| e.pos) else {
            return Ok(None);
        };
        // the cases are read only when some watch will look at them
        if self.batches.receiver_count() > 0 {
            let batch = changes(store, events).await?;
            let _ = self.batches.send(Arc::new(batch));
        }
        self.head.send_replace(newest);
        Ok(Some(newest))
    }
}
