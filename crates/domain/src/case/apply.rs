//! The transitions: which event is allowed in which state, by which unit, at what time, and the
//! state after it.

use chrono::{DateTime, Utc};

use super::{CaseState, Clock, Event, Extension, Part, PartStatus, Result, TransitionError};
use crate::region::UnitCode;
use crate::{CaseStatus, Tier};

impl CaseState {
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
            Event::PartSubmitted { unit, note, .. } => {
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
            Event::ResultSubmitted { unit, note, .. } => {
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
            Event::Merged { unit, into, .. } => {
                self.require_status(event, &[Reported, PendingAccept, InProgress])?;
                if !self.has_authority(unit) {
                    return Err(not_your_turn(event, unit));
                }
                s.status = CaseStatus::Merged;
                s.merged_into = Some(*into);
                s.holder = None;
                s.closed_at = Some(now);
            }
            Event::Repeated { into, .. } => {
                // only on arrival: the report's own case has not been routed yet
                self.require_status(event, &[Reported])?;
                if self.version != 1 {
                    return Err(TransitionError::Precondition(
                        "a report is linked as a repeat on arrival only",
                    ));
                }
                s.status = CaseStatus::Merged;
                s.merged_into = Some(*into);
                s.closed_at = Some(now);
            }
            Event::RepeatAdded { reports, .. } => {
                self.require_status(event, &[Reported, PendingAccept, InProgress])?;
                s.reports = self.reports.saturating_add(*reports);
            }
            Event::RepeatRemoved { reports, .. } => {
                s.reports = self.reports.saturating_sub(*reports).max(1);
            }
            Event::Split { reason, .. } => {
                self.require_status(event, &[CaseStatus::Merged])?;
                require_text("reason", reason)?;
                s.status = Reported;
                s.tier = Tier::Grid;
                s.holder = None;
                s.lead = None;
                s.dispatcher = None;
                s.parts.clear();
                s.accept_due_at = None;
                s.handle_due_at = None;
                s.extension = None;
                s.overdue = false;
                s.flagged = false;
                s.merged_into = None;
                s.closed_at = None;
            }
            Event::Recurred { .. } => {
                self.require_status(event, &[Reported, PendingAccept, InProgress])?;
                if self.recurred {
                    return Err(TransitionError::Precondition(
                        "recurrence has already acted on this case",
                    ));
                }
                s.recurred = true;
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

pub(super) fn not_your_turn(event: &Event, unit: &UnitCode) -> TransitionError {
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
