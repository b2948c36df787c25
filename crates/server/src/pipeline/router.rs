//! The router: reads each county's intake stream with a consumer group, gives every REPORTED
//! case its first tier and unit, and acknowledges only after that commit. Stuck entries are
//! claimed after `min_idle`; an entry delivered more than `max_deliveries` times is moved to
//! the county's dead-letter stream, where operators can see and re-drive it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::CaseStatus;
use domain::case::{Clock, Event};
use domain::region::{Level, UnitCode};
use queue::{Entry, Queue};
use store::Actor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};
use uuid::Uuid;

use super::{Directory, Plan, Wake};
use crate::clock::SharedClock;
use crate::error::{ApiError, ApiResult};

pub const GROUP: &str = "router";

/// Cases routed at once by one router.
const CONCURRENCY: usize = 16;

#[derive(Clone)]
pub struct Router {
    pub store: store::Store,
    pub queue: Queue,
    pub directory: Arc<Directory>,
    pub clock: SharedClock,
    pub wake: Arc<Wake>,
    pub consumer: String,
    pub min_idle: Duration,
    pub max_deliveries: u64,
}

#[derive(serde::Deserialize)]
struct IntakeMsg {
    case_id: Uuid,
}

/// The county code inside a key's `{…}` hash tag.
fn county_of(key: &str) -> Option<&str> {
    let start = key.find('{')? + 1;
    let end = key[start..].find('}')? + start;
    Some(&key[start..end])
}

impl Router {
    /// Routes one REPORTED case; a case that is no longer REPORTED was routed before (a
    /// repeated or stale message) and is left alone.
    pub async fn route(&self, case_id: Uuid) -> ApiResult<bool> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(rec) = tx.lock_case(case_id).await? else {
            return Ok(false);
        };
        if rec.state.status != CaseStatus::Reported {
            return Ok(false);
        }
        let span = crate::trace::case_span("route", case_id, &rec.trace);
        self.route_locked(tx, rec, now).instrument(span).await
    }

    async fn route_locked(
        &self,
        mut tx: store::CaseTx,
        rec: domain::record::CaseRecord,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<bool> {
        let case_id = rec.case_id;
        let env = self.directory.env(&rec, now).await?;
        let decision = env.policy.route(&env.category, Some(rec.severity));
        // The grid's own unit at that tier, or the nearest one above it that exists.
        let mut region = rec.grid.ancestor_at(Level::of_tier(decision.tier));
        let (unit, tier) = loop {
            let Some(r) = region else {
                return Err(ApiError::FailedPrecondition(format!(
                    "no unit above grid {} in the registry",
                    rec.grid
                )));
            };
            if let Some(t) = r.level().tier()
                && env.units.contains(r.as_str())
            {
                break (UnitCode::from(r), t);
            }
            region = r.parent();
        };
        let (due, warn) = env.start(env.limits(&rec, tier).accept);
        let mut plan = Plan::new(&rec, now);
        plan.push(Event::Routed {
            unit: unit.clone(),
            tier,
            accept_due_at: due,
            reason: decision.reasons.join("; "),
        })?;
        plan.arm(&unit, Clock::Accept, due, warn);
        tx.append(
            &rec,
            plan.state,
            &plan.events,
            &plan.arms,
            &plan.outbox,
            &Actor::system(),
            "route",
            now,
        )
        .await?;
        tx.commit().await?;
        self.wake.timers.notify_one();
        self.wake.relay.notify_one();
        debug!(%case_id, %unit, %tier, "case routed");
        Ok(true)
    }

    async fn handle(&self, e: &Entry) {
        let county = county_of(&e.key).unwrap_or_default().to_owned();
        if e.deliveries > self.max_deliveries {
            let reason = format!("not routed after {} deliveries", e.deliveries);
            match self
                .queue
                .dead_letter(e, &self.queue.dead_key(&county), GROUP, &reason)
                .await
            {
                Ok(()) => {
                    warn!(key = %e.key, id = %e.id, deliveries = e.deliveries, "intake entry dead-lettered")
                }
                Err(err) => warn!(error = %err, "dead-lettering failed"),
            }
            return;
        }
        let result = match serde_json::from_str::<IntakeMsg>(&e.payload) {
            Ok(m) => super::bounded("routing", self.route(m.case_id))
                .await
                .map(|_| {
                    crate::failpoint::crash_point("router-after-commit");
                }),
            Err(err) => Err(ApiError::Internal(format!("malformed intake entry: {err}"))),
        };
        match result {
            Ok(()) => {
                if let Err(err) = self
                    .queue
                    .ack(&e.key, GROUP, std::slice::from_ref(&e.id))
                    .await
                {
                    warn!(error = %err, "ack failed; the entry will be delivered again");
                }
            }
            // Left pending: it is claimed again after `min_idle`, and dead-lettered after too
            // many deliveries.
            Err(err) => {
                warn!(key = %e.key, id = %e.id, deliveries = e.deliveries, error = %err, "routing failed")
            }
        }
    }

    /// Routes a batch with several cases in flight at once: each case is its own transaction
    /// on its own row, so they do not wait on each other, and one slow case does not hold up
    /// the rest.
    async fn handle_all(&self, entries: &[Entry]) {
        use futures::StreamExt as _;
        futures::stream::iter(entries)
            .for_each_concurrent(CONCURRENCY, |e| self.handle(e))
            .await;
    }

    async fn keys(&self) -> Vec<String> {
        match self.store.counties().await {
            Ok(c) => c.iter().map(|c| self.queue.intake_key(c)).collect(),
            Err(e) => {
                warn!(error = %e, "listing counties failed");
                Vec::new()
            }
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        info!(consumer = %self.consumer, "router started");
        let mut conn = None;
        let mut keys = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut last_claim = Instant::now();
        while !shutdown.is_cancelled() {
            // new counties are looked for every few seconds, and often while there are none
            let every = if keys.is_empty() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            };
            if refreshed.is_none_or(|t| t.elapsed() > every) {
                keys = self.keys().await;
                refreshed = Some(Instant::now());
            }
            if keys.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(250)) => continue,
                }
            }
            if conn.is_none() {
                match self.queue.blocking_conn().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        warn!(error = %e, "redis unavailable for the router");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                }
            }
            if last_claim.elapsed() >= self.min_idle / 2 {
                last_claim = Instant::now();
                for key in &keys {
                    match self
                        .queue
                        .autoclaim(key, GROUP, &self.consumer, self.min_idle, 100)
                        .await
                    {
                        Ok(entries) => self.handle_all(&entries).await,
                        Err(e) => warn!(error = %e, "claiming stuck intake entries failed"),
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            let block = self.min_idle.min(Duration::from_millis(500));
            match self
                .queue
                .read_group(c, &keys, GROUP, &self.consumer, 100, block)
                .await
            {
                Ok(entries) => self.handle_all(&entries).await,
                Err(e) => {
                    warn!(error = %e, "reading intake failed");
                    conn = None;
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
        info!("router stopped");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn county_from_hash_tag() {
        assert_eq!(super::county_of("gd:intake:{360102}"), Some("360102"));
        assert_eq!(super::county_of("gd:intake"), None);
    }
}
