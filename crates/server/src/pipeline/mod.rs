//! The pipeline: what turns a report into a handled case. Commands and workers build a
//! [`Plan`] — events checked by the state machine, timers to arm, inbox items to publish —
//! and the store writes it in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::Tier;
use domain::area::GridMap;
use domain::calendar::{TimeLimit, WorkCalendar};
use domain::case::{CaseState, Clock, Event, TransitionError};
use domain::effects::{ItemKind, inbox_items};
use domain::policy::{Category, CategoryCode, Limits, Policy};
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use queue::Message;
use store::{Arm, Store};
use tokio::sync::{Notify, RwLock};

pub use error::{DirectoryError, WorkerError, WorkerResult};

mod error;
pub mod feed;
pub mod reconciler;
pub mod relay;
pub mod router;
pub mod timers;

/// Percent of a limit at which the yellow warning fires.
pub const WARN_PERCENT: u8 = 80;

/// Wakes background workers when this process wrote something for them. The timer worker is
/// woken only by a deadline earlier than the one it sleeps to, not by every commit.
#[derive(Debug)]
pub struct Wake {
    pub timers: Notify,
    pub relay: Notify,
    /// When the timer worker looks at the deadlines next (microseconds since the epoch;
    /// `i64::MAX` until it first sleeps).
    timers_at: AtomicI64,
    /// The earliest deadline armed in this process since the timer worker began its last
    /// read of the deadlines table.
    armed_since_read: AtomicI64,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            timers: Notify::new(),
            relay: Notify::new(),
            timers_at: AtomicI64::new(i64::MAX),
            armed_since_read: AtomicI64::new(i64::MAX),
        }
    }
}

impl Wake {
    /// A commit armed deadlines, the earliest firing at `earliest`: the timer worker is woken
    /// if it would otherwise sleep past it.
    pub fn armed(&self, earliest: Option<DateTime<Utc>>) {
        let Some(at) = earliest.map(|t| t.timestamp_micros()) else {
            return;
        };
        // with the worker's two steps in `timers_sleep_until`, SeqCst makes sure that an arm
        // racing its read is either seen by that read or wakes it
        self.armed_since_read.fetch_min(at, Ordering::SeqCst);
        if at < self.timers_at.load(Ordering::SeqCst) {
            self.timers.notify_one();
        }
    }

    /// The timer worker is about to read the deadlines table.
    pub fn timers_reading(&self) {
        self.armed_since_read.store(i64::MAX, Ordering::SeqCst);
    }

    /// The timer worker read the table and means to look again at `at`: answers when it
    /// should look, earlier when a deadline armed during its read fires before `at`.
    pub fn timers_sleep_until(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let micros = at.timestamp_micros();
        self.timers_at.store(micros, Ordering::SeqCst);
        let armed = self.armed_since_read.load(Ordering::SeqCst);
        if armed < micros {
            self.timers_at.store(armed, Ordering::SeqCst);
            return DateTime::from_timestamp_micros(armed).unwrap_or(at);
        }
        at
    }
}

/// Registry and policy facts, cached briefly: they change rarely and are read on every command.
pub struct Directory {
    store: Store,
    ttl: Duration,
    units: Cached<HashSet<String>>,
    policies: RwLock<HashMap<String, (Instant, Arc<Policy>)>>,
    categories: Cached<HashMap<String, Category>>,
    /// The grids' boundaries, indexed, with the registry revision they were read at.
    grids: RwLock<Option<(Instant, i64, Arc<GridMap>)>>,
    reach_m: f64,
    /// One reload at a time: when an entry goes stale under load, one caller reads it again
    /// and the others wait for that read instead of all reading it at once.
    reload: tokio::sync::Mutex<()>,
}

/// A value read at an instant, shared until it is older than the TTL.
type Cached<T> = RwLock<Option<(Instant, Arc<T>)>>;

impl Directory {
    /// Reads through its own small pool (see [`Store::fork`]): commands ask the directory
    /// while holding a transaction's connection.
    #[must_use]
    pub fn new(store: &Store, ttl: Duration) -> Directory {
        Directory {
            store: store.fork(4),
            ttl,
            units: RwLock::new(None),
            policies: RwLock::new(HashMap::new()),
            categories: RwLock::new(None),
            grids: RwLock::new(None),
            reach_m: 500.0,
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// How far outside every grid a point may lie and still fall to the nearest community.
    #[must_use]
    pub fn with_reach(mut self, metres: f64) -> Directory {
        self.reach_m = metres;
        self
    }

    /// The index of the grids' boundaries. Past the TTL one caller reads the registry's
    /// boundary revision (one indexed maximum) and rebuilds the index only when it moved.
    pub async fn grid_map(&self) -> Result<Arc<GridMap>, DirectoryError> {
        if let Some((at, _, m)) = self.grids.read().await.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(m.clone());
        }
        let _one = self.reload.lock().await;
        let held = self.grids.read().await.clone();
        if let Some((at, _, m)) = &held
            && at.elapsed() < self.ttl
        {
            return Ok(m.clone());
        }
        if let Some((_, rev, m)) = held
            && self.store.boundary_rev().await? == rev
        {
            *self.grids.write().await = Some((Instant::now(), rev, m.clone()));
            return Ok(m);
        }
        let b = self.store.grid_boundaries().await?;
        let reach = self.reach_m;
        // bulk-loading a province's grids takes a moment of CPU: off the async threads
        let map = tokio::task::spawn_blocking(move || GridMap::new(b.grids, reach))
            .await
            .map_err(|e| DirectoryError::Store(store::StoreError::Corrupt(e.to_string())))?;
        let map = Arc::new(map);
        *self.grids.write().await = Some((Instant::now(), b.rev, map.clone()));
        Ok(map)
    }

    /// Forgets everything; the next read goes to the database.
    pub async fn invalidate(&self) {
        *self.units.write().await = None;
        self.policies.write().await.clear();
        *self.categories.write().await = None;
        if let Some((at, _, _)) = self.grids.write().await.as_mut() {
            // stale now; the revision check decides whether to rebuild
            *at = Instant::now().checked_sub(self.ttl).unwrap_or(*at);
        }
    }

    pub async fn units(&self) -> Result<Arc<HashSet<String>>, DirectoryError> {
        if let Some((at, u)) = self.units.read().await.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(u.clone());
        }
        let _one = self.reload.lock().await;
        if let Some((at, u)) = self.units.read().await.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(u.clone());
        }
        let fresh: Arc<HashSet<String>> =
            Arc::new(self.store.unit_codes().await?.into_iter().collect());
        *self.units.write().await = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// The county's policy, or `None` when it has none.
    pub async fn policy_if_any(
        &self,
        county: &RegionCode,
    ) -> Result<Option<Arc<Policy>>, DirectoryError> {
        match self.policy(county).await {
            Ok(p) => Ok(Some(p)),
            Err(DirectoryError::NoPolicy(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The county's working calendar: its policy's, or the default one without a policy.
    pub async fn calendar(
        &self,
        county: &RegionCode,
    ) -> Result<domain::calendar::WorkCalendar, DirectoryError> {
        Ok(self
            .policy_if_any(county)
            .await?
            .map(|p| p.calendar.clone())
            .unwrap_or_default())
    }

    pub async fn policy(&self, county: &RegionCode) -> Result<Arc<Policy>, DirectoryError> {
        if let Some((at, p)) = self.policies.read().await.get(county.as_str())
            && at.elapsed() < self.ttl
        {
            return Ok(p.clone());
        }
        let _one = self.reload.lock().await;
        if let Some((at, p)) = self.policies.read().await.get(county.as_str())
            && at.elapsed() < self.ttl
        {
            return Ok(p.clone());
        }
        let (p, _, _) = self
            .store
            .get_policy(county)
            .await?
            .ok_or_else(|| DirectoryError::NoPolicy(county.clone()))?;
        let p = Arc::new(p);
        self.policies
            .write()
            .await
            .insert(county.to_string(), (Instant::now(), p.clone()));
        Ok(p)
    }

    pub async fn category(&self, code: &CategoryCode) -> Result<Category, DirectoryError> {
        if let Some((at, c)) = self.categories.read().await.as_ref()
            && at.elapsed() < self.ttl
            && let Some(cat) = c.get(code.as_str())
        {
            return Ok(cat.clone());
        }
        let _one = self.reload.lock().await;
        if let Some((at, c)) = self.categories.read().await.as_ref()
            && at.elapsed() < self.ttl
            && let Some(cat) = c.get(code.as_str())
        {
            return Ok(cat.clone());
        }
        let all: HashMap<String, Category> = self
            .store
            .list_categories()
            .await?
            .into_iter()
            .map(|c| (c.code.to_string(), c))
            .collect();
        let found = all.get(code.as_str()).cloned();
        *self.categories.write().await = Some((Instant::now(), Arc::new(all)));
        found.ok_or_else(|| DirectoryError::NoCategory(code.clone()))
    }

    /// What a command or timer needs to know about a case's county and category.
    pub async fn env(&self, rec: &CaseRecord, now: DateTime<Utc>) -> Result<Env, DirectoryError> {
        self.env_for(&rec.county, &rec.category, now).await
    }

    /// [`Directory::env`] for a county and category, before there is a case.
    pub async fn env_for(
        &self,
        county: &RegionCode,
        category: &CategoryCode,
        now: DateTime<Utc>,
    ) -> Result<Env, DirectoryError> {
        Ok(Env {
            policy: self.policy(county).await?,
            category: self.category(category).await?,
            units: self.units().await?,
            now,
        })
    }
}

/// The facts a decision about one case is made with.
pub struct Env {
    pub policy: Arc<Policy>,
    pub category: Category,
    pub units: Arc<HashSet<String>>,
    pub now: DateTime<Utc>,
}

impl Env {
    #[must_use]
    pub fn calendar(&self) -> &WorkCalendar {
        &self.policy.calendar
    }

    #[must_use]
    pub fn limits(&self, rec: &CaseRecord, tier: Tier) -> Limits {
        self.policy.limits(&self.category, rec.severity, tier)
    }

    #[must_use]
    pub fn exists(&self, unit: &UnitCode) -> bool {
        self.units.contains(unit.as_str())
    }

    /// The nearest unit above `unit` at a tier higher than `tier` that exists in the registry;
    /// `None` at the top.
    #[must_use]
    pub fn above(&self, unit: &UnitCode, tier: Tier) -> Option<(UnitCode, Tier)> {
        self.taker(&unit.region(), tier.up()?)
    }

    /// The unit that takes a case at `tier` in the area of `from` (see
    /// [`domain::region::unit_taking`]).
    #[must_use]
    pub fn taker(&self, from: &RegionCode, tier: Tier) -> Option<(UnitCode, Tier)> {
        domain::region::unit_taking(from, tier, |r| self.units.contains(r.as_str()))
    }

    /// Due and warning instants of a clock of `limit` that starts now, at the microsecond
    /// precision PostgreSQL keeps (see [`CaseState::clock_running`]).
    #[must_use]
    pub fn start(&self, limit: TimeLimit) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            micros(limit.due_at(self.calendar(), self.now)),
            micros(limit.warn_at(self.calendar(), self.now, WARN_PERCENT)),
        )
    }
}

/// Events to append, and what follows from them.
pub struct Plan {
    pub case_id: domain::CaseId,
    pub state: CaseState,
    pub events: Vec<Event>,
    pub arms: Vec<Arm>,
    pub outbox: Vec<Message>,
    now: DateTime<Utc>,
}

impl Plan {
    #[must_use]
    pub fn new(rec: &CaseRecord, now: DateTime<Utc>) -> Plan {
        Plan {
            case_id: rec.case_id,
            state: rec.state.clone(),
            events: Vec::new(),
            arms: Vec::new(),
            outbox: Vec::new(),
            now,
        }
    }

    /// Applies `event` through the state machine and queues the inbox items it produces.
    pub fn push(&mut self, event: Event) -> Result<(), TransitionError> {
        let next = self.state.apply(&event, self.now)?;
        for item in inbox_items(&self.state, &next, &event) {
            self.outbox
                .push(inbox_msg(self.case_id, next.version, &item.unit, item.kind));
        }
        self.state = next;
        self.events.push(event);
        Ok(())
    }

    /// 呼叫: `unit`, holding the case, calls it up to the nearest unit above it in the
    /// registry, whose accept clock starts now. `false` when there is no tier above. Used by
    /// the holder's `CallUp` and by the county's recurrence rule.
    pub fn call_up(
        &mut self,
        env: &Env,
        rec: &CaseRecord,
        unit: &UnitCode,
        reason: String,
    ) -> Result<bool, TransitionError> {
        let Some((to_unit, to_tier)) = env.above(unit, self.state.tier) else {
            return Ok(false);
        };
        let (due, warn) = env.start(env.limits(rec, to_tier).accept);
        self.push(Event::CalledUp {
            unit: unit.clone(),
            reason,
            to_unit: to_unit.clone(),
            to_tier,
            accept_due_at: due,
        })?;
        self.arm(&to_unit, Clock::Accept, due, warn);
        Ok(true)
    }

    /// Arms the deadline and the yellow warning of a clock.
    pub fn arm(&mut self, unit: &UnitCode, clock: Clock, due: DateTime<Utc>, warn: DateTime<Utc>) {
        for (is_warn, at) in [(true, warn), (false, due)] {
            if is_warn && at >= due {
                continue;
            }
            self.arms.push(Arm {
                unit: unit.clone(),
                clock,
                warn: is_warn,
                fire_at: at,
                clock_due_at: due,
            });
        }
    }
}

/// An inbox item as the relay publishes it.
#[must_use]
pub fn inbox_msg(
    case_id: domain::CaseId,
    version: u64,
    unit: &UnitCode,
    kind: ItemKind,
) -> Message {
    Message::Inbox(queue::InboxMsg {
        kind,
        case_id,
        version,
        unit: unit.clone(),
    })
}

/// The longest a background worker waits on one step (a batch, a firing, a routing): a
/// connection stalled by the network cannot stall the worker beyond it. The step's
/// transaction is dropped with it and rolls back.
pub const STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs one worker step within [`STEP_LIMIT`].
pub async fn bounded<T>(
    what: &'static str,
    step: impl std::future::Future<Output = WorkerResult<T>>,
) -> WorkerResult<T> {
    tokio::time::timeout(STEP_LIMIT, step)
        .await
        .unwrap_or_else(|_| {
            Err(WorkerError::TooSlow {
                what,
                limit: STEP_LIMIT,
            })
        })
}

pub use domain::case::micros;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_worker_is_woken_only_by_an_earlier_deadline() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let woken = |w: &Wake| {
            // a stored permit makes `notified` ready at once
            let n = w.timers.notified();
            tokio::pin!(n);
            n.as_mut().enable()
        };
        let w = Wake::default();
        // before the worker first sleeps, every arm wakes it
        w.armed(Some(at(100)));
        assert!(woken(&w));
        // asleep until +60 s: a later deadline does not wake it, an earlier one does
        w.timers_reading();
        assert_eq!(w.timers_sleep_until(at(60)), at(60));
        w.armed(Some(at(90)));
        w.armed(None);
        assert!(!woken(&w));
        w.armed(Some(at(30)));
        assert!(woken(&w));
        // a deadline armed while the worker reads the table shortens the sleep it chooses
        w.timers_reading();
        w.armed(Some(at(10)));
        assert!(woken(&w));
        assert_eq!(w.timers_sleep_until(at(60)), micros(at(10)));
        w.armed(Some(at(20)));
        assert!(!woken(&w));
    }
}
