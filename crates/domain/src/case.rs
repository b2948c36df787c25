//! The case state machine.
//!
//! A case is the fold of its events. [`CaseState::start`] takes the first event (`reported`),
//! [`CaseState::apply`] checks that an event is allowed in the current state, by that unit, at
//! that time, and returns the next state. Services compute what needs the registry or the
//! policy (which unit is one tier up, when a clock runs out) and put it into the event; this
//! module decides whether the transition is legal and what it does. It never does I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::region::UnitCode;
use crate::{CaseId, CaseStatus, Tier};

/// Which clock of an assignment an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// The time to accept (受理).
    Accept,
    /// The time to handle once accepted.
    Handle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    PendingAccept,
    Accepted,
    Submitted,
}

/// An assisting unit's share of a joint handling (協辦), with its own clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub unit: UnitCode,
    pub status: PartStatus,
    pub accept_due_at: DateTime<Utc>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// A pending request for more time (延期).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub unit: UnitCode,
    pub until: DateTime<Utc>,
    pub decider: UnitCode,
}

/// Everything that happens to a case. The serde tag is the event type stored in `case_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Filed by a grid worker; `self_handled` cases are settled on the spot and closed.
    Reported { grid: UnitCode, self_handled: bool },
    /// The router chose the first tier and unit.
    Routed {
        unit: UnitCode,
        tier: Tier,
        accept_due_at: DateTime<Utc>,
        reason: String,
        /// False for a matter grid staff may not be given (網格事項準入); absent in the
        /// stored event when true, as in every event written before the rule.
        #[serde(default = "admitted", skip_serializing_if = "is_admitted")]
        admitted: bool,
    },
    /// 受理 by the holder, or an assisting unit reporting in (報到) for its part.
    Accepted {
        unit: UnitCode,
        handle_due_at: DateTime<Utc>,
    },
    /// 呼叫 / 吹哨: the holder asks the tier above to take over.
    CalledUp {
        unit: UnitCode,
        reason: String,
        to_unit: UnitCode,
        to_tier: Tier,
        accept_due_at: DateTime<Utc>,
    },
    /// 退回: "not ours". The holder's return sends the case to `to_unit` (the tier above) to
    /// re-route; an assisting unit's return drops its part.
    Returned {
        unit: UnitCode,
        reason: String,
        to_unit: Option<UnitCode>,
        to_tier: Option<Tier>,
        accept_due_at: Option<DateTime<Utc>>,
    },
    /// 派遣 (and 下發): the holder names a lead and assisting units, each with its own clock.
    Dispatched {
        unit: UnitCode,
        lead: UnitCode,
        lead_tier: Tier,
        assisting: Vec<UnitCode>,
        accept_due_at: DateTime<Utc>,
        note: String,
    },
    /// An assisting unit's part is done.
    PartSubmitted {
        unit: UnitCode,
        note: String,
        /// Photos of the work done (SHA-256 of uploaded media), beside the report's own.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        photos: Vec<String>,
    },
    /// The lead's final result: the case waits for the reporter's grid to check it.
    ResultSubmitted {
        unit: UnitCode,
        note: String,
        /// Photos of the result (SHA-256 of uploaded media): the "after" to the report's
        /// "before".
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        photos: Vec<String>,
    },
    /// 核查 on site: pass closes; fail sends the case back to the same lead (返工).
    Verified {
        unit: UnitCode,
        passed: bool,
        note: String,
        handle_due_at: Option<DateTime<Utc>>,
    },
    ExtensionRequested {
        unit: UnitCode,
        until: DateTime<Utc>,
        reason: String,
        decider: UnitCode,
    },
    ExtensionDecided {
        unit: UnitCode,
        approved: bool,
        note: String,
    },
    /// The accept clock ran out: the case moves up on its own.
    Escalated {
        from_unit: UnitCode,
        to_unit: UnitCode,
        to_tier: Tier,
        accept_due_at: DateTime<Utc>,
    },
    /// The accept clock ran out at the top tier: the case stays, flagged.
    Flagged { unit: UnitCode },
    /// 督辦: a clock of `unit` ran out without the action it required.
    Overdue { unit: UnitCode, clock: Clock },
    /// A yellow warning: 80 % of a clock of `unit` has passed.
    Warned { unit: UnitCode, clock: Clock },
    /// 作廢: not a case.
    Rejected { unit: UnitCode, reason: String },
    /// A duplicate of another case, merged into it by a unit with authority over both.
    Merged {
        unit: UnitCode,
        into: CaseId,
        /// Why (absent in events written before units could merge through the API).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    /// A new report linked on arrival to the open case it repeats (the county's repeat rule):
    /// not a case of its own; the reporter follows `into`.
    Repeated { into: CaseId, distance_m: u32 },
    /// On the case a repeat or a merged case was linked into: `reports` more people reported
    /// it.
    RepeatAdded { case: CaseId, reports: u32 },
    /// On that case again: a wrongly linked repeat (or merged case) was split off.
    RepeatRemoved { case: CaseId, reports: u32 },
    /// A wrongly linked repeat or merged case becomes a case of its own again, to be routed
    /// afresh.
    Split { unit: UnitCode, reason: String },
    /// The spot was reported `reports` times within `days`: the county's rule raises the
    /// severity to `severity`, or a call-up follows.
    Recurred {
        reports: u32,
        days: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<crate::Severity>,
    },
    /// 好差評, 1 (very unsatisfied) to 5 (very satisfied).
    Rated { score: u8, comment: String },
}

fn one() -> u32 {
    1
}

fn admitted() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde hands a reference
fn is_admitted(a: &bool) -> bool {
    *a
}

impl Event {
    /// The event type name, as stored and exported.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Reported { .. } => "reported",
            Event::Routed { .. } => "routed",
            Event::Accepted { .. } => "accepted",
            Event::CalledUp { .. } => "called_up",
            Event::Returned { .. } => "returned",
            Event::Dispatched { .. } => "dispatched",
            Event::PartSubmitted { .. } => "part_submitted",
            Event::ResultSubmitted { .. } => "result_submitted",
            Event::Verified { .. } => "verified",
            Event::ExtensionRequested { .. } => "extension_requested",
            Event::ExtensionDecided { .. } => "extension_decided",
            Event::Escalated { .. } => "escalated",
            Event::Flagged { .. } => "flagged",
            Event::Overdue { .. } => "overdue",
            Event::Warned { .. } => "warned",
            Event::Rejected { .. } => "rejected",
            Event::Merged { .. } => "merged",
            Event::Repeated { .. } => "repeated",
            Event::RepeatAdded { .. } => "repeat_added",
            Event::RepeatRemoved { .. } => "repeat_removed",
            Event::Split { .. } => "split",
            Event::Recurred { .. } => "recurred",
            Event::Rated { .. } => "rated",
        }
    }

    /// The unit that acted, if a unit did.
    #[must_use]
    pub fn actor_unit(&self) -> Option<&UnitCode> {
        match self {
            Event::Reported { grid, .. } => Some(grid),
            Event::Accepted { unit, .. }
            | Event::CalledUp { unit, .. }
            | Event::Returned { unit, .. }
            | Event::Dispatched { unit, .. }
            | Event::PartSubmitted { unit, .. }
            | Event::ResultSubmitted { unit, .. }
            | Event::Verified { unit, .. }
            | Event::ExtensionRequested { unit, .. }
            | Event::ExtensionDecided { unit, .. }
            | Event::Rejected { unit, .. }
            | Event::Merged { unit, .. }
            | Event::Split { unit, .. } => Some(unit),
            Event::Routed { .. }
            | Event::Escalated { .. }
            | Event::Flagged { .. }
            | Event::Overdue { .. }
            | Event::Warned { .. }
            | Event::Rated { .. }
            | Event::Repeated { .. }
            | Event::RepeatAdded { .. }
            | Event::RepeatRemoved { .. }
            | Event::Recurred { .. } => None,
        }
    }
}

/// Why an event may not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a case that is {status} cannot be {event}")]
    Forbidden {
        event: &'static str,
        status: CaseStatus,
    },
    #[error("unit {unit} is not the one to act on this case now ({event})")]
    NotYourTurn { event: &'static str, unit: String },
    #[error("{0}")]
    Precondition(&'static str),
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// The projection of a case's events: what every console shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    pub status: CaseStatus,
    pub tier: Tier,
    /// The grid the case was found in; its grid checks the result.
    pub grid: UnitCode,
    /// The unit whose move it is (to accept, handle or check); `None` when closed.
    pub holder: Option<UnitCode>,
    /// The unit leading the handling (accepting unit or dispatched lead).
    pub lead: Option<UnitCode>,
    /// The unit that dispatched the current joint handling.
    pub dispatcher: Option<UnitCode>,
    pub parts: Vec<Part>,
    pub accept_due_at: Option<DateTime<Utc>>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    /// Missed its accept deadline at the top tier.
    pub flagged: bool,
    pub rework_count: u32,
    pub return_count: u32,
    pub escalation_count: u32,
    pub dispatch_count: u32,
    pub self_handled: bool,
    pub rating: Option<u8>,
    pub extension: Option<Extension>,
    pub merged_into: Option<CaseId>,
    /// How many reported it: this case's own report and every repeat or merged case linked
    /// into it.
    #[serde(default = "one")]
    pub reports: u32,
    /// The county's recurrence rule has acted on this case (it acts once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recurred: bool,
    pub closed_at: Option<DateTime<Utc>>,
    /// Number of events applied; the next event gets `version + 1`.
    pub version: u64,
}

type Result<T> = std::result::Result<T, TransitionError>;

impl CaseState {
    /// The state after the first event, which must be `reported`.
    pub fn start(event: &Event, now: DateTime<Utc>) -> Result<CaseState> {
        let Event::Reported { grid, self_handled } = event else {
            return Err(TransitionError::Precondition(
                "a case must start with `reported`",
            ));
        };
        if grid.tier() != Some(Tier::Grid) {
            return Err(TransitionError::Invalid {
                field: "grid",
                reason: "a case is reported from a grid",
            });
        }
        let mut s = CaseState {
            status: CaseStatus::Reported,
            tier: Tier::Grid,
            grid: grid.clone(),
            holder: None,
            lead: None,
            dispatcher: None,
            parts: Vec::new(),
            accept_due_at: None,
            handle_due_at: None,
            overdue: false,
            flagged: false,
            rework_count: 0,
            return_count: 0,
            escalation_count: 0,
            dispatch_count: 0,
            self_handled: *self_handled,
            rating: None,
            extension: None,
            merged_into: None,
            reports: 1,
            recurred: false,
            closed_at: None,
            version: 1,
        };
        if *self_handled {
            s.status = CaseStatus::Closed;
            s.lead = Some(grid.clone());
            s.closed_at = Some(now);
        }
        Ok(s)
    }

    /// Folds a whole event log; the log must start with `reported`.
    pub fn replay<'a>(
        events: impl IntoIterator<Item = (&'a Event, DateTime<Utc>)>,
    ) -> Result<Option<CaseState>> {
        let mut state: Option<CaseState> = None;
        for (event, at) in events {
            state = Some(match state {
                None => CaseState::start(event, at)?,
                Some(s) => s.apply(event, at)?,
            });
        }
        Ok(state)
    }

    /// Assisting units of the current joint handling.
    #[must_use]
    pub fn assisting_units(&self) -> Vec<UnitCode> {
        self.parts.iter().map(|p| p.unit.clone()).collect()
    }

    fn forbidden(&self, event: &Event) -> TransitionError {
        TransitionError::Forbidden {
            event: event.kind(),
            status: self.status,
        }
    }

    fn require_status(&self, event: &Event, allowed: &[CaseStatus]) -> Result<()> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(self.forbidden(event))
        }
    }

    fn require_holder(&self, event: &Event, unit: &UnitCode) -> Result<()> {
        if self.holder.as_ref() == Some(unit) {
            Ok(())
        } else {
            Err(apply::not_your_turn(event, unit))
        }
    }

    /// The holder itself, or a region unit above the holder, has authority over the case
    /// (to void or merge it). Before routing, any region unit containing the grid does.
    #[must_use]
    pub fn has_authority(&self, unit: &UnitCode) -> bool {
        if self.holder.as_ref() == Some(unit) || self.dispatcher.as_ref() == Some(unit) {
            return true;
        }
        if unit.is_department() {
            return false;
        }
        let over = self.holder.as_ref().unwrap_or(&self.grid);
        over.is_within(&unit.region()) && over != unit
    }

    fn part_mut(&mut self, unit: &UnitCode) -> Option<&mut Part> {
        self.parts.iter_mut().find(|p| &p.unit == unit)
    }

    fn part(&self, unit: &UnitCode) -> Option<&Part> {
        self.parts.iter().find(|p| &p.unit == unit)
    }

    /// Moves the case to a new holder that must accept by `due`.
    fn hand_to(&mut self, unit: &UnitCode, tier: Tier, due: DateTime<Utc>) {
        self.status = CaseStatus::PendingAccept;
        self.holder = Some(unit.clone());
        self.tier = tier;
        self.lead = None;
        self.dispatcher = None;
        self.parts.clear();
        self.accept_due_at = Some(due);
        self.handle_due_at = None;
        self.extension = None;
        self.overdue = false;
        self.flagged = false;
    }
}

mod apply;
mod clocks;

pub use clocks::micros;

#[cfg(test)]
mod tests;
