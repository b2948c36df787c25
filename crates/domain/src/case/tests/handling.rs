//! The state machine's rules for handling: joint handling, checks and rework, extensions,
//! returns, dispatch, voiding and merging, ratings, warnings, and replaying a log.

use super::*;

#[test]
fn joint_handling_needs_every_part_before_the_final_result() {
    let d = dispatched();
    assert_eq!(d.status, CaseStatus::PendingAccept);
    assert_eq!(d.holder, Some(u(LEAD)));
    assert_eq!(d.dispatcher, Some(u(COUNTY)));
    assert_eq!(d.assisting_units(), vec![u(HELP_A), u(HELP_B)]);
    assert_eq!(d.dispatch_count, 1);

    // assisting units report in independently, each starting its own clock
    let d = step(
        &d,
        &Event::Accepted {
            unit: u(HELP_A),
            handle_due_at: at(500),
        },
    );
    assert_eq!(
        d.status,
        CaseStatus::PendingAccept,
        "one report-in does not accept the case"
    );
    assert!(
        d.apply(
            &Event::Accepted {
                unit: u(HELP_A),
                handle_due_at: at(500)
            },
            at(2)
        )
        .is_err()
    );
    // HELP_B's accept clock still runs out on its own
    let late_b = d
        .apply(
            &Event::Overdue {
                unit: u(HELP_B),
                clock: Clock::Accept,
            },
            at(120),
        )
        .unwrap();
    assert!(late_b.parts[1].overdue && !late_b.parts[0].overdue);
    assert!(
        late_b
            .apply(
                &Event::Overdue {
                    unit: u(HELP_B),
                    clock: Clock::Accept
                },
                at(121)
            )
            .is_err()
    );

    let d = step(
        &d,
        &Event::Accepted {
            unit: u(LEAD),
            handle_due_at: at(900),
        },
    );
    assert_eq!(d.status, CaseStatus::InProgress);
    let d = step(
        &d,
        &Event::PartSubmitted {
            photos: Vec::new(),
            unit: u(HELP_A),
            note: "checked".into(),
        },
    );
    // HELP_B has not reported in: cannot submit, and the lead cannot finish
    assert!(
        d.apply(
            &Event::PartSubmitted {
                photos: Vec::new(),
                unit: u(HELP_B),
                note: "x".into()
            },
            at(2)
        )
        .is_err()
    );
    let fin = Event::ResultSubmitted {
        photos: Vec::new(),
        unit: u(LEAD),
        note: "done".into(),
    };
    assert!(matches!(
        d.apply(&fin, at(2)),
        Err(TransitionError::Precondition(_))
    ));
    let d = step(
        &d,
        &Event::Accepted {
            unit: u(HELP_B),
            handle_due_at: at(800),
        },
    );
    let d = step(
        &d,
        &Event::PartSubmitted {
            photos: Vec::new(),
            unit: u(HELP_B),
            note: "secured".into(),
        },
    );
    assert!(
        d.apply(
            &Event::PartSubmitted {
                photos: Vec::new(),
                unit: u(HELP_B),
                note: "x".into()
            },
            at(2)
        )
        .is_err()
    );
    // an assisting unit cannot submit the final result
    assert!(
        d.apply(
            &Event::ResultSubmitted {
                photos: Vec::new(),
                unit: u(HELP_A),
                note: "x".into()
            },
            at(2)
        )
        .is_err()
    );
    let d = step(&d, &fin);
    assert_eq!(d.status, CaseStatus::PendingVerification);
    assert_eq!(d.holder, Some(u(GRID)));
}

#[test]
fn failed_check_reworks_at_the_same_lead() {
    let pv = pending_verification();
    let fail = Event::Verified {
        unit: u(GRID),
        passed: false,
        note: "still there".into(),
        handle_due_at: Some(at(900)),
    };
    assert!(
        pv.apply(
            &Event::Verified {
                unit: u("360102001001002"),
                passed: true,
                note: String::new(),
                handle_due_at: None
            },
            at(2)
        )
        .is_err()
    );
    let no_note = Event::Verified {
        unit: u(GRID),
        passed: false,
        note: String::new(),
        handle_due_at: Some(at(900)),
    };
    assert!(pv.apply(&no_note, at(2)).is_err());
    let rw = step(&pv, &fail);
    assert_eq!(rw.status, CaseStatus::InProgress);
    assert_eq!(rw.holder, Some(u(COMMUNITY)));
    assert_eq!(rw.lead, Some(u(COMMUNITY)));
    assert_eq!(rw.rework_count, 1);
    assert_eq!(rw.handle_due_at, Some(at(900)));
}

#[test]
fn extensions_are_asked_and_approved_before_the_deadline() {
    let s = in_progress(); // handle due at(600)
    let ask = Event::ExtensionRequested {
        unit: u(COMMUNITY),
        until: at(1200),
        reason: "materials".into(),
        decider: u(TOWNSHIP),
    };
    assert!(s.apply(&ask, at(600)).is_err(), "too late to ask");
    let short = Event::ExtensionRequested {
        unit: u(COMMUNITY),
        until: at(500),
        reason: "materials".into(),
        decider: u(TOWNSHIP),
    };
    assert!(matches!(
        s.apply(&short, at(10)),
        Err(TransitionError::Invalid { field: "until", .. })
    ));
    let asked = s.apply(&ask, at(10)).unwrap();
    assert!(asked.apply(&ask, at(11)).is_err(), "one request at a time");
    let yes = Event::ExtensionDecided {
        unit: u(TOWNSHIP),
        approved: true,
        note: String::new(),
    };
    let wrong = Event::ExtensionDecided {
        unit: u("360102002"),
        approved: true,
        note: String::new(),
    };
    assert!(asked.apply(&wrong, at(12)).is_err());
    assert!(
        asked.apply(&yes, at(600)).is_err(),
        "approval after the deadline"
    );
    let ok = asked.apply(&yes, at(100)).unwrap();
    assert_eq!(ok.handle_due_at, Some(at(1200)));
    assert!(ok.extension.is_none());
    let no = Event::ExtensionDecided {
        unit: u(TOWNSHIP),
        approved: false,
        note: "no".into(),
    };
    let refused = asked.apply(&no, at(700)).unwrap();
    assert_eq!(refused.handle_due_at, Some(at(600)));
}

#[test]
fn returns_go_to_the_tier_above_and_are_counted() {
    let p = pending();
    let back = Event::Returned {
        unit: u(COMMUNITY),
        reason: "belongs to the next community".into(),
        to_unit: Some(u(TOWNSHIP)),
        to_tier: Some(Tier::Township),
        accept_due_at: Some(at(120)),
    };
    let r = step(&p, &back);
    assert_eq!(r.holder, Some(u(TOWNSHIP)));
    assert_eq!(r.return_count, 1);
    // an assisting unit returning drops only its part
    let d = dispatched();
    let part_back = Event::Returned {
        unit: u(HELP_B),
        reason: "not ours".into(),
        to_unit: None,
        to_tier: None,
        accept_due_at: None,
    };
    let d2 = step(&d, &part_back);
    assert_eq!(d2.assisting_units(), vec![u(HELP_A)]);
    assert_eq!(d2.holder, Some(u(LEAD)));
    assert!(d2.apply(&part_back, at(2)).is_err());
}

#[test]
fn dispatch_checks_its_units() {
    let s = CaseState {
        tier: Tier::County,
        holder: Some(u(COUNTY)),
        ..in_progress()
    };
    let mk = |lead: &str, assisting: &[&str]| Event::Dispatched {
        unit: u(COUNTY),
        lead: u(lead),
        lead_tier: u(lead).tier().unwrap(),
        assisting: assisting.iter().map(|a| u(a)).collect(),
        accept_due_at: at(120),
        note: String::new(),
    };
    assert!(
        s.apply(&mk(COUNTY, &[]), at(1)).is_err(),
        "lead is the dispatcher"
    );
    assert!(
        s.apply(&mk(LEAD, &[LEAD]), at(1)).is_err(),
        "lead also assisting"
    );
    assert!(
        s.apply(&mk(LEAD, &[HELP_A, HELP_A]), at(1)).is_err(),
        "duplicate"
    );
    // 下發: sending down to a community is a dispatch too
    let down = step(&s, &mk(COMMUNITY, &[]));
    assert_eq!(down.tier, Tier::Community);
    // a second dispatch elsewhere counts as a re-dispatch
    let again = CaseState {
        holder: Some(u(COUNTY)),
        tier: Tier::County,
        ..down
    };
    assert_eq!(step(&again, &mk(LEAD, &[])).dispatch_count, 2);
}

#[test]
fn authority_to_void_and_merge() {
    let p = pending(); // held by the community
    let by = |unit: &str| Event::Rejected {
        unit: u(unit),
        reason: "void".into(),
    };
    assert!(
        p.apply(&by(TOWNSHIP), at(1)).is_ok(),
        "the tier above may void"
    );
    assert!(
        p.apply(&by("360102002"), at(1)).is_err(),
        "another township may not"
    );
    assert!(p.apply(&by(LEAD), at(1)).is_err(), "a department may not");
    assert!(p.apply(&by(GRID), at(1)).is_err(), "the grid below may not");
    assert!(reported().apply(&by(COUNTY), at(1)).is_ok());
    assert!(
        p.apply(
            &Event::Rejected {
                unit: u(COMMUNITY),
                reason: String::new()
            },
            at(1)
        )
        .is_err()
    );
}

#[test]
fn ratings_are_one_to_five_once() {
    let c = closed();
    assert!(
        c.apply(
            &Event::Rated {
                score: 0,
                comment: String::new()
            },
            at(1)
        )
        .is_err()
    );
    assert!(
        c.apply(
            &Event::Rated {
                score: 6,
                comment: String::new()
            },
            at(1)
        )
        .is_err()
    );
    let r = step(
        &c,
        &Event::Rated {
            score: 2,
            comment: "slow".into(),
        },
    );
    assert_eq!(r.rating, Some(2));
    assert!(
        r.apply(
            &Event::Rated {
                score: 5,
                comment: String::new()
            },
            at(1)
        )
        .is_err()
    );
}

#[test]
fn warnings_only_for_running_clocks() {
    let p = pending();
    assert!(
        p.apply(
            &Event::Warned {
                unit: u(COMMUNITY),
                clock: Clock::Handle
            },
            at(1)
        )
        .is_err()
    );
    assert!(
        p.apply(
            &Event::Warned {
                unit: u(COMMUNITY),
                clock: Clock::Accept
            },
            at(1)
        )
        .is_ok()
    );
    let d = dispatched();
    assert!(
        d.apply(
            &Event::Warned {
                unit: u(HELP_A),
                clock: Clock::Accept
            },
            at(1)
        )
        .is_ok()
    );
    assert!(
        d.apply(
            &Event::Warned {
                unit: u(HELP_A),
                clock: Clock::Handle
            },
            at(1)
        )
        .is_err()
    );
}

#[test]
fn replay_folds_the_log_and_events_round_trip_as_json() {
    let log = vec![
        Event::Reported {
            grid: u(GRID),
            self_handled: false,
        },
        Event::Routed {
            unit: u(COMMUNITY),
            tier: Tier::Community,
            accept_due_at: at(60),
            reason: "r".into(),
            admitted: true,
        },
        Event::Accepted {
            unit: u(COMMUNITY),
            handle_due_at: at(600),
        },
        Event::ResultSubmitted {
            photos: Vec::new(),
            unit: u(COMMUNITY),
            note: "n".into(),
        },
        Event::Verified {
            unit: u(GRID),
            passed: true,
            note: String::new(),
            handle_due_at: None,
        },
        Event::Rated {
            score: 5,
            comment: String::new(),
        },
    ];
    let s = CaseState::replay(log.iter().map(|e| (e, at(1))))
        .unwrap()
        .unwrap();
    assert_eq!(s.version, 6);
    assert_eq!(s.rating, Some(5));
    for e in &log {
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["type"], e.kind());
        assert_eq!(&serde_json::from_value::<Event>(json).unwrap(), e);
    }
    let state_json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<CaseState>(&state_json).unwrap(), s);
}
