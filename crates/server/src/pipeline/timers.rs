//! SLA timers: deadlines live in Postgres; each fires exactly once across any number of
//! replicas because the firing transaction claims it (`FOR UPDATE SKIP LOCKED`), re-checks the
//! case under its row lock and marks it fired in the same commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::case::{Clock, Event};
use domain::record::CaseRecord;
use store::{Actor, Claim, DueDeadline};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use super::{Directory, Plan, Wake};
use super::{WorkerError, WorkerResult};
use crate::clock::SharedClock;

/// Shortest sleep between rounds, so a deadline another replica is firing right now is not
/// polled in a tight loop.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Deadlines fired per transaction.
const BATCH: i64 = 200;

/// Rounds one process fires at once (each holds a connection until it commits).
const ROUNDS: usize = 4;

#[derive(Clone)]
pub struct Timers {
    pub store: store::Store,
    pub directory: Arc<Directory>,
    pub clock: SharedClock,
    pub wake: Arc<Wake>,
    /// How often the worker re-reads the earliest deadline even when nothing woke it (other
    /// replicas arm deadlines it is not told about).
    pub reread: Duration,
}

/// What happened to one deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stale,
    Escalated,
    Flagged,
    Overdue,
    Warned,
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Stale => "stale",
            Outcome::Escalated => "escalated",
            Outcome::Flagged => "flagged",
            Outcome::Overdue => "overdue",
            Outcome::Warned => "warned",
            Outcome::Refused => "refused",
        }
    }
}

impl Timers {
    /// Claims what is due at the clock's `now`, in a transaction left open for its round.
    async fn claim(&self) -> WorkerResult<(store::CaseTx, Claim, DateTime<Utc>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let claim = tx.claim_due(now, BATCH).await?;
        Ok((tx, claim, now))
    }

    /// Fires a claimed batch and commits it; answers how many fired.
    async fn round(
        &self,
        mut tx: store::CaseTx,
        due: Vec<DueDeadline>,
        now: DateTime<Utc>,
    ) -> WorkerResult<usize> {
        let n = due.len();
        let mut cases: Vec<domain::CaseId> = due.iter().map(|d| d.case_id).collect();
        cases.sort_unstable();
        cases.dedup();
        // a first look without locks: deadlines are never cancelled, so most find their clock
        // stopped, and those are retired without taking their case's lock. Retiring on this
        // read is the same as firing before any writer that still holds the case commits:
        // nothing such a writer reads is written here, and a clock it starts again has a new
        // due time, which no deadline armed before it matches.
        let seen: HashMap<domain::CaseId, CaseRecord> = tx
            .read_cases(&cases)
            .await?
            .into_iter()
            .map(|r| (r.case_id, r))
            .collect();
        let running = |d: &DueDeadline| {
            seen.get(&d.case_id)
                .is_some_and(|r| r.state.clock_running(&d.unit, d.clock, d.clock_due_at))
        };
        let mut live: Vec<domain::CaseId> = due
            .iter()
            .filter(|d| running(d))
            .map(|d| d.case_id)
            .collect();
        live.sort_unstable();
        live.dedup();
        // the live ones locked up front, in id order, as the command writers and the router
        // lock theirs: two transactions never wait on each other in a cycle. Kept up to date
        // as deadlines of the batch change them: a case's second deadline sees what its first
        // one did
        let mut recs: HashMap<domain::CaseId, CaseRecord> = if live.is_empty() {
            HashMap::new()
        } else {
            tx.lock_cases(&live)
                .await?
                .into_iter()
                .map(|r| (r.case_id, r))
                .collect()
        };
        let mut fired = Vec::with_capacity(n);
        let mut late = Vec::with_capacity(n);
        // the earliest deadline an escalation of this round arms, for `Wake::armed`
        let mut armed = None;
        for d in &due {
            // a defect the fault checker must see (test builds only): a deadline marked
            // as taken effect that never did
            if !d.warn && crate::failpoint::fault_point("timer-skip") {
                fired.push((d.id, Outcome::Escalated.as_str()));
                continue;
            }
            let outcome = if running(d) {
                self.fire_one(&mut tx, d, &mut recs, &mut armed, now)
                    .await?
            } else {
                Outcome::Stale
            };
            fired.push((d.id, outcome.as_str()));
            late.push((outcome.as_str(), (now - d.fire_at).as_seconds_f64()));
            debug!(case_id = %d.case_id, unit = %d.unit, outcome = outcome.as_str(), "deadline fired");
        }
        tx.mark_fired_many(&fired, now).await?;
        tx.commit().await?;
        // as every writer that arms does: the claiming loop may already sleep past them
        self.wake.armed(armed);
        let m = crate::metrics::global();
        m.batch("deadlines", n);
        for (outcome, secs) in late {
            m.fired(outcome, secs);
        }
        self.wake.relay.notify_one();
        Ok(n)
    }

    async fn fire_one(
        &self,
        tx: &mut store::CaseTx,
        d: &DueDeadline,
        recs: &mut HashMap<domain::CaseId, CaseRecord>,
        armed: &mut Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> WorkerResult<Outcome> {
        let Some(rec) = recs.get(&d.case_id) else {
            return Ok(Outcome::Stale);
        };
        if !rec.state.clock_running(&d.unit, d.clock, d.clock_due_at) {
            return Ok(Outcome::Stale);
        }
        let span = crate::trace::case_span("deadline", d.case_id, &rec.trace);
        let (outcome, after) = self
            .fire_locked(tx, d, rec.clone(), armed, now)
            .instrument(span)
            .await?;
        if let Some(after) = after {
            recs.insert(after.case_id, after);
        }
        Ok(outcome)
    }

    async fn fire_locked(
        &self,
        tx: &mut store::CaseTx,
        d: &DueDeadline,
        rec: CaseRecord,
        armed: &mut Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> WorkerResult<(Outcome, Option<CaseRecord>)> {
        let env = if crate::failpoint::fault_point("timer-directory-unavailable") {
            Err(WorkerError::Fault("timer-directory-unavailable"))
        } else {
            self.directory
                .env(&rec, now)
                .await
                .map_err(WorkerError::from)
        };
        let env = match env {
            Ok(env) => env,
            // a permanent reason (the county has no policy, the category left the catalogue):
            // no retry would change it, so the deadline is retired, and says why
            Err(e) if e.is_permanent() => {
                warn!(case_id = %d.case_id, unit = %d.unit, reason = %e, "deadline retired: nothing to fire it with");
                return Ok((Outcome::Refused, None));
            }
            // a fault of the moment (a pool timeout, a restarting database): the batch rolls
            // back and fires again next round; a deadline is delayed by a fault, never dropped
            Err(e) => return Err(e),
        };
        let mut plan = Plan::new(&rec, now);
        let is_part = rec.state.parts.iter().any(|p| p.unit == d.unit);
        let (event, outcome) = if d.warn {
            (
                Event::Warned {
                    unit: d.unit.clone(),
                    clock: d.clock,
                },
                Outcome::Warned,
            )
        } else if d.clock == Clock::Accept && !is_part {
            match env.above(&d.unit, rec.state.tier) {
                Some((to_unit, to_tier)) => {
                    let (due, warn) = env.start(env.limits(&rec, to_tier).accept);
                    plan.arm(&to_unit, Clock::Accept, due, warn);
                    (
                        Event::Escalated {
                            from_unit: d.unit.clone(),
                            to_unit,
                            to_tier,
                            accept_due_at: due,
                        },
                        Outcome::Escalated,
                    )
                }
                None => (
                    Event::Flagged {
                        unit: d.unit.clone(),
                    },
                    Outcome::Flagged,
                ),
            }
        } else {
            (
                Event::Overdue {
                    unit: d.unit.clone(),
                    clock: d.clock,
                },
                Outcome::Overdue,
            )
        };
        let again = event.clone();
        if let Err(e) = plan.push(event) {
            warn!(case_id = %d.case_id, error = %e, "deadline refused by the state machine");
            return Ok((Outcome::Refused, None));
        }
        // a defect the fault checker must see (test builds only): one deadline, two effects
        if crate::failpoint::fault_point("timer-fire-twice") {
            let _ = plan.push(again);
        }
        let action = format!("timer:{}", outcome.as_str());
        let after = tx
            .append(
                store::Append {
                    before: &rec,
                    after: plan.state,
                    events: &plan.events,
                    arms: &plan.arms,
                    outbox: &plan.outbox,
                    actor: &Actor::system(),
                    action: &action,
                },
                now,
            )
            .await?;
        let earliest = plan.arms.iter().map(|a| a.fire_at).min();
        *armed = [*armed, earliest].into_iter().flatten().min();
        Ok((outcome, Some(after)))
    }

    /// Runs until `shutdown`: sleeps until the earliest deadline (or a wake-up, or the re-read
    /// interval), claims what is due and hands the batch to a round of its own, repeats. Up to
    /// [`ROUNDS`] rounds fire and commit while the next deadline is claimed: a deadline waits
    /// for the claim before it, not for a slow commit.
    pub async fn run(self, shutdown: CancellationToken) {
        info!("timer worker started");
        let slots = Arc::new(Semaphore::new(ROUNDS));
        let mut rounds = JoinSet::new();
        loop {
            while rounds.try_join_next().is_some() {}
            let slot = tokio::select! {
                () = shutdown.cancelled() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            self.wake.timers_reading();
            let next = match super::bounded("claiming deadlines", self.claim()).await {
                Ok((tx, claim, now)) if !claim.due.is_empty() => {
                    let full = claim.due.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
                    let me = self.clone();
                    rounds.spawn(async move {
                        let fired =
                            super::bounded("firing deadlines", me.round(tx, claim.due, now)).await;
                        drop(slot);
                        if let Err(e) = fired {
                            // rolled back: its deadlines are due again, and the worker looks
                            warn!(error = %e, "firing deadlines failed; retrying");
                            me.wake.timers.notify_one();
                        }
                    });
                    if full {
                        continue;
                    }
                    claim.next
                }
                Ok((tx, claim, _)) => {
                    drop((tx, slot));
                    claim.next
                }
                Err(e) => {
                    drop(slot);
                    warn!(error = %e, "claiming deadlines failed; retrying");
                    None
                }
            };
            // at the next deadline, or after the re-read interval (real time: under a demo's
            // accelerated clock, the clock's time passes faster), whichever comes first
            let now = self.clock.now();
            let reread =
                chrono::TimeDelta::from_std(self.clock.scaled(self.reread)).unwrap_or_default();
            let at = next.map_or(now + reread, |at| at.min(now + reread));
            // sooner if a deadline armed here while the table was read fires before then
            let at = self.wake.timers_sleep_until(at);
            let wait = self
                .clock
                .real((at - now).to_std().unwrap_or(Duration::ZERO))
                .clamp(MIN_SLEEP, self.reread);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.timers.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        // the rounds in flight finish (each within its step limit) before the worker stops
        while rounds.join_next().await.is_some() {}
        info!("timer worker stopped");
    }
}
