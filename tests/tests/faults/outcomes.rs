//! What became of the fault suite's accept clocks, read from the case events, and how late the
//! deadlines fired.

use std::sync::atomic::Ordering;

use griddispatch_tests::load::ConsoleStats;
use sqlx::PgPool;

/// What became of one case's first accept clock: at the unit the router gave it to.
#[derive(Debug)]
pub struct Outcome {
    case_id: String,
    /// Escalated away from that unit, warned for its accept clock, accepted by it.
    pub escalated: usize,
    warned: usize,
    pub accepted: usize,
}

pub async fn outcomes(pool: &PgPool, ids: &[String]) -> Vec<Outcome> {
    use domain::case::{Clock, Event};
    let mut out = Vec::new();
    for id in ids {
        let events: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT data FROM case_events WHERE case_id = $1::uuid ORDER BY version",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        let events: Vec<Event> = events
            .into_iter()
            .map(|e| serde_json::from_value(e).unwrap())
            .collect();
        // later tiers have clocks of their own, which may run out in a long run too
        let first = events.iter().find_map(|e| match e {
            Event::Routed { unit, .. } => Some(unit.clone()),
            _ => None,
        });
        let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        let at_first = |u: &domain::region::UnitCode| Some(u) == first.as_ref();
        out.push(Outcome {
            case_id: id.clone(),
            escalated: count(
                &|e| matches!(e, Event::Escalated { from_unit, .. } if at_first(from_unit)),
            ),
            warned: count(
                &|e| matches!(e, Event::Warned { unit, clock: Clock::Accept } if at_first(unit)),
            ),
            accepted: count(&|e| matches!(e, Event::Accepted { unit, .. } if at_first(unit))),
        });
    }
    out
}

/// Cases nobody accepted: each warned once and escalated once.
pub fn assert_escalated_once(out: &[Outcome]) {
    assert!(!out.is_empty());
    for o in out {
        assert!(
            o.escalated == 1 && o.warned == 1 && o.accepted == 0,
            "idle case {}: {o:?}",
            o.case_id
        );
    }
}

/// Cases accepted at their deadline, give or take: each warned once, then either accepted or
/// escalated, never both and never neither; and the race went both ways. Returns how many
/// escalated.
pub fn assert_raced(out: &[Outcome], consoles: &ConsoleStats) -> usize {
    for o in out {
        assert!(
            o.warned == 1 && o.escalated + o.accepted == 1,
            "late case {}: {o:?}",
            o.case_id
        );
    }
    let escalated = out.iter().filter(|o| o.escalated == 1).count();
    println!(
        "  late cases: {} accepted before their clock ran out, {escalated} escalated by it; \
         consoles saw {} accepts succeed and {} refused",
        out.len() - escalated,
        consoles.late_accepted.load(Ordering::Relaxed),
        consoles.late_refused.load(Ordering::Relaxed),
    );
    assert!(
        escalated > 0 && escalated < out.len(),
        "the accepts and the deadlines never raced both ways"
    );
    escalated
}

/// How late the deadlines fired, from the deadlines table.
pub async fn print_lateness(pool: &PgPool) {
    let lateness: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM fired_at - fire_at)::float8 FROM deadlines
          WHERE fired_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let p = |q: f64| {
        lateness
            .get(((lateness.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "  deadlines fired {}: lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lateness.len(),
        p(0.5) * 1e3,
        p(0.99) * 1e3,
        p(1.0) * 1e3
    );
}
