//! The pipeline: what turns a report into a handled case. Commands and workers build a
//! [`Plan`] — events checked by the state machine, timers to arm, inbox items to publish —
//! and the store writes it in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::Tier;
use domain::calendar::{TimeLimit, WorkCalendar};
use domain::case::{CaseState, Clock, Event, TransitionError};
use domain::effects::{ItemKind, inbox_items};
use domain::policy::{Category, CategoryCode, Limits, Policy};
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use store::{Arm, OutboxMsg, Store};
use tokio::sync::{Notify, RwLock};

use crate::error::{ApiError, ApiResult};

pub mod feed;
pub mod reconciler;
pub mod relay;
pub mod router;
pub mod timers;

/// Percent of a limit at which the yellow warning fires.
pub const WARN_PERCENT: u8 = 80;

/// Wakes background workers when this process wrote something for them.
#[derive(Debug, Default)]
pub struct Wake {
    pub timers: Notify,
    pub relay: Notify,
}

/// Registry and policy facts, cached briefly: they change rarely and are read on every command.
pub struct Directory {
    store: Store,
    ttl: Duration,
    units: Cached<HashSet<String>>,
    policies: RwLock<HashMap<String, (Instant, Arc<Policy>)>>,
    categories: Cached<HashMap<String, Category>>,
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
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Forgets everything; the next read goes to the database.
    pub async fn invalidate(&self) {
        *self.units.write().await = None;
        self.policies.write().await.clear();
        *self.categories.write().await = None;
    }

    pub async fn units(&self) -> ApiResult<Arc<HashSet<String>>> {
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

    pub async fn policy(&self, county: &RegionCode) -> ApiResult<Arc<Policy>> {
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
        let (p, _, _) = self.store.get_policy(county).await?.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("county {county} has no routing policy"))
        })?;
        let p = Arc::new(p);
        self.policies
            .write()
            .await
            .insert(county.to_string(), (Instant::now(), p.clone()));
        Ok(p)
    }

    pub async fn category(&self, code: &CategoryCode) -> ApiResult<Category> {
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
        found.ok_or_else(|| {
            ApiError::FailedPrecondition(format!("category {code} is no longer in the catalogue"))
        })
    }

    /// What a command or timer needs to know about a case's county and category.
    pub async fn env(&self, rec: &CaseRecord, now: DateTime<Utc>) -> ApiResult<Env> {
        Ok(Env {
            policy: self.policy(&rec.county).await?,
            category: self.category(&rec.category).await?,
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
        let mut region = Some(unit.region());
        while let Some(r) = region {
            if let Some(t) = r.level().tier()
                && t > tier
                && self.units.contains(r.as_str())
            {
                return Some((r.into(), t));
            }
            region = r.parent();
        }
        None
    }

    /// Due and warning instants of a clock of `limit` that starts now, at the microsecond
    /// precision PostgreSQL keeps (see [`clock_running`]).
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
    pub case_id: uuid::Uuid,
    pub state: CaseState,
    pub events: Vec<Event>,
    pub arms: Vec<Arm>,
    pub outbox: Vec<OutboxMsg>,
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

/// The hash tag of a unit's inbox key: its county, or its own code above the county level
/// (a city's command centre), so that publisher and consoles always agree on the key.
#[must_use]
pub fn inbox_tag(unit: &UnitCode) -> String {
    unit.county()
        .map_or_else(|| unit.region().to_string(), |c| c.to_string())
}

/// An inbox item as the relay publishes it.
#[must_use]
pub fn inbox_msg(case_id: uuid::Uuid, version: u64, unit: &UnitCode, kind: ItemKind) -> OutboxMsg {
    OutboxMsg {
        stream: store::inbox_stream(&inbox_tag(unit), unit.as_str()),
        payload: serde_json::json!({
            "kind": kind,
            "case_id": case_id,
            "version": version,
            "unit": unit.as_str(),
        }),
    }
}

/// The Redis key of an outbox stream name (`intake/<county>`, `inbox/<county>/<unit>`).
#[must_use]
pub fn redis_key(queue: &queue::Queue, stream: &str) -> Option<String> {
    let mut parts = stream.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("intake"), Some(county), None) => Some(queue.intake_key(county)),
        (Some("inbox"), Some(county), Some(unit)) => Some(queue.inbox_key(county, unit)),
        _ => None,
    }
}

/// The longest a background worker waits on one step (a batch, a firing, a routing): a
/// connection stalled by the network cannot stall the worker beyond it. The step's
/// transaction is dropped with it and rolls back.
pub const STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs one worker step within [`STEP_LIMIT`].
pub async fn bounded<T>(
    what: &str,
    step: impl std::future::Future<Output = crate::error::ApiResult<T>>,
) -> crate::error::ApiResult<T> {
    tokio::time::timeout(STEP_LIMIT, step)
        .await
        .unwrap_or_else(|_| {
            Err(crate::error::ApiError::Unavailable(format!(
                "{what} took longer than {STEP_LIMIT:?}"
            )))
        })
}

/// `t` at microsecond precision: PostgreSQL's `timestamptz` keeps microseconds while the case
/// state (JSON) keeps nanoseconds, so instants are compared at the coarser of the two.
#[must_use]
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound as _;
    t.trunc_subsecs(6)
}

/// Whether `unit`'s `clock` still runs with the due time a deadline was armed for.
#[must_use]
pub fn clock_running(s: &CaseState, unit: &UnitCode, clock: Clock, due: DateTime<Utc>) -> bool {
    let due = micros(due);
    let same = |t: Option<DateTime<Utc>>| t.map(micros) == Some(due);
    use domain::CaseStatus::{InProgress, PendingAccept};
    use domain::case::PartStatus;
    if let Some(p) = s.parts.iter().find(|p| &p.unit == unit) {
        if s.status.is_terminal() || p.overdue {
            return false;
        }
        return match clock {
            Clock::Accept => p.status == PartStatus::PendingAccept && same(Some(p.accept_due_at)),
            Clock::Handle => p.status == PartStatus::Accepted && same(p.handle_due_at),
        };
    }
    match clock {
        Clock::Accept => {
            s.status == PendingAccept
                && s.holder.as_ref() == Some(unit)
                && same(s.accept_due_at)
                && !s.flagged
        }
        Clock::Handle => {
            s.status == InProgress
                && s.holder.as_ref() == Some(unit)
                && s.lead.as_ref() == Some(unit)
                && same(s.handle_due_at)
                && !s.overdue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_read_back_from_postgres_still_matches_its_clock() {
        use chrono::TimeZone as _;
        let grid = UnitCode::parse("360102001001001").unwrap();
        let unit = UnitCode::parse("360102001001").unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
        // a natural-clock due time carries nanoseconds from the wall clock
        let due = t0 + chrono::Duration::nanoseconds(60_000_000_123);
        let s = CaseState::start(
            &Event::Reported {
                grid,
                self_handled: false,
            },
            t0,
        )
        .unwrap()
        .apply(
            &Event::Routed {
                unit: unit.clone(),
                tier: Tier::Community,
                accept_due_at: due,
                reason: String::new(),
            },
            t0,
        )
        .unwrap();
        // PostgreSQL gives it back truncated to microseconds
        assert!(clock_running(&s, &unit, Clock::Accept, micros(due)));
        assert!(!clock_running(
            &s,
            &unit,
            Clock::Accept,
            micros(due) + chrono::Duration::microseconds(1)
        ));
    }

    #[test]
    fn inbox_keys_are_tagged_by_county_or_own_code_above_it() {
        let u = |c: &str| UnitCode::parse(c).unwrap();
        assert_eq!(inbox_tag(&u("360102001001")), "360102");
        assert_eq!(inbox_tag(&u("360102-CGJ")), "360102");
        assert_eq!(inbox_tag(&u("360102")), "360102");
        // a city's command centre has no county: its own code keeps publisher and console
        // on the same key
        assert_eq!(inbox_tag(&u("3601")), "3601");
        let m = inbox_msg(uuid::Uuid::nil(), 3, &u("3601"), ItemKind::ToAccept);
        assert_eq!(m.stream, "inbox/3601/3601");
    }
}
