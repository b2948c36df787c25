//! The case state machine.
//!
//! A case is the fold of its events. [`CaseState::start`] takes the first event (`reported`),
//! [`CaseState::apply`] checks that an event is allowed in the current state, by that unit, at
//! that time, and returns the next state. Services compute what needs the registry or the
//! policy (which unit is one tier up, when a clock runs out) and put it into the event; this
//! module decides whether the transition is legal and what it does. It never does I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::region::UnitCode;
use crate::{CaseStatus, Tier};

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
    PartSubmitted { unit: UnitCode, note: String },
    /// The lead's final result: the case waits for the reporter's grid to check it.
    ResultSubmitted { unit: UnitCode, note: String },
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
    /// A duplicate of another case.
    Merged { unit: UnitCode, into: Uuid },
    /// 好差評, 1 (very unsatisfied) to 5 (very satisfied).
    Rated { score: u8, comment: String },
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
            | Event::Merged { unit, .. } => Some(unit),
            Event::Routed { .. }
            | Event::Escalated { .. }
            | Event::Flagged { .. }
            | Event::Overdue { .. }
            | Event::Warned { .. }
            | Event::Rated { .. } => None,
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
    pub merged_into: Option<Uuid>,
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
            Err(not_your_turn(event, unit))
        }
    }

    /// The holder itself, or a region unit above the holder, has authority over the case
    /// (to void or merge it). Before routing, any region unit containing the grid does.
    fn has_authority(&self, unit: &UnitCode) -> bool {
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

    /// Checks `event` against this state at `now` and returns the state after it.
    #[allow(clippy::too_many_lines)] // one arm per event reads better than a split
    pub fn apply(&self, event: &Event, now: DateTime<Utc>) -> Result<CaseState> {
        use CaseStatus::{Closed, InProgress, PendingAccept, PendingVerification, Reported};
        let mut s = self.clone();
        match event {
            Event::Reported { .. } => return Err(self.forbidden(event)),
            Event::Routed {
                unit,
                tier,
                accept_due_at,
                ..
            } => {
                self.require_status(event, &[Reported])?;
                check_tier(unit, *tier)?;
                if !unit.is_department() && !self.grid.is_within(&unit.region()) {
                    return Err(TransitionError::Invalid {
                        field: "unit",
                        reason: "a case is routed to a unit above its grid",
                    });
                }
                s.hand_to(unit, *tier, *accept_due_at);
            }
            Event::Accepted {
                unit,
                handle_due_at,
            } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                if self.status == PendingAccept && self.holder.as_ref() == Some(unit) {
                    s.status = InProgress;
                    s.lead = Some(unit.clone());
                    s.accept_due_at = None;
                    s.handle_due_at = Some(*handle_due_at);
                    s.overdue = false;
                    s.flagged = false;
                } else if let Some(p) = s.part_mut(unit) {
                    if p.status != PartStatus::PendingAccept {
                        return Err(TransitionError::Precondition(
                            "this unit has already reported in for its part",
                        ));
                    }
                    p.status = PartStatus::Accepted;
                    p.handle_due_at = Some(*handle_due_at);
                } else if self.status == InProgress && self.lead.as_ref() == Some(unit) {
                    return Err(TransitionError::Precondition(
                        "the case has already been accepted",
                    ));
                } else {
                    return Err(not_your_turn(event, unit));
                }
            }
            Event::CalledUp {
                unit,
                reason,
                to_unit,
                to_tier,
                accept_due_at,
            } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                self.require_holder(event, unit)?;
                require_text("reason", reason)?;
                check_move_up(self.tier, to_unit, *to_tier)?;
                s.hand_to(to_unit, *to_tier, *accept_due_at);
            }
            Event::Returned {
                unit,
                reason,
                to_unit,
                to_tier,
                accept_due_at,
            } => {
                require_text("reason", reason)?;
                if self.status == PendingAccept && self.holder.as_ref() == Some(unit) {
                    let (Some(to_unit), Some(to_tier), Some(due)) =
                        (to_unit, to_tier, accept_due_at)
                    else {
                        return Err(TransitionError::Invalid {
                            field: "to_unit",
                            reason: "a returned case goes to the tier above",
                        });
                    };
                    check_tier(to_unit, *to_tier)?;
                    s.hand_to(to_unit, *to_tier, *due);
                    s.return_count += 1;
                } else if !self.status.is_terminal()
                    && self
                        .part(unit)
                        .is_some_and(|p| p.status == PartStatus::PendingAccept)
                {
                    s.parts.retain(|p| &p.unit != unit);
                    s.return_count += 1;
                } else {
                    self.require_status(event, &[PendingAccept])?;
                    return Err(not_your_turn(event, unit));
                }
            }
            Event::Dispatched {
                unit,
                lead,
                lead_tier,
                assisting,
                accept_due_at,
                ..
            } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                self.require_holder(event, unit)?;
                check_tier(lead, *lead_tier)?;
                if lead == unit {
                    return Err(TransitionError::Invalid {
                        field: "lead_unit",
                        reason: "the lead must be another unit than the dispatcher",
                    });
                }
                let mut seen = std::collections::BTreeSet::new();
                for a in assisting {
                    if a == lead || a == unit || !seen.insert(a) {
                        return Err(TransitionError::Invalid {
                            field: "assisting_units",
                            reason: "assisting units must be distinct from each other, the lead and the dispatcher",
                        });
                    }
                }
                s.hand_to(lead, *lead_tier, *accept_due_at);
                s.lead = Some(lead.clone());
                s.dispatcher = Some(unit.clone());
                s.dispatch_count += 1;
                s.parts = assisting
                    .iter()
                    .map(|a| Part {
                        unit: a.clone(),
                        status: PartStatus::PendingAccept,
                        accept_due_at: *accept_due_at,
                        handle_due_at: None,
                        overdue: false,
                    })
                    .collect();
            }
            Event::PartSubmitted { unit, note } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                require_text("note", note)?;
                let p = s.part_mut(unit).ok_or_else(|| not_your_turn(event, unit))?;
                match p.status {
                    PartStatus::Accepted => p.status = PartStatus::Submitted,
                    PartStatus::PendingAccept => {
                        return Err(TransitionError::Precondition(
                            "report in (accept) for the part before submitting it",
                        ));
                    }
                    PartStatus::Submitted => {
                        return Err(TransitionError::Precondition(
                            "this part has already been submitted",
                        ));
                    }
                }
            }
            Event::ResultSubmitted { unit, note } => {
                self.require_status(event, &[InProgress])?;
                require_text("note", note)?;
                if self.lead.as_ref() != Some(unit) || self.holder.as_ref() != Some(unit) {
                    return Err(not_your_turn(event, unit));
                }
                if self.parts.iter().any(|p| p.status != PartStatus::Submitted) {
                    return Err(TransitionError::Precondition(
                        "every assisting unit's part must be in before the final result",
                    ));
                }
                s.status = PendingVerification;
                s.holder = Some(self.grid.clone());
                s.extension = None;
            }
            Event::Verified {
                unit,
                passed,
                note,
                handle_due_at,
            } => {
                self.require_status(event, &[PendingVerification])?;
                if unit != &self.grid {
                    return Err(not_your_turn(event, unit));
                }
                if *passed {
                    s.status = Closed;
                    s.holder = None;
                    s.closed_at = Some(now);
                } else {
                    require_text("note", note)?;
                    let Some(due) = handle_due_at else {
                        return Err(TransitionError::Invalid {
                            field: "handle_due_at",
                            reason: "rework needs a new handling deadline",
                        });
                    };
                    s.status = InProgress;
                    s.holder.clone_from(&self.lead);
                    s.handle_due_at = Some(*due);
                    s.rework_count += 1;
                    s.overdue = false;
                }
            }
            Event::ExtensionRequested {
                unit,
                until,
                reason,
                decider,
            } => {
                self.require_status(event, &[InProgress])?;
                require_text("reason", reason)?;
                if self.lead.as_ref() != Some(unit) {
                    return Err(not_your_turn(event, unit));
                }
                if self.extension.is_some() {
                    return Err(TransitionError::Precondition(
                        "an extension request is already pending",
                    ));
                }
                let due = self.handle_due_at.ok_or(TransitionError::Precondition(
                    "the case has no handling deadline",
                ))?;
                if now >= due {
                    return Err(TransitionError::Precondition(
                        "an extension must be asked for before the deadline",
                    ));
                }
                if *until <= due {
                    return Err(TransitionError::Invalid {
                        field: "until",
                        reason: "must be later than the current handling deadline",
                    });
                }
                s.extension = Some(Extension {
                    unit: unit.clone(),
                    until: *until,
                    decider: decider.clone(),
                });
            }
            Event::ExtensionDecided { unit, approved, .. } => {
                self.require_status(event, &[InProgress])?;
                let ext = self
                    .extension
                    .as_ref()
                    .ok_or(TransitionError::Precondition(
                        "no extension request is pending",
                    ))?;
                if &ext.decider != unit {
                    return Err(not_your_turn(event, unit));
                }
                if *approved {
                    if self.handle_due_at.is_some_and(|due| now >= due) {
                        return Err(TransitionError::Precondition(
                            "an extension must be approved before the deadline",
                        ));
                    }
                    s.handle_due_at = Some(ext.until);
                }
                s.extension = None;
            }
            Event::Escalated {
                from_unit,
                to_unit,
                to_tier,
                accept_due_at,
            } => {
                self.require_status(event, &[PendingAccept])?;
                self.require_holder(event, from_unit)?;
                require_due(self.accept_due_at, now)?;
                check_move_up(self.tier, to_unit, *to_tier)?;
                s.hand_to(to_unit, *to_tier, *accept_due_at);
                s.escalation_count += 1;
            }
            Event::Flagged { unit } => {
                self.require_status(event, &[PendingAccept])?;
                self.require_holder(event, unit)?;
                if self.tier.up().is_some()
                    && unit
                        .region()
                        .parent()
                        .is_some_and(|p| p.level().tier().is_some())
                {
                    return Err(TransitionError::Precondition(
                        "only a case at the top tier is flagged; below it escalates",
                    ));
                }
                require_due(self.accept_due_at, now)?;
                if self.flagged {
                    return Err(TransitionError::Precondition("already flagged"));
                }
                s.flagged = true;
                s.overdue = true;
            }
            Event::Overdue { unit, clock } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                if let Some(p) = s.part_mut(unit) {
                    let due = match clock {
                        Clock::Accept if p.status == PartStatus::PendingAccept => {
                            Some(p.accept_due_at)
                        }
                        Clock::Handle if p.status == PartStatus::Accepted => p.handle_due_at,
                        _ => None,
                    };
                    require_due(due, now)?;
                    if p.overdue {
                        return Err(TransitionError::Precondition("already overdue"));
                    }
                    p.overdue = true;
                } else if *clock == Clock::Handle
                    && self.status == InProgress
                    && self.lead.as_ref() == Some(unit)
                    && self.holder.as_ref() == Some(unit)
                {
                    require_due(self.handle_due_at, now)?;
                    if self.overdue {
                        return Err(TransitionError::Precondition("already overdue"));
                    }
                    s.overdue = true;
                } else {
                    return Err(not_your_turn(event, unit));
                }
            }
            Event::Warned { unit, clock } => {
                self.require_status(event, &[PendingAccept, InProgress])?;
                let holder_clock = match self.status {
                    PendingAccept => Clock::Accept,
                    _ => Clock::Handle,
                };
                let own = (self.holder.as_ref() == Some(unit) && *clock == holder_clock)
                    || self.part(unit).is_some_and(|p| {
                        matches!(
                            (p.status, clock),
                            (PartStatus::PendingAccept, Clock::Accept)
                                | (PartStatus::Accepted, Clock::Handle)
                        )
                    });
                if !own {
                    return Err(not_your_turn(event, unit));
                }
            }
            Event::Rejected { unit, reason } => {
                self.require_status(event, &[Reported, PendingAccept, InProgress])?;
                require_text("reason", reason)?;
                if !self.has_authority(unit) {
                    return Err(not_your_turn(event, unit));
                }
                s.status = CaseStatus::Rejected;
                s.holder = None;
                s.closed_at = Some(now);
            }
            Event::Merged { unit, into } => {
                self.require_status(event, &[Reported, PendingAccept, InProgress])?;
                if !self.has_authority(unit) {
                    return Err(not_your_turn(event, unit));
                }
                s.status = CaseStatus::Merged;
                s.merged_into = Some(*into);
                s.holder = None;
                s.closed_at = Some(now);
            }
            Event::Rated { score, .. } => {
                self.require_status(event, &[Closed])?;
                if !(1..=5).contains(score) {
                    return Err(TransitionError::Invalid {
                        field: "score",
                        reason: "must be 1 to 5",
                    });
                }
                if self.rating.is_some() {
                    return Err(TransitionError::Precondition("the case is already rated"));
                }
                s.rating = Some(*score);
            }
        }
        s.version += 1;
        Ok(s)
    }
}

fn not_your_turn(event: &Event, unit: &UnitCode) -> TransitionError {
    TransitionError::NotYourTurn {
        event: event.kind(),
        unit: unit.to_string(),
    }
}

fn require_text(field: &'static str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        Err(TransitionError::Invalid {
            field,
            reason: "must not be empty",
        })
    } else {
        Ok(())
    }
}

fn require_due(due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<()> {
    match due {
        Some(due) if now >= due => Ok(()),
        Some(_) => Err(TransitionError::Precondition(
            "the deadline has not passed yet",
        )),
        None => Err(TransitionError::Precondition("there is no such deadline")),
    }
}

fn check_tier(unit: &UnitCode, tier: Tier) -> Result<()> {
    if unit.tier() == Some(tier) {
        Ok(())
    } else {
        Err(TransitionError::Invalid {
            field: "tier",
            reason: "does not match the unit's tier",
        })
    }
}

fn check_move_up(from: Tier, to_unit: &UnitCode, to_tier: Tier) -> Result<()> {
    check_tier(to_unit, to_tier)?;
    if to_tier > from {
        Ok(())
    } else {
        Err(TransitionError::Invalid {
            field: "to_unit",
            reason: "must be at a higher tier",
        })
    }
}

mod clocks;

pub use clocks::micros;

#[cfg(test)]
mod tests;
