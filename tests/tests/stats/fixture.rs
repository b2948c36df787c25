//! The GetStats tests' fixture: seven cases driven through the API on a clock set to known
//! instants, in and around the week the tests ask about.

use chrono::{DateTime, Duration, FixedOffset, TimeZone as _, Utc};
use griddispatch_tests::*;
use proto::v1;
use server::clock::Clock as _;

use super::{C1, C2, CGJ, G1, G2, T1, ZJJ};

/// A local (UTC+8) time in 2027: 1 March is a Monday, 26 February the Friday before. The
/// sample county's calendar works 08:30-12:00 and 14:00-17:30 on weekdays (420 minutes).
fn local(month: u32, day: u32, h: u32, m: u32) -> DateTime<Utc> {
    FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(2027, month, day, h, m, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// The period asked for: Monday 1 March 00:00 to Saturday 6 March 00:00.
pub fn period() -> (DateTime<Utc>, DateTime<Utc>) {
    (local(3, 1, 0, 0), local(3, 6, 0, 0))
}

/// Drives the fixture's cases. Each step sets the server clock to its instant plus 2 s per
/// step taken, so every event is recorded a little after the one before (the router's and
/// the timers' included): waits are whole working minutes, rounded down, and 2 s steps keep
/// each measured span a few seconds over its whole minutes, never under.
struct Script<'a> {
    s: &'a TestServer,
    step: i64,
}

impl Script<'_> {
    fn at(&mut self, t: DateTime<Utc>) {
        self.step += 1;
        let target = t + Duration::seconds(2 * self.step);
        self.s.advance(target - self.s.clock.now());
    }

    async fn report(&self, grid: &str, self_handled: bool) -> String {
        let mut req = report(grid, "0101", "邻里纠纷");
        req.self_handled = self_handled;
        let case = self
            .s
            .worker(grid)
            .report_event(req)
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        let id = case.case_id;
        if !self_handled {
            self.s
                .eventually(10, "the case is routed", || async {
                    self.s.case_row(&id).await.0 == "PENDING_ACCEPT"
                })
                .await;
        }
        id
    }

    async fn accept(&self, id: &str, unit: &str) {
        self.s
            .escalation(TestServer::staff(unit))
            .accept(v1::AcceptRequest {
                case_id: id.into(),
                unit_code: unit.into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }

    async fn call_up(&self, id: &str, unit: &str) {
        self.s
            .escalation(TestServer::staff(unit))
            .call_up(v1::CallUpRequest {
                case_id: id.into(),
                unit_code: unit.into(),
                reason: "涉及多方，需街道协调".into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }

    async fn dispatch(&self, id: &str, by: &str, lead: &str) {
        self.s
            .escalation(TestServer::staff(by))
            .dispatch(v1::DispatchRequest {
                case_id: id.into(),
                unit_code: by.into(),
                lead_unit: lead.into(),
                assisting_units: vec![],
                note: "请牵头处置".into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }

    async fn give_back(&self, id: &str, unit: &str) {
        self.s
            .escalation(TestServer::staff(unit))
            .r#return(v1::ReturnRequest {
                case_id: id.into(),
                unit_code: unit.into(),
                reason: "不属本单位职责".into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }

    async fn submit(&self, id: &str, unit: &str) {
        self.s
            .handling(TestServer::staff(unit))
            .submit_result(v1::SubmitResultRequest {
                case_id: id.into(),
                unit_code: unit.into(),
                note: "已调解".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn verify(&self, id: &str, grid: &str, passed: bool) {
        self.s
            .worker(grid)
            .verify_case(v1::VerifyCaseRequest {
                case_id: id.into(),
                passed,
                note: if passed { "" } else { "仍有争执" }.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn rate(&self, id: &str, grid: &str, score: u32) {
        self.s
            .worker(grid)
            .rate_case(v1::RateCaseRequest {
                case_id: id.into(),
                score,
                comment: String::new(),
            })
            .await
            .unwrap();
    }

    async fn wait_overdue(&self, id: &str) {
        self.s
            .eventually(10, "the handling clock runs out", || async {
                self.s
                    .get_case(id)
                    .await
                    .events
                    .iter()
                    .any(|e| e.event_type == "overdue")
            })
            .await;
    }
}

/// Cases (all category 0101: accept within 60, handle within 1260 working minutes):
///
/// - H (G2): reported Mon 22 Feb, accepted by C2, overdue Thu 25 Feb; nothing after. Counts
///   only as overdue and not closed at the end: found through its old `overdue` event.
/// - A (G1): reported Fri 26 Feb, accepted by C1 then (before the period). In the period:
///   result, failed check (rework), second result, passing check, rated 5.
/// - B (G1): C1 calls up T1; T1 dispatches to CGJ, which returns it; T1 dispatches to ZJJ (a
///   re-dispatch to another lead); ZJJ accepts, submits; check passes; rated 2.
/// - C (G2): C2 accepts; overdue Thu 4 Mar; open at the end.
/// - E (G1): C1 accepts; overdue Thu 4 Mar; result after that; closed Fri 5 Mar, late.
/// - D (G2): self-handled Tue 2 Mar, rated 4.
/// - G (G1): reported and accepted Fri 5 Mar; its result on Mon 8 Mar is after the period.
pub async fn drive_fixture(s: &TestServer) {
    let mut x = Script { s, step: 0 };
    // H
    x.at(local(2, 22, 9, 0));
    let h = x.report(G2, false).await;
    x.at(local(2, 22, 9, 20));
    x.accept(&h, C2).await;
    x.at(local(2, 25, 10, 0));
    x.wait_overdue(&h).await;
    // A, before the period
    x.at(local(2, 26, 9, 0));
    let a = x.report(G1, false).await;
    x.at(local(2, 26, 9, 40));
    x.accept(&a, C1).await;
    // Monday 1 March
    x.at(local(3, 1, 9, 0));
    x.submit(&a, C1).await;
    x.at(local(3, 1, 9, 5));
    let b = x.report(G1, false).await;
    x.at(local(3, 1, 9, 10));
    let c = x.report(G2, false).await;
    x.at(local(3, 1, 9, 20));
    x.accept(&c, C2).await;
    x.at(local(3, 1, 9, 30));
    x.call_up(&b, C1).await;
    x.at(local(3, 1, 10, 0));
    x.verify(&a, G1, false).await;
    x.at(local(3, 1, 10, 5));
    x.dispatch(&b, T1, CGJ).await;
    x.at(local(3, 1, 10, 30));
    x.give_back(&b, CGJ).await;
    x.at(local(3, 1, 11, 0));
    x.submit(&a, C1).await;
    x.at(local(3, 1, 11, 5));
    x.dispatch(&b, T1, ZJJ).await;
    x.at(local(3, 1, 11, 35));
    x.accept(&b, ZJJ).await;
    x.at(local(3, 1, 14, 10));
    let e = x.report(G1, false).await;
    x.at(local(3, 1, 14, 40));
    x.accept(&e, C1).await;
    x.at(local(3, 1, 15, 0));
    x.verify(&a, G1, true).await;
    x.at(local(3, 1, 15, 5));
    x.submit(&b, ZJJ).await;
    x.at(local(3, 1, 16, 0));
    x.rate(&a, G1, 5).await;
    x.at(local(3, 1, 16, 5));
    x.verify(&b, G1, true).await;
    x.at(local(3, 1, 16, 35));
    x.rate(&b, G1, 2).await;
    // Tuesday
    x.at(local(3, 2, 9, 0));
    let d = x.report(G2, true).await;
    x.at(local(3, 2, 9, 30));
    x.rate(&d, G2, 4).await;
    // Thursday: C's clock (due Thu 09:20) and then E's (due Thu 14:40) run out
    x.at(local(3, 4, 10, 0));
    x.wait_overdue(&c).await;
    x.at(local(3, 4, 15, 0));
    x.wait_overdue(&e).await;
    x.at(local(3, 4, 16, 0));
    x.submit(&e, C1).await;
    // Friday
    x.at(local(3, 5, 9, 0));
    x.verify(&e, G1, true).await;
    x.at(local(3, 5, 10, 0));
    let g = x.report(G1, false).await;
    x.at(local(3, 5, 10, 20));
    x.accept(&g, C1).await;
    // after the period
    x.at(local(3, 8, 9, 0));
    x.submit(&g, C1).await;
    // no clock ran out that the fixture did not mean to
    for id in [&h, &a, &b, &c, &d, &e, &g] {
        let kinds: Vec<String> = s
            .get_case(id)
            .await
            .events
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert!(
            !kinds.iter().any(|k| k == "escalated" || k == "flagged"),
            "{id}: {kinds:?}"
        );
    }
}
