//! The reconciler: Redis keeps nothing on disk, so when it comes back empty every queue is
//! rebuilt from Postgres — each pending-accept assignment into its unit's inbox, each case
//! still waiting for the router into its county's intake. A marker key tells "rebuilt" from
//! "lost".

use std::time::Duration;

use std::collections::HashMap;

use domain::region::RegionCode;
use queue::{Message, Queue, Stream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::WorkerResult;

const PAGE: i64 = 1000;

/// Intake entries waiting (unrouted or unacknowledged) from which a county's router counts as
/// behind rather than as having lost entries.
const BACKLOG: u64 = 1000;

/// The audit action of a case sent to the router again.
pub const RESEND_ACTION: &str = "reconcile:resend";

/// A case still REPORTED this long after it was filed has lost its intake entry.
const STALE: chrono::Duration = chrono::Duration::seconds(60);

#[derive(Clone)]
pub struct Reconciler {
    pub store: store::Store,
    pub queue: Queue,
    /// The server's time, which reports are filed by (tests move it).
    pub clock: crate::clock::SharedClock,
    pub interval: Duration,
    /// Cases this reconciler sent to the router again, and when: each is sent again at most
    /// once per [`STALE`]. Without this, a backlog older than a minute would be re-sent every
    /// interval, and the duplicates would slow the router until the backlog never cleared.
    pub resent: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<domain::CaseId, chrono::DateTime<chrono::Utc>>>,
    >,
}

impl Reconciler {
    /// Rebuilds the queues if Redis lost them; answers whether it did. Also hands cases that
    /// have waited for the router too long (their intake entry lost or dead-lettered, e.g.
    /// during a Postgres outage) to the router again; routing is idempotent.
    pub async fn check(&self) -> WorkerResult<bool> {
        if self.queue.marker_present().await? {
            self.resend_stale().await?;
            return Ok(false);
        }
        let (inbox, intake) = self.rebuild().await?;
        self.queue.set_marker().await?;
        info!(inbox, intake, "queues rebuilt from postgres");
        let m = crate::metrics::global();
        m.repaired("inbox_rebuilt", inbox);
        m.repaired("intake_rebuilt", intake);
        Ok(true)
    }

    async fn rebuild(&self) -> WorkerResult<(usize, usize)> {
        let mut inbox = 0;
        let mut after = None;
        loop {
            let page = self.store.pending_everywhere(after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            let messages: Vec<Message> = page.iter().map(|(_, p)| p.message()).collect();
            inbox += messages.len();
            self.queue.publish(&messages).await?;
        }
        let mut intake = 0;
        let mut after = None;
        loop {
            let page = self.store.reported_cases(after, PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.case_id);
            let messages: Vec<Message> = page.iter().map(store::Unrouted::message).collect();
            intake += messages.len();
            self.queue.publish(&messages).await?;
        }
        Ok((inbox, intake))
    }

    async fn resend_stale(&self) -> WorkerResult<()> {
        let now = self.clock.now();
        let before = now - STALE;
        let stale = self.store.reported_before(before, PAGE).await?;
        // a county whose intake still holds a backlog is being routed, only slowly: its stale
        // cases are most likely waiting there, and sending them again would add duplicates
        // that slow the router further. The safety net is for entries that were lost.
        let mut backlog: HashMap<RegionCode, bool> = HashMap::new();
        for u in &stale {
            if !backlog.contains_key(&u.county) {
                let len = self
                    .queue
                    .len(&self.queue.key(&Stream::Intake(u.county.clone())))
                    .await?;
                backlog.insert(u.county.clone(), len >= BACKLOG);
            }
        }
        let stale: Vec<_> = stale.into_iter().filter(|u| !backlog[&u.county]).collect();
        let stale: Vec<_> = {
            let mut resent = self
                .resent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            resent.retain(|_, at| now - *at < STALE);
            stale
                .into_iter()
                .filter(|u| match resent.entry(u.case_id) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(now);
                        true
                    }
                    std::collections::hash_map::Entry::Occupied(_) => false,
                })
                .collect()
        };
        if stale.is_empty() {
            return Ok(());
        }
        let messages: Vec<Message> = stale.iter().map(store::Unrouted::message).collect();
        self.queue.publish(&messages).await?;
        crate::metrics::global().repaired("resent", messages.len());
        warn!(
            cases = messages.len(),
            "cases waiting for the router too long were sent again"
        );
        // each re-send is on record: the fault suite counts them, an operator can see them
        let ids: Vec<String> = stale.iter().map(|u| u.case_id.to_string()).collect();
        self.store
            .audit_many(&store::Actor::system(), RESEND_ACTION, &ids)
            .await?;
        Ok(())
    }

    pub async fn run(self, shutdown: CancellationToken) {
        info!("reconciler started");
        loop {
            if let Err(e) = self.check().await {
                warn!(error = %e, "queue check failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        info!("reconciler stopped");
    }
}
