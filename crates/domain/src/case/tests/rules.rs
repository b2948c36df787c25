//! The state machine's rules for a case's start, acceptance, routing, calling up and
//! escalation. The table of every event against every status is in the parent module.

use super::*;

#[test]
fn self_handled_report_is_closed_at_once() {
    let s = CaseState::start(
        &Event::Reported {
            grid: u(GRID),
            self_handled: true,
        },
        t0(),
    )
    .unwrap();
    assert_eq!(s.status, CaseStatus::Closed);
    assert!(s.self_handled);
    assert_eq!(s.lead, Some(u(GRID)));
    assert_eq!(s.closed_at, Some(t0()));
    assert!(
        step(
            &s,
            &Event::Rated {
                score: 5,
                comment: String::new()
            }
        )
        .rating
            == Some(5)
    );
}

#[test]
fn a_case_starts_only_with_a_report_from_a_grid() {
    assert!(CaseState::start(&Event::Flagged { unit: u(GRID) }, t0()).is_err());
    assert!(
        CaseState::start(
            &Event::Reported {
                grid: u(COMMUNITY),
                self_handled: false
            },
            t0()
        )
        .is_err()
    );
}

#[test]
fn only_the_holder_accepts_and_only_once() {
    let p = pending();
    let other = Event::Accepted {
        unit: u("360102001002"),
        handle_due_at: at(600),
    };
    assert!(matches!(
        p.apply(&other, at(1)),
        Err(TransitionError::NotYourTurn { .. })
    ));
    let s = in_progress();
    let again = Event::Accepted {
        unit: u(COMMUNITY),
        handle_due_at: at(600),
    };
    assert!(matches!(
        s.apply(&again, at(2)),
        Err(TransitionError::Precondition(_))
    ));
}

#[test]
fn routing_must_stay_above_the_grid() {
    let e = Event::Routed {
        unit: u("360102002001"),
        tier: Tier::Community,
        accept_due_at: at(60),
        reason: String::new(),
        admitted: true,
    };
    assert!(matches!(
        reported().apply(&e, at(0)),
        Err(TransitionError::Invalid { .. })
    ));
    let wrong_tier = Event::Routed {
        unit: u(COMMUNITY),
        tier: Tier::Township,
        accept_due_at: at(60),
        reason: String::new(),
        admitted: true,
    };
    assert!(reported().apply(&wrong_tier, at(0)).is_err());
}

#[test]
fn call_up_goes_up_with_a_reason() {
    let s = in_progress();
    let mut e = Event::CalledUp {
        unit: u(COMMUNITY),
        reason: " ".into(),
        to_unit: u(TOWNSHIP),
        to_tier: Tier::Township,
        accept_due_at: at(120),
    };
    assert!(matches!(
        s.apply(&e, at(2)),
        Err(TransitionError::Invalid {
            field: "reason",
            ..
        })
    ));
    if let Event::CalledUp { reason, .. } = &mut e {
        *reason = "needs the street".into();
    }
    let up = step(&s, &e);
    assert_eq!(up.status, CaseStatus::PendingAccept);
    assert_eq!(up.holder, Some(u(TOWNSHIP)));
    assert_eq!(up.tier, Tier::Township);
    assert_eq!(up.lead, None);
    let down = Event::CalledUp {
        unit: u(TOWNSHIP),
        reason: "x".into(),
        to_unit: u(COMMUNITY),
        to_tier: Tier::Community,
        accept_due_at: at(120),
    };
    assert!(up.apply(&down, at(3)).is_err());
}

#[test]
fn escalation_waits_for_the_deadline_and_moves_up_once() {
    let p = pending();
    let e = Event::Escalated {
        from_unit: u(COMMUNITY),
        to_unit: u(TOWNSHIP),
        to_tier: Tier::Township,
        accept_due_at: at(200),
    };
    assert!(matches!(
        p.apply(&e, at(59)),
        Err(TransitionError::Precondition(_))
    ));
    let up = p.apply(&e, at(60)).unwrap();
    assert_eq!(up.holder, Some(u(TOWNSHIP)));
    assert_eq!(up.escalation_count, 1);
    // the same timer firing again is stale: the community no longer holds the case
    assert!(matches!(
        up.apply(&e, at(61)),
        Err(TransitionError::NotYourTurn { .. })
    ));
    // and an accepted case never escalates
    assert!(in_progress().apply(&e, at(61)).is_err());
}

#[test]
fn top_tier_is_flagged_not_escalated() {
    let at_city = CaseState {
        tier: Tier::City,
        holder: Some(u(CITY)),
        ..pending()
    };
    let f = Event::Flagged { unit: u(CITY) };
    assert!(at_city.apply(&f, at(59)).is_err());
    let flagged = at_city.apply(&f, at(60)).unwrap();
    assert!(flagged.flagged && flagged.overdue);
    assert_eq!(flagged.status, CaseStatus::PendingAccept);
    assert!(flagged.apply(&f, at(61)).is_err(), "flagged once");
    // accepting later clears the flag
    let acc = flagged
        .apply(
            &Event::Accepted {
                unit: u(CITY),
                handle_due_at: at(900),
            },
            at(70),
        )
        .unwrap();
    assert!(!acc.flagged && !acc.overdue);
}
