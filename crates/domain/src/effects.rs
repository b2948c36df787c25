//! What a transition means outside the case row: the assignments each unit holds, and the
//! items that must appear in (or leave) units' inboxes. Derived from states, so that every
//! command and timer produces them the same way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::CaseStatus;
use crate::case::{CaseState, Event, PartStatus};
use crate::region::UnitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// The unit that must accept or handle the case at its tier.
    Holder,
    /// The lead of a joint handling (主辦).
    Lead,
    /// An assisting unit (協辦).
    Assisting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignmentStatus {
    PendingAccept,
    Accepted,
    Submitted,
    Ended,
}

impl AssignmentStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStatus::PendingAccept => "PENDING_ACCEPT",
            AssignmentStatus::Accepted => "ACCEPTED",
            AssignmentStatus::Submitted => "SUBMITTED",
            AssignmentStatus::Ended => "ENDED",
        }
    }
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Holder => "HOLDER",
            Role::Lead => "LEAD",
            Role::Assisting => "ASSISTING",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::Holder, Role::Lead, Role::Assisting]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| crate::UnknownName {
                kind: "Role",
                name: s.to_owned(),
            })
    }
}

impl std::str::FromStr for AssignmentStatus {
    type Err = crate::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            AssignmentStatus::PendingAccept,
            AssignmentStatus::Accepted,
            AssignmentStatus::Submitted,
            AssignmentStatus::Ended,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| crate::UnknownName {
            kind: "AssignmentStatus",
            name: s.to_owned(),
        })
    }
}

/// An assignment the case should have open now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAssignment {
    pub unit: UnitCode,
    pub role: Role,
    pub status: AssignmentStatus,
    pub accept_due_at: Option<DateTime<Utc>>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub overdue: bool,
}

/// The assignments open in `s`: the holder (or dispatched lead) and every assisting part.
#[must_use]
pub fn open_assignments(s: &CaseState) -> Vec<OpenAssignment> {
    let mut out = Vec::new();
    let worker = match s.status {
        CaseStatus::PendingAccept | CaseStatus::InProgress => s.holder.clone(),
        CaseStatus::PendingVerification => s.lead.clone(),
        _ => None,
    };
    if let Some(unit) = worker {
        let role = if s.dispatcher.is_some() {
            Role::Lead
        } else {
            Role::Holder
        };
        let status = match s.status {
            CaseStatus::PendingAccept => AssignmentStatus::PendingAccept,
            CaseStatus::InProgress => AssignmentStatus::Accepted,
            _ => AssignmentStatus::Submitted,
        };
        out.push(OpenAssignment {
            unit,
            role,
            status,
            accept_due_at: s.accept_due_at,
            handle_due_at: s.handle_due_at,
            overdue: s.overdue,
        });
    }
    if !s.status.is_terminal() {
        for p in &s.parts {
            out.push(OpenAssignment {
                unit: p.unit.clone(),
                role: Role::Assisting,
                status: match p.status {
                    PartStatus::PendingAccept => AssignmentStatus::PendingAccept,
                    PartStatus::Accepted => AssignmentStatus::Accepted,
                    PartStatus::Submitted => AssignmentStatus::Submitted,
                },
                accept_due_at: Some(p.accept_due_at),
                handle_due_at: p.handle_due_at,
                overdue: p.overdue,
            });
        }
    }
    out
}

/// Units with something to accept in `s`.
fn pending_units(s: &CaseState) -> Vec<UnitCode> {
    open_assignments(s)
        .into_iter()
        .filter(|a| a.status == AssignmentStatus::PendingAccept)
        .map(|a| a.unit)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ItemKind {
    /// The case waits for this unit to accept.
    ToAccept,
    /// 督辦: a unit below this one let a deadline pass.
    Supervise,
    /// 80 % of one of this unit's limits has passed.
    Warning,
    /// Something this unit had pending is no longer pending for it.
    Withdrawn,
    /// The case came back to this unit for rework.
    Rework,
}

/// An inbox item a transition produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub unit: UnitCode,
    pub kind: ItemKind,
}

/// The inbox items the transition `old` → `new` by `event` produces.
#[must_use]
pub fn inbox_items(old: &CaseState, new: &CaseState, event: &Event) -> Vec<InboxItem> {
    let before = pending_units(old);
    let after = pending_units(new);
    let mut items: Vec<InboxItem> = after
        .iter()
        .filter(|u| !before.contains(u))
        .map(|u| InboxItem {
            unit: u.clone(),
            kind: ItemKind::ToAccept,
        })
        .collect();
    items.extend(
        before
            .iter()
            .filter(|u| !after.contains(u))
            .map(|u| InboxItem {
                unit: u.clone(),
                kind: ItemKind::Withdrawn,
            }),
    );
    match event {
        Event::Overdue { unit, .. } => {
            let supervisor = if new.parts.iter().any(|p| &p.unit == unit)
                || new.lead.as_ref() == Some(unit) && new.dispatcher.is_some()
            {
                new.dispatcher.clone()
            } else {
                unit.parent()
            };
            if let Some(s) = supervisor {
                items.push(InboxItem {
                    unit: s,
                    kind: ItemKind::Supervise,
                });
            }
        }
        Event::Flagged { unit } => items.push(InboxItem {
            unit: unit.clone(),
            kind: ItemKind::Supervise,
        }),
        Event::Warned { unit, .. } => items.push(InboxItem {
            unit: unit.clone(),
            kind: ItemKind::Warning,
        }),
        Event::Verified { passed: false, .. } => {
            if let Some(lead) = &new.lead {
                items.push(InboxItem {
                    unit: lead.clone(),
                    kind: ItemKind::Rework,
                });
            }
        }
        _ => {}
    }
    items
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::Tier;

    fn u(c: &str) -> UnitCode {
        UnitCode::parse(c).unwrap()
    }
    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap() + chrono::Duration::minutes(m)
    }

    #[test]
    fn items_follow_the_case_through_its_holders() {
        let s0 = CaseState::start(
            &Event::Reported {
                grid: u("360102001001001"),
                self_handled: false,
            },
            t(0),
        )
        .unwrap();
        let routed = Event::Routed {
            unit: u("360102001001"),
            tier: Tier::Community,
            accept_due_at: t(60),
            reason: String::new(),
            admitted: true,
        };
        let s1 = s0.apply(&routed, t(0)).unwrap();
        assert_eq!(
            inbox_items(&s0, &s1, &routed),
            vec![InboxItem {
                unit: u("360102001001"),
                kind: ItemKind::ToAccept
            }]
        );
        assert_eq!(open_assignments(&s1).len(), 1);
        let esc = Event::Escalated {
            from_unit: u("360102001001"),
            to_unit: u("360102001"),
            to_tier: Tier::Township,
            accept_due_at: t(120),
        };
        let s2 = s1.apply(&esc, t(60)).unwrap();
        let items = inbox_items(&s1, &s2, &esc);
        assert!(items.contains(&InboxItem {
            unit: u("360102001"),
            kind: ItemKind::ToAccept
        }));
        assert!(items.contains(&InboxItem {
            unit: u("360102001001"),
            kind: ItemKind::Withdrawn
        }));
        let acc = Event::Accepted {
            unit: u("360102001"),
            handle_due_at: t(600),
        };
        let s3 = s2.apply(&acc, t(61)).unwrap();
        assert_eq!(
            inbox_items(&s2, &s3, &acc),
            vec![InboxItem {
                unit: u("360102001"),
                kind: ItemKind::Withdrawn
            }]
        );
        let a = open_assignments(&s3);
        assert_eq!(a[0].status, AssignmentStatus::Accepted);
        assert_eq!(a[0].handle_due_at, Some(t(600)));
        let od = Event::Overdue {
            unit: u("360102001"),
            clock: crate::case::Clock::Handle,
        };
        let s4 = s3.apply(&od, t(600)).unwrap();
        assert_eq!(
            inbox_items(&s3, &s4, &od),
            vec![InboxItem {
                unit: u("360102"),
                kind: ItemKind::Supervise
            }],
            "the tier above supervises"
        );
    }
}
