//! The router: reads each county's intake stream with a consumer group, gives every REPORTED
//! case its first tier and unit, and acknowledges only after that commit. Stuck entries are
//! claimed after `min_idle`; an entry delivered more than `max_deliveries` times is moved to
//! the county's dead-letter stream, where operators can see and re-drive it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::case::{Clock, Event};
use domain::record::CaseRecord;
use queue::{Entry, Queue};
use store::{Actor, Append};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use super::{Directory, Plan, Wake};
use super::{WorkerError, WorkerResult};
use crate::clock::SharedClock;

pub const GROUP: &str = "router";

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

impl Router {
    /// Routes those of `ids` that are still REPORTED, all in one transaction; a case that is
    /// no longer REPORTED was routed before (a repeated or stale message) and is left alone.
    /// Answers the cases that could not be planned (they stay unrouted, and their entries
    /// pending); every other case is done once this returns.
    pub async fn route_batch(&self, ids: &[CaseId]) -> WorkerResult<HashMap<CaseId, WorkerError>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let recs = tx.lock_reported(ids).await?;
        let mut failed = HashMap::new();
        let mut plans = Vec::with_capacity(recs.len());
        for rec in &recs {
            let span = crate::trace::case_span("route", rec.case_id, &rec.trace);
            match self.plan(rec, now).instrument(span.clone()).await {
                Ok(plan) => plans.push((plan, span)),
                Err(e) => {
                    failed.insert(rec.case_id, e);
                }
            }
        }
        if plans.is_empty() {
            return Ok(failed);
        }
        let system = Actor::system();
        let items: Vec<Append<'_>> = recs
            .iter()
            .filter(|r| !failed.contains_key(&r.case_id))
            .zip(&plans)
            .map(|(before, (plan, _))| Append {
                before,
                after: plan.state.clone(),
                events: &plan.events,
                arms: &plan.arms,
                outbox: &plan.outbox,
                actor: &system,
                action: "route",
            })
            .collect();
        tx.append_many(&items, now).await?;
        tx.commit().await?;
        self.wake.armed(
            plans
                .iter()
                .flat_map(|(p, _)| p.arms.iter().map(|a| a.fire_at))
                .min(),
        );
        self.wake.relay.notify_one();
        for (plan, span) in &plans {
            span.in_scope(|| debug!(case_id = %plan.case_id, "case routed"));
        }
        Ok(failed)
    }

    /// The first tier and unit for a REPORTED case: the policy's tier, at the grid's own unit
    /// of that tier or the nearest one above it that exists.
    async fn plan(&self, rec: &CaseRecord, now: DateTime<Utc>) -> WorkerResult<Plan> {
        let env = self.directory.env(rec, now).await?;
        route_plan(&env, rec, now)
    }

    /// Routes a batch of intake entries in one transaction, then acknowledges them together.
    /// An entry whose case could not be routed stays pending: it is claimed again after
    /// `min_idle`, and dead-lettered after too many deliveries.
    async fn handle_all(&self, entries: &[Entry]) {
        let mut todo: Vec<(&Entry, CaseId)> = Vec::with_capacity(entries.len());
        for e in entries {
            // defects the fault checker must see (test builds only): an entry acknowledged
            // without routing, or dead-lettered at its first delivery
            if crate::failpoint::fault_point("router-drop-entry") {
                let _ = self
                    .queue
                    .ack(&e.key, GROUP, std::slice::from_ref(&e.id))
                    .await;
                continue;
            }
            if e.deliveries > self.max_deliveries
                || crate::failpoint::fault_point("router-dead-letter")
            {
                let reason = format!("not routed after {} deliveries", e.deliveries);
                match self.queue.dead_letter(e, GROUP, &reason).await {
                    Ok(()) => {
                        crate::metrics::global().dead_letters.inc();
                        warn!(key = %e.key, id = %e.id, deliveries = e.deliveries, "intake entry dead-lettered");
                    }
                    Err(err) => warn!(error = %err, "dead-lettering failed"),
                }
                continue;
            }
            match e.intake() {
                Ok(m) => todo.push((e, m.case_id)),
                Err(err) => {
                    warn!(key = %e.key, id = %e.id, deliveries = e.deliveries, error = %err, "malformed intake entry")
                }
            }
        }
        if todo.is_empty() {
            return;
        }
        let mut ids: Vec<CaseId> = todo.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        let failed = match super::bounded("routing", self.route_batch(&ids)).await {
            Ok(failed) => {
                crate::failpoint::crash_point("router-after-commit");
                failed
            }
            Err(err) => {
                warn!(entries = todo.len(), error = %err, "routing a batch failed; its entries will be delivered again");
                return;
            }
        };
        let mut done: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (e, case_id) in &todo {
            match failed.get(case_id) {
                Some(err) => {
                    warn!(key = %e.key, id = %e.id, deliveries = e.deliveries, error = %err, "routing failed")
                }
                None => done.entry(e.key.as_str()).or_default().push(e.id.clone()),
            }
        }
        for (key, ids) in done {
            if let Err(err) = self.queue.ack(key, GROUP, &ids).await {
                warn!(error = %err, "ack failed; the entries will be delivered again");
            }
        }
    }

    async fn keys(&self) -> Vec<String> {
        match self.store.counties().await {
            Ok(c) => c
                .into_iter()
                .map(|c| self.queue.key(&queue::Stream::Intake(c)))
                .collect(),
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

/// The first tier and unit for a REPORTED case, given its county's and category's facts: the
/// policy's tier, at the grid's own unit of that tier or the nearest one above it that exists.
/// The router uses it for cases from its intake stream; the report writer for new cases in
/// their own transaction.
pub fn route_plan(env: &super::Env, rec: &CaseRecord, now: DateTime<Utc>) -> WorkerResult<Plan> {
    let decision = env.policy.route(&env.category, Some(rec.severity));
    let (unit, tier) = env
        .taker(&rec.grid, decision.tier)
        .ok_or_else(|| WorkerError::NoUnit(rec.grid.clone()))?;
    let (due, warn) = env.start(env.limits(rec, tier).accept);
    let mut plan = Plan::new(rec, now);
    plan.push(Event::Routed {
        unit: unit.clone(),
        tier,
        accept_due_at: due,
        reason: decision.reasons.join("; "),
        admitted: decision.admitted,
    })?;
    plan.arm(&unit, Clock::Accept, due, warn);
    Ok(plan)
}
