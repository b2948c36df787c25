//! Which of a case's clocks still run: the rule a deadline is checked against before it takes
//! effect. A deadline is armed and never cancelled (ADR 0009), so when it comes due the case
//! itself says whether the clock it was armed for is still running, with the same due time.

use chrono::{DateTime, Utc};

use super::{CaseState, Clock, PartStatus};
use crate::CaseStatus;
use crate::region::UnitCode;

/// `t` at microsecond precision: the record (PostgreSQL's `timestamptz`) keeps microseconds
/// while the case state keeps nanoseconds, so instants are compared at the coarser of the two.
#[must_use]
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound as _;
    t.trunc_subsecs(6)
}

impl CaseState {
    /// Whether `unit`'s `clock` still runs with the due time a deadline was armed for: the
    /// unit still holds that step (the lead or a joint part), nothing stopped the clock (the
    /// case closed, the step went overdue or was flagged), and the due time is the same.
    #[must_use]
    pub fn clock_running(&self, unit: &UnitCode, clock: Clock, due: DateTime<Utc>) -> bool {
        let due = micros(due);
        let same = |t: Option<DateTime<Utc>>| t.map(micros) == Some(due);
        if let Some(p) = self.parts.iter().find(|p| &p.unit == unit) {
            if self.status.is_terminal() || p.overdue {
                return false;
            }
            return match clock {
                Clock::Accept => {
                    p.status == PartStatus::PendingAccept && same(Some(p.accept_due_at))
                }
                Clock::Handle => p.status == PartStatus::Accepted && same(p.handle_due_at),
            };
        }
        match clock {
            Clock::Accept => {
                self.status == CaseStatus::PendingAccept
                    && self.holder.as_ref() == Some(unit)
                    && same(self.accept_due_at)
                    && !self.flagged
            }
            Clock::Handle => {
                self.status == CaseStatus::InProgress
                    && self.holder.as_ref() == Some(unit)
                    && self.lead.as_ref() == Some(unit)
                    && same(self.handle_due_at)
                    && !self.overdue
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::Tier;
    use crate::case::Event;

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
                admitted: true,
            },
            t0,
        )
        .unwrap();
        // PostgreSQL gives it back truncated to microseconds
        assert!(s.clock_running(&unit, Clock::Accept, micros(due)));
        assert!(!s.clock_running(
            &unit,
            Clock::Accept,
            micros(due) + chrono::Duration::microseconds(1)
        ));
    }
}
