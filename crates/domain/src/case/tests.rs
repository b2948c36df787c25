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
            admitted: true,
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
            photos: Vec::new(),
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
            into: CaseId::nil(),
            reason: String::new(),
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
            admitted: true,
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
            photos: Vec::new(),
            unit: u(HELP_A),
            note: "done".into(),
        },
        Event::ResultSubmitted {
            photos: Vec::new(),
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
            into: CaseId::nil(),
            reason: String::new(),
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

mod handling;
mod rules;
