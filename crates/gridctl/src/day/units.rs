//! The units of the day: each acts on what its console shows (`ListCases`, `GetCase`), with a
//! token of its own role and unit, as the plan's chances say; and the tally the display shows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use proto::{convert, v1};
use server::auth::Role;
use server::clock::ScaledClock;
use tokio::sync::{Mutex, Semaphore};

use super::plan::{Planned, Source, chance, pick};
use super::{COUNTY, DayArgs};
use crate::Conn;

/// What the day counted, for the display and the summary.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) reported: [AtomicU64; 3],
    pub(super) settled: AtomicU64,
    /// Reports linked to an open case as repeats.
    pub(super) repeats: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) called_up: AtomicU64,
    pub(super) dispatched: AtomicU64,
    pub(super) results: AtomicU64,
    pub(super) reworked: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) rated: AtomicU64,
    pub(super) escalated_by_clock: AtomicU64,
    pub(super) calls: AtomicU64,
    pub(super) raced: AtomicU64,
    pub(super) errors: AtomicU64,
}

pub(super) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The open cases as the last look saw them, per stage.
#[derive(Default, Clone)]
pub(super) struct Board {
    pub(super) waiting: BTreeMap<&'static str, u64>,
    pub(super) handling: u64,
    pub(super) checking: u64,
    pub(super) overdue: u64,
}

pub(super) struct Day {
    pub(super) conn: Conn,
    pub(super) args: DayArgs,
    pub(super) clock: ScaledClock,
    pub(super) tally: Tally,
    /// Cases a unit is acting on, with the version it acts on.
    pub(super) acting: Mutex<HashMap<String, u64>>,
    /// Each case's tier and holder when last seen, and whether a unit moved it up.
    pub(super) seen: Mutex<HashMap<String, (i32, String)>>,
    pub(super) moved_up: Mutex<HashSet<String>>,
    /// Lead and assisting departments by category, as the county's policy says.
    pub(super) routes: Mutex<HashMap<String, (String, Vec<String>)>>,
    pub(super) board: Mutex<Board>,
    pub(super) calls: Semaphore,
}

/// How a call ended, for the tally.
fn count<T>(day: &Day, r: Result<T, tonic::Status>) -> Option<T> {
    inc(&day.tally.calls);
    match r {
        Ok(v) => Some(v),
        // the case moved on meanwhile (its clock ran out, another unit acted): as at a
        // real console, the unit finds out and moves on
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::FailedPrecondition | tonic::Code::Aborted | tonic::Code::NotFound
            ) =>
        {
            if day.args.verbose {
                eprintln!("moved on: {}", crate::demo::describe(&s));
            }
            inc(&day.tally.raced);
            None
        }
        Err(s) => {
            inc(&day.tally.errors);
            tracing::debug!(error = %crate::demo::describe(&s), "a call of the day failed");
            None
        }
    }
}

impl Day {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.at(Utc::now())
    }

    /// Waits `minutes` of the day's time.
    pub(super) async fn pass(&self, minutes: f64) {
        let real = std::time::Duration::from_secs_f64((minutes * 60.0 / self.clock.speed).max(0.0));
        tokio::time::sleep(real).await;
    }

    pub(super) fn staff(&self, unit: &str) -> anyhow::Result<crate::Auth> {
        let role = if unit.contains('-') || unit.len() == 12 {
            Role::UnitStaff
        } else {
            Role::Dispatcher
        };
        self.conn.auth_as(role, unit, &format!("staff-{unit}"))
    }

    pub(super) async fn report(self: Arc<Self>, p: Planned) -> anyhow::Result<()> {
        let _permit = self.calls.acquire().await?;
        let occurred = self.now() - Duration::minutes(5);
        let mut req = v1::ReportEventRequest {
            idempotency_key: uuid::Uuid::now_v7().to_string(),
            category: p.category.clone(),
            title: p.title.clone(),
            description: format!("{}（第 {} 件）", p.title, p.n + 1),
            location: Some(v1::Location {
                lat: p.point.0,
                lon: p.point.1,
                crs: v1::Crs::Wgs84.into(),
            }),
            occurred_at: Some(convert::timestamp(occurred)),
            ..Default::default()
        };
        let auth = match p.source {
            Source::GridWorker => {
                req.grid_code.clone_from(&p.grid);
                req.self_handled = p.self_handled;
                req.source = v1::ReportSource::GridWorker.into();
                self.conn
                    .auth_as(Role::GridWorker, &p.grid, &format!("worker-{}", p.grid))?
            }
            Source::Resident => {
                req.source = v1::ReportSource::Resident.into();
                self.conn.auth_as(Role::Intake, COUNTY, "resident-app")?
            }
            Source::Hotline => {
                req.source = v1::ReportSource::Hotline12345.into();
                req.source_ref = format!("12345-{}-{:05}", self.args.seed, p.n);
                self.conn.auth_as(Role::Intake, COUNTY, "hotline-12345")?
            }
        };
        let r = self.conn.reporting(auth).report_event(req).await;
        if let Some(r) = count(&self, r) {
            inc(&self.tally.reported[p.source as usize]);
            if p.self_handled {
                inc(&self.tally.settled);
            }
            if r.into_inner()
                .case
                .is_some_and(|c| !c.merged_into.is_empty())
            {
                inc(&self.tally.repeats);
            }
        }
        Ok(())
    }

    /// One look at the county's open cases: each unit acts on what waits for it.
    pub(super) async fn look(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut console = self.conn.console(self.conn.auth_as(
            Role::Dispatcher,
            COUNTY,
            "county-board",
        )?);
        let mut cases = Vec::new();
        let mut page_token = String::new();
        loop {
            let r = console
                .list_cases(v1::ListCasesRequest {
                    region_code: COUNTY.into(),
                    statuses: vec![
                        v1::CaseStatus::PendingAccept.into(),
                        v1::CaseStatus::InProgress.into(),
                        v1::CaseStatus::PendingVerification.into(),
                    ],
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await;
            let Some(r) = count(self, r) else { break };
            let r = r.into_inner();
            cases.extend(r.cases);
            if r.next_page_token.is_empty() {
                break;
            }
            page_token = r.next_page_token;
        }
        let mut board = Board::default();
        for c in &cases {
            match c.status() {
                v1::CaseStatus::PendingAccept => {
                    let at = if c.holder_unit.contains('-') {
                        "departments"
                    } else {
                        match c.tier() {
                            v1::Tier::Community => "community",
                            v1::Tier::Township => "township",
                            _ => "county",
                        }
                    };
                    *board.waiting.entry(at).or_default() += 1;
                }
                v1::CaseStatus::InProgress => board.handling += 1,
                v1::CaseStatus::PendingVerification => board.checking += 1,
                _ => {}
            }
            if c.overdue {
                board.overdue += 1;
            }
            self.note_escalation(c).await;
        }
        *self.board.lock().await = board;
        for c in cases {
            let mut acting = self.acting.lock().await;
            if acting.get(&c.case_id) == Some(&c.version) {
                continue;
            }
            acting.insert(c.case_id.clone(), c.version);
            drop(acting);
            let day = self.clone();
            tokio::spawn(async move {
                if let Err(e) = day.act(&c).await {
                    tracing::debug!(error = %e, "a unit's action failed");
                }
            });
        }
        Ok(())
    }

    /// A case that went a tier up without a unit calling it up went by its clock.
    pub(super) async fn note_escalation(&self, c: &v1::Case) {
        let mut seen = self.seen.lock().await;
        let now = (c.tier, c.holder_unit.clone());
        // a tier's own unit now holds it (a dispatch hands it to departments instead)
        if let Some((tier, _)) = seen.get(&c.case_id)
            && c.tier > *tier
            && c.status() == v1::CaseStatus::PendingAccept
            && c.lead_unit.is_empty()
            && !c.holder_unit.contains('-')
            && !self.moved_up.lock().await.remove(&c.case_id)
        {
            inc(&self.tally.escalated_by_clock);
        }
        seen.insert(c.case_id.clone(), now);
    }

    /// What the unit the case waits on does with it, as the plan says.
    pub(super) async fn act(self: Arc<Self>, c: &v1::Case) -> anyhow::Result<()> {
        let r = |what: &str| chance(self.args.seed, &format!("{}:{what}", c.case_number));
        let id = c.case_id.clone();
        match c.status() {
            v1::CaseStatus::PendingAccept
                if c.holder_unit.contains('-') || !c.lead_unit.is_empty() =>
            {
                // departments take their share of a joint handling
                self.pass(3.0 + r("dept-accept") * 12.0).await;
                self.accept_shares(&id).await?;
            }
            v1::CaseStatus::PendingAccept => {
                let unit = c.holder_unit.clone();
                let (accept, up, wait) = match c.tier() {
                    v1::Tier::Community => (0.62, 0.23, 0.15),
                    v1::Tier::Township => (0.55, 0.0, 0.15),
                    _ => (0.0, 0.0, 0.05),
                };
                let roll = r(&format!("tier-{}", c.tier));
                if roll < wait {
                    // nobody takes it: its clock will call the tier above
                    return Ok(());
                }
                // most units look at their queue within a quarter of an hour; the clock gives half an
                // hour to an hour of working time
                self.pass(2.0 + r("accept-delay") * 18.0).await;
                let _permit = self.calls.acquire().await?;
                let auth = self.staff(&unit)?;
                if roll < wait + accept {
                    let a = self
                        .conn
                        .escalation(auth)
                        .accept(v1::AcceptRequest {
                            case_id: id,
                            unit_code: unit,
                            expected_version: 0,
                        })
                        .await;
                    if count(&self, a).is_some() {
                        inc(&self.tally.accepted);
                    }
                } else if roll < wait + accept + up {
                    let mut esc = self.conn.escalation(auth);
                    let a = esc
                        .accept(v1::AcceptRequest {
                            case_id: id.clone(),
                            unit_code: unit.clone(),
                            expected_version: 0,
                        })
                        .await;
                    if count(&self, a).is_some() {
                        inc(&self.tally.accepted);
                        self.moved_up.lock().await.insert(id.clone());
                        let up = esc
                            .call_up(v1::CallUpRequest {
                                case_id: id,
                                unit_code: unit,
                                reason: "超出社区处置能力，呼叫街道".into(),
                                expected_version: 0,
                            })
                            .await;
                        if count(&self, up).is_some() {
                            inc(&self.tally.called_up);
                        }
                    }
                } else {
                    // the township or the county blows the whistle: departments handle it
                    self.dispatch(c, &unit).await?;
                }
            }
            v1::CaseStatus::InProgress => {
                self.pass(30.0 + r(&format!("handle-{}", c.rework_count)) * 180.0)
                    .await;
                self.handle(c).await?;
            }
            v1::CaseStatus::PendingVerification => {
                self.pass(10.0 + r(&format!("check-delay-{}", c.rework_count)) * 50.0)
                    .await;
                self.check(c).await?;
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) async fn dispatch(&self, c: &v1::Case, unit: &str) -> anyhow::Result<()> {
        let (lead, assisting) = self.route(&c.grid_code, &c.category).await?;
        if lead.is_empty() {
            return Ok(());
        }
        let d = self
            .conn
            .escalation(self.staff(unit)?)
            .dispatch(v1::DispatchRequest {
                case_id: c.case_id.clone(),
                unit_code: unit.to_owned(),
                lead_unit: lead,
                assisting_units: assisting,
                note: "牵头部门主办，配合部门协办".into(),
                expected_version: 0,
            })
            .await;
        if count(self, d).is_some() {
            inc(&self.tally.dispatched);
        }
        Ok(())
    }

    /// The lead and assisting departments the county's policy names for a category.
    pub(super) async fn route(
        &self,
        grid: &str,
        category: &str,
    ) -> anyhow::Result<(String, Vec<String>)> {
        if let Some(r) = self.routes.lock().await.get(category) {
            return Ok(r.clone());
        }
        let r = self
            .conn
            .routing(self.conn.auth_as(Role::Admin, "", "county-board")?)
            .resolve_route(v1::ResolveRouteRequest {
                grid_code: grid.to_owned(),
                category: category.to_owned(),
                ..Default::default()
            })
            .await;
        let route = count(self, r).map_or_else(
            || (String::new(), Vec::new()),
            |r| {
                // no lead in the policy: nobody to dispatch to, and the case waits on its clock
                let r = r.into_inner();
                (r.lead_department, r.assisting_departments)
            },
        );
        self.routes
            .lock()
            .await
            .insert(category.to_owned(), route.clone());
        Ok(route)
    }

    pub(super) async fn file(&self, id: &str) -> anyhow::Result<Option<v1::GetCaseResponse>> {
        let r = self
            .conn
            .console(
                self.conn
                    .auth_as(Role::Dispatcher, COUNTY, "county-board")?,
            )
            .get_case(v1::GetCaseRequest {
                case_id: id.to_owned(),
            })
            .await;
        Ok(count(self, r).map(tonic::Response::into_inner))
    }

    /// Every department share of the case still to be accepted is accepted.
    pub(super) async fn accept_shares(&self, id: &str) -> anyhow::Result<()> {
        let Some(file) = self.file(id).await? else {
            return Ok(());
        };
        for a in file.assignments {
            if a.status() == v1::AssignmentStatus::AssignmentPendingAccept {
                let _permit = self.calls.acquire().await?;
                let r = self
                    .conn
                    .escalation(self.staff(&a.unit_code)?)
                    .accept(v1::AcceptRequest {
                        case_id: id.to_owned(),
                        unit_code: a.unit_code.clone(),
                        expected_version: 0,
                    })
                    .await;
                if count(self, r).is_some() {
                    inc(&self.tally.accepted);
                }
            }
        }
        Ok(())
    }

    /// Assisting departments report in, then the lead (or the holder) submits the result.
    pub(super) async fn handle(&self, c: &v1::Case) -> anyhow::Result<()> {
        let Some(file) = self.file(&c.case_id).await? else {
            return Ok(());
        };
        let mut units: Vec<(String, bool)> = Vec::new();
        for a in &file.assignments {
            match (a.role(), a.status()) {
                (_, v1::AssignmentStatus::AssignmentPendingAccept) => {
                    self.accept_shares(&c.case_id).await?;
                    return Ok(());
                }
                (v1::AssignmentRole::Assisting, v1::AssignmentStatus::AssignmentAccepted) => {
                    units.push((a.unit_code.clone(), false));
                }
                _ => {}
            }
        }
        let last = if c.lead_unit.is_empty() {
            c.holder_unit.clone()
        } else {
            c.lead_unit.clone()
        };
        units.push((last, true));
        for (unit, result) in units {
            let _permit = self.calls.acquire().await?;
            let r = self
                .conn
                .handling(self.staff(&unit)?)
                .submit_result(v1::SubmitResultRequest {
                    case_id: c.case_id.clone(),
                    unit_code: unit,
                    note: if result {
                        "已处置完毕".into()
                    } else {
                        "本部门职责内事项已办结".into()
                    },
                    ..Default::default()
                })
                .await;
            if count(self, r).is_some() && result {
                inc(&self.tally.results);
            }
        }
        Ok(())
    }

    /// The reporting grid checks the result on site; most pass, some go back; the reporter
    /// rates what closes.
    pub(super) async fn check(&self, c: &v1::Case) -> anyhow::Result<()> {
        let r = |what: &str| chance(self.args.seed, &format!("{}:{what}", c.case_number));
        let passed = c.rework_count > 0 || r("check") > 0.12;
        let grid = c.grid_code.clone();
        let auth = || {
            self.conn
                .auth_as(Role::GridWorker, &grid, &format!("worker-{grid}"))
        };
        let _permit = self.calls.acquire().await?;
        let v = self
            .conn
            .reporting(auth()?)
            .verify_case(v1::VerifyCaseRequest {
                case_id: c.case_id.clone(),
                passed,
                note: if passed {
                    "现场核查，已处置到位".into()
                } else {
                    "现场核查，仍未处置到位".into()
                },
                unit_code: grid.clone(),
                ..Default::default()
            })
            .await;
        if count(self, v).is_none() {
            return Ok(());
        }
        if !passed {
            inc(&self.tally.reworked);
            return Ok(());
        }
        inc(&self.tally.closed);
        if r("rates") < 0.75 {
            let score = *pick(&[(5u32, 6.0), (4, 3.0), (3, 1.0), (2, 0.4)], r("score"));
            let rated = self
                .conn
                .reporting(auth()?)
                .rate_case(v1::RateCaseRequest {
                    case_id: c.case_id.clone(),
                    score,
                    comment: String::new(),
                })
                .await;
            if count(self, rated).is_some() {
                inc(&self.tally.rated);
            }
        }
        Ok(())
    }

    pub(super) fn lines(&self, real: f64) -> [String; 4] {
        let t = &self.tally;
        let board = self.board.try_lock().map(|b| b.clone()).unwrap_or_default();
        let waiting = ["community", "township", "county", "departments"]
            .iter()
            .map(|k| format!("{k} {}", board.waiting.get(k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(" · ");
        let calls = get(&t.calls);
        [
            format!(
                "reported {} (grid workers {} · residents {} · 12345 {}) · settled on the spot {} · repeats of an open case {}",
                get(&t.reported[0]) + get(&t.reported[1]) + get(&t.reported[2]),
                get(&t.reported[0]),
                get(&t.reported[1]),
                get(&t.reported[2]),
                get(&t.settled),
                get(&t.repeats)
            ),
            format!(
                "waiting to be accepted: {waiting} | handling {} | checking {} | overdue {}",
                board.handling, board.checking, board.overdue
            ),
            format!(
                "accepted {} · called up {} · escalated by the clock {} · dispatched {} · results {} · reworked {} · closed {} · rated {}",
                get(&t.accepted),
                get(&t.called_up),
                get(&t.escalated_by_clock),
                get(&t.dispatched),
                get(&t.results),
                get(&t.reworked),
                get(&t.closed),
                get(&t.rated)
            ),
            format!(
                "API: {calls} calls, {:.0}/s · moved on meanwhile {} · errors {}",
                calls as f64 / real.max(0.001),
                get(&t.raced),
                get(&t.errors)
            ),
        ]
    }
}
