//! Every event against every status: what is allowed, what is forbidden, and who may act.

use chrono::{Duration, TimeZone};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap()
}
fn at(min: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(min)
}
fn u(code: &str) -> UnitCode {
    UnitCode::parse(code).unwrap()
}

const GRID: &str = "360102001001001";
const COMMUNITY: &str = "360102001001";
const TOWNSHIP: &str = "360102001";
const COUNTY: &str = "360102";
const CITY: &str = "3601";
const LEAD: &str = "360102-CGJ";
const HELP_A: &str = "360102-ZJJ";
const HELP_B: &str = "360102-GAFJ";

fn reported() -> CaseState {
    CaseState::start(
        &Event::Reported {
            grid: u(GRID),
            self_handled: false,
        },
        t0(),
    )
    .unwrap()
}

fn step(s: &CaseState, e: &Event) -> CaseState {
    s.apply(e, at(1))
        .unwrap_or_else(|err| panic!("{} failed: {err}", e.kind()))
}

fn pending() -> CaseState {
    step(
        &reported(),
        &Event::Routed {
            unit: u(COMMUNITY),
            tier: Tier::Community,
            accept_due_at: at(60),
            reason: "severity GENERAL starts at COMMUNITY".into(),
        },
    )
}

fn in_progress() -> CaseState {
    step(
        &pending(),
        &Event::Accepted {
            unit: u(COMMUNITY),
            handle_due_at: at(600),
        },
    )
}

fn pending_verification() -> CaseState {
    step(
        &in_progress(),
        &Event::ResultSubmitted {
            unit: u(COMMUNITY),
            note: "cleared".into(),
        },
    )
}

fn closed() -> CaseState {
    step(
        &pending_verification(),
        &Event::Verified {
            unit: u(GRID),
            passed: true,
            note: String::new(),
            handle_due_at: None,
        },
    )
}

fn rejected() -> CaseState {
    step(
        &pending(),
        &Event::Rejected {
            unit: u(COMMUNITY),
            reason: "not a case".into(),
        },
    )
}

fn merged() -> CaseState {
    step(
        &pending(),
        &Event::Merged {
            unit: u(COMMUNITY),
            into: Uuid::nil(),
        },
    )
}

/// The case at the county, dispatched to a lead and two assisting departments.
fn dispatched() -> CaseState {
    let county = CaseState {
        tier: Tier::County,
        holder: Some(u(COUNTY)),
        ..in_progress()
    };
    step(
        &county,
        &Event::Dispatched {
            unit: u(COUNTY),
            lead: u(LEAD),
            lead_tier: Tier::County,
            assisting: vec![u(HELP_A), u(HELP_B)],
            accept_due_at: at(120),
            note: "joint handling".into(),
        },
    )
}

/// One event of each kind, shaped so that the actor is the right one for `s` wherever the
/// status allows the event at all. Times are late enough for every deadline to have passed
/// except the handling deadline used by extensions.
fn event_of_each_kind(s: &CaseState) -> Vec<Event> {
    let holder = s.holder.clone().unwrap_or_else(|| u(COMMUNITY));
    let lead = s.lead.clone().unwrap_or_else(|| holder.clone());
    vec![
        Event::Reported {
            grid: u(GRID),
            self_handled: false,
        },
        Event::Routed {
            unit: u(COMMUNITY),
            tier: Tier::Community,
            accept_due_at: at(60),
            reason: "policy".into(),
        },
        Event::Accepted {
            unit: holder.clone(),
            handle_due_at: at(600),
        },
        Event::CalledUp {
            unit: holder.clone(),
            reason: "beyond the community".into(),
            to_unit: u(TOWNSHIP),
            to_tier: Tier::Township,
            accept_due_at: at(120),
        },
        Event::Returned {
            unit: holder.clone(),
            reason: "not ours".into(),
            to_unit: Some(u(TOWNSHIP)),
            to_tier: Some(Tier::Township),
            accept_due_at: Some(at(120)),
        },
        Event::Dispatched {
            unit: holder.clone(),
            lead: u(LEAD),
            lead_tier: Tier::County,
            assisting: vec![u(HELP_A)],
            accept_due_at: at(120),
            note: String::new(),
        },
        Event::PartSubmitted {
            unit: u(HELP_A),
            note: "done".into(),
        },
        Event::ResultSubmitted {
            unit: lead.clone(),
            note: "done".into(),
        },
        Event::Verified {
            unit: u(GRID),
            passed: true,
            note: String::new(),
            handle_due_at: None,
        },
        Event::ExtensionRequested {
            unit: lead.clone(),
            until: at(2000),
            reason: "waiting for parts".into(),
            decider: u(TOWNSHIP),
        },
        Event::ExtensionDecided {
            unit: u(TOWNSHIP),
            approved: true,
            note: String::new(),
        },
        Event::Escalated {
            from_unit: holder.clone(),
            to_unit: u(TOWNSHIP),
            to_tier: Tier::Township,
            accept_due_at: at(2000),
        },
        Event::Flagged {
            unit: holder.clone(),
        },
        Event::Overdue {
            unit: lead,
            clock: Clock::Handle,
        },
        Event::Warned {
            unit: holder.clone(),
            clock: if s.status == CaseStatus::PendingAccept {
                Clock::Accept
            } else {
                Clock::Handle
            },
        },
        Event::Rejected {
            unit: holder.clone(),
            reason: "duplicate".into(),
        },
        Event::Merged {
            unit: holder,
            into: Uuid::nil(),
        },
        Event::Rated {
            score: 4,
            comment: String::new(),
        },
    ]
}

/// When the event is tried: after the accept deadlines (60, 120) so escalation is due, but
/// before the handling deadline (600) so an extension can still be asked for.
fn when(e: &Event) -> DateTime<Utc> {
    match e {
        Event::Overdue { .. } => at(700),
        _ => at(130),
    }
}

#[test]
fn every_event_against_every_status() {
    use CaseStatus::*;
    let states = [
        ("reported", reported()),
        ("pending", pending()),
        ("in_progress", in_progress()),
        ("pending_verification", pending_verification()),
        ("closed", closed()),
        ("rejected", rejected()),
        ("merged", merged()),
    ];
    // event kind -> statuses (of the fixtures above) that allow it
    let allowed: &[(&str, &[CaseStatus])] = &[
        ("reported", &[]),
        ("routed", &[Reported]),
        ("accepted", &[PendingAccept]),
        ("called_up", &[PendingAccept, InProgress]),
        ("returned", &[PendingAccept]),
        ("dispatched", &[PendingAccept, InProgress]),
        ("part_submitted", &[]), // no assisting parts in these fixtures
        ("result_submitted", &[InProgress]),
        ("verified", &[PendingVerification]),
        ("extension_requested", &[InProgress]),
        ("extension_decided", &[]), // nothing pending in these fixtures
        ("escalated", &[PendingAccept]),
        ("flagged", &[]), // below the top tier a case escalates instead
        ("overdue", &[InProgress]),
        ("warned", &[PendingAccept, InProgress]),
        ("rejected", &[Reported, PendingAccept, InProgress]),
        ("merged", &[Reported, PendingAccept, InProgress]),
        ("rated", &[Closed]),
    ];
    let mut checked = 0;
    for (name, s) in &states {
        let events = event_of_each_kind(s);
        assert_eq!(events.len(), allowed.len());
        for e in &events {
            let ok_statuses = allowed
                .iter()
                .find(|(k, _)| *k == e.kind())
                .unwrap_or_else(|| panic!("no row for {}", e.kind()))
                .1;
            let result = s.apply(e, when(e));
            let expect_ok = ok_statuses.contains(&s.status);
            assert_eq!(
                result.is_ok(),
                expect_ok,
                "{} on {name}: {result:?}",
                e.kind()
            );
            match result {
                Ok(next) => assert_eq!(next.version, s.version + 1),
                Err(err) if !expect_ok => {
                    // forbidden by status or by actor, never silently accepted
                    assert!(!err.to_string().is_empty());
                }
                Err(_) => unreachable!(),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 7 * 18);
}

#[test]
fn terminal_states_refuse_every_change_but_rating() {
    for s in [closed(), rejected(), merged()] {
        for e in event_of_each_kind(&s) {
            let r = s.apply(&e, at(5000));
            if e.kind() == "rated" && s.status == CaseStatus::Closed {
                assert!(r.is_ok());
            } else {
                assert!(r.is_err(), "{} on {}", e.kind(), s.status);
            }
        }
    }
}

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
            unit: u(HELP_A),
            note: "checked".into(),
        },
    );
    // HELP_B has not reported in: cannot submit, and the lead cannot finish
    assert!(
        d.apply(
            &Event::PartSubmitted {
                unit: u(HELP_B),
                note: "x".into()
            },
            at(2)
        )
        .is_err()
    );
    let fin = Event::ResultSubmitted {
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
            unit: u(HELP_B),
            note: "secured".into(),
        },
    );
    assert!(
        d.apply(
            &Event::PartSubmitted {
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
        },
        Event::Accepted {
            unit: u(COMMUNITY),
            handle_due_at: at(600),
        },
        Event::ResultSubmitted {
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
