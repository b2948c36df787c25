//! `gridctl day`: a working day of 东湖区 through the real API, at a demo clock's pace.
//!
//! gridd runs on an accelerated clock (`GRIDD_DEMO_CLOCK_*`, the same settings this command
//! reads), so the SLA clocks, warnings and escalations of a whole day pass in minutes. The day
//! is planned from `--seed` before it starts: when each report comes (a diurnal curve), from
//! which grid, of which category, from whom (grid workers, residents' apps, the 12345
//! hotline), and what each unit will do with it when it reaches them: grid workers settle some
//! on the spot; communities accept and handle, call the township, or let the clock run out;
//! townships handle or dispatch departments; the county dispatches a lead and assisting
//! departments; the reporting grid checks each result and sends some back; reporters rate.
//! The same seed plans the same day; only the timing of a busy machine varies.
//!
//! Units act on what their console shows (`ListCases`, `GetCase`), as people do, and every
//! action is an API call with a token of that unit's role. At the end the day's indicators
//! come from `GetStats`, per township.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use proto::{convert, v1};
use server::auth::Role;
use server::clock::ScaledClock;
use tokio::sync::{Mutex, Semaphore};

use crate::{Conn, load_seed};

#[derive(Debug, Clone, clap::Args)]
pub struct DayArgs {
    /// The plan's seed: the same seed plans the same day.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reports over the day (a county of about 500,000 people files several hundred).
    #[arg(long, default_value_t = 600)]
    pub volume: u32,
    /// How many times faster than the wall clock the day passes: gridd's own
    /// GRIDD_DEMO_CLOCK_SPEED, which this must match (480: 16 hours in 2 minutes).
    #[arg(long, env = "GRIDD_DEMO_CLOCK_SPEED", default_value_t = 480.0)]
    pub speed: f64,
    /// When the day starts (RFC 3339): gridd's GRIDD_DEMO_CLOCK_START.
    #[arg(long, env = "GRIDD_DEMO_CLOCK_START")]
    pub start: String,
    /// The real instant the demo clock reads --start (RFC 3339): gridd's
    /// GRIDD_DEMO_CLOCK_ANCHOR.
    #[arg(long, env = "GRIDD_DEMO_CLOCK_ANCHOR")]
    pub anchor: String,
    /// Hours of the day to run, from --start.
    #[arg(long, default_value_t = 16)]
    pub hours: u32,
    /// Plain progress lines, one per hour of the day, instead of the live display.
    #[arg(long)]
    pub plain: bool,
    /// Print each action that found its case moved on (to stderr).
    #[arg(long)]
    pub verbose: bool,
}

const COUNTY: &str = "360102";

/// China Standard Time.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A number in [0, 1) from the seed and what it decides: the same inputs, the same number.
fn chance(seed: u64, what: &str) -> f64 {
    // SplitMix64 over FNV-1a of the key: small, fast, and well spread
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in what.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One of `items` by their weights.
fn pick<T>(items: &[(T, f64)], r: f64) -> &T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut at = r * total;
    for (item, w) in items {
        if at < *w {
            return item;
        }
        at -= w;
    }
    &items[items.len() - 1].0
}

/// Reports per hour of the day from 06:00 (relative weights): a morning peak when grid
/// workers patrol, a lull at noon, an afternoon peak, a quiet evening.
const DIURNAL: [f64; 16] = [
    1.0, 3.0, 7.0, 10.0, 10.0, 8.0, 4.0, 4.0, 8.0, 9.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5,
];

/// What residents and grid workers report most, by category (the rest share what is left).
const COMMON: &[(&str, f64)] = &[
    ("0501", 14.0),
    ("0604", 9.0),
    ("0603", 8.0),
    ("0502", 6.0),
    ("0303", 6.0),
    ("0101", 5.0),
    ("0103", 5.0),
    ("0504", 4.0),
    ("0602", 4.0),
    ("0401", 3.0),
    ("0201", 3.0),
    ("0202", 2.0),
    ("0601", 2.0),
    ("0204", 2.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    GridWorker,
    Resident,
    Hotline,
}

/// One report of the plan.
#[derive(Debug, Clone)]
struct Planned {
    n: usize,
    at: DateTime<Utc>,
    grid: String,
    point: (f64, f64),
    category: String,
    title: String,
    source: Source,
    self_handled: bool,
}

/// The sample county as the plan needs it.
struct County {
    grids: Vec<(String, (f64, f64))>,
    categories: Vec<(String, String)>,
}

fn county() -> anyhow::Result<County> {
    let seed: serde_json::Value = serde_json::from_str(domain::seed::SAMPLE)?;
    let mut grids = Vec::new();
    for u in seed["units"].as_array().context("units")? {
        if u["kind"] != "GRID" {
            continue;
        }
        let code = u["code"].as_str().context("code")?.to_owned();
        // a point inside the grid: the mean of its outline's corners
        let ring = u["boundary"]["coordinates"][0]
            .as_array()
            .context("a grid without an outline")?;
        let corners = &ring[..ring.len().saturating_sub(1)];
        let (mut lat, mut lon) = (0.0, 0.0);
        for c in corners {
            lon += c[0].as_f64().unwrap_or_default();
            lat += c[1].as_f64().unwrap_or_default();
        }
        let k = corners.len().max(1) as f64;
        grids.push((code, (lat / k, lon / k)));
    }
    let categories = seed["categories"]
        .as_array()
        .context("categories")?
        .iter()
        .filter_map(|c| {
            let code = c["code"].as_str().filter(|code| code.len() == 4)?;
            Some((code.to_owned(), c["name"].as_str()?.to_owned()))
        })
        .collect();
    Ok(County { grids, categories })
}

/// The day's reports, from the seed.
fn plan(args: &DayArgs, start: DateTime<Utc>, c: &County) -> Vec<Planned> {
    let hours = (args.hours as usize).min(DIURNAL.len());
    let weights: Vec<(usize, f64)> = DIURNAL[..hours].iter().copied().enumerate().collect();
    let common: f64 = COMMON.iter().map(|(_, w)| w).sum();
    let rest = c.categories.len().saturating_sub(COMMON.len()).max(1) as f64;
    let cats: Vec<(&(String, String), f64)> = c
        .categories
        .iter()
        .map(|cat| {
            let w = COMMON
                .iter()
                .find(|(code, _)| *code == cat.0)
                .map_or(common * 0.15 / rest, |(_, w)| *w);
            (cat, w)
        })
        .collect();
    let mut out: Vec<Planned> = (0..args.volume as usize)
        .map(|n| {
            let r = |what: &str| chance(args.seed, &format!("{n}:{what}"));
            let hour = *pick(&weights, r("hour"));
            let at = start
                + Duration::hours(hour as i64)
                + Duration::seconds((r("second") * 3600.0) as i64);
            let (grid, point) = c.grids[(r("grid") * c.grids.len() as f64) as usize].clone();
            let (category, name) = (*pick(&cats, r("category"))).clone();
            let source = *pick(
                &[
                    (Source::GridWorker, 0.72),
                    (Source::Resident, 0.16),
                    (Source::Hotline, 0.12),
                ],
                r("source"),
            );
            Planned {
                n,
                at,
                grid,
                point,
                title: name,
                category,
                source,
                self_handled: source == Source::GridWorker && r("self") < 0.22,
            }
        })
        .collect();
    out.sort_by_key(|p| (p.at, p.n));
    out
}

/// What the day counted, for the display and the summary.
#[derive(Default)]
struct Tally {
    reported: [AtomicU64; 3],
    settled: AtomicU64,
    accepted: AtomicU64,
    called_up: AtomicU64,
    dispatched: AtomicU64,
    results: AtomicU64,
    reworked: AtomicU64,
    closed: AtomicU64,
    rated: AtomicU64,
    escalated_by_clock: AtomicU64,
    calls: AtomicU64,
    raced: AtomicU64,
    errors: AtomicU64,
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The open cases as the last look saw them, per stage.
#[derive(Default, Clone)]
struct Board {
    waiting: BTreeMap<&'static str, u64>,
    handling: u64,
    checking: u64,
    overdue: u64,
}

struct Day {
    conn: Conn,
    args: DayArgs,
    clock: ScaledClock,
    tally: Tally,
    /// Cases a unit is acting on, with the version it acts on.
    acting: Mutex<HashMap<String, u64>>,
    /// Each case's tier and holder when last seen, and whether a unit moved it up.
    seen: Mutex<HashMap<String, (i32, String)>>,
    moved_up: Mutex<HashSet<String>>,
    /// Lead and assisting departments by category, as the county's policy says.
    routes: Mutex<HashMap<String, (String, Vec<String>)>>,
    board: Mutex<Board>,
    calls: Semaphore,
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
    fn now(&self) -> DateTime<Utc> {
        self.clock.at(Utc::now())
    }

    /// Waits `minutes` of the day's time.
    async fn pass(&self, minutes: f64) {
        let real = std::time::Duration::from_secs_f64((minutes * 60.0 / self.clock.speed).max(0.0));
        tokio::time::sleep(real).await;
    }

    fn staff(&self, unit: &str) -> anyhow::Result<crate::Auth> {
        let role = if unit.contains('-') || unit.len() == 12 {
            Role::UnitStaff
        } else {
            Role::Dispatcher
        };
        self.conn.auth_as(role, unit, &format!("staff-{unit}"))
    }

    async fn report(self: Arc<Self>, p: Planned) -> anyhow::Result<()> {
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
        if count(&self, r).is_some() {
            inc(&self.tally.reported[p.source as usize]);
            if p.self_handled {
                inc(&self.tally.settled);
            }
        }
        Ok(())
    }

    /// One look at the county's open cases: each unit acts on what waits for it.
    async fn look(self: &Arc<Self>) -> anyhow::Result<()> {
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
    async fn note_escalation(&self, c: &v1::Case) {
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
    async fn act(self: Arc<Self>, c: &v1::Case) -> anyhow::Result<()> {
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

    async fn dispatch(&self, c: &v1::Case, unit: &str) -> anyhow::Result<()> {
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
    async fn route(&self, grid: &str, category: &str) -> anyhow::Result<(String, Vec<String>)> {
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
                let r = r.into_inner();
                let lead = if r.lead_department.is_empty() {
                    "360102-CGJ".to_owned()
                } else {
                    r.lead_department
                };
                (lead, r.assisting_departments)
            },
        );
        self.routes
            .lock()
            .await
            .insert(category.to_owned(), route.clone());
        Ok(route)
    }

    async fn file(&self, id: &str) -> anyhow::Result<Option<v1::GetCaseResponse>> {
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
    async fn accept_shares(&self, id: &str) -> anyhow::Result<()> {
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
    async fn handle(&self, c: &v1::Case) -> anyhow::Result<()> {
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
    async fn check(&self, c: &v1::Case) -> anyhow::Result<()> {
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

    fn lines(&self, real: f64) -> [String; 4] {
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
                "reported {} (grid workers {} · residents {} · 12345 {}) · settled on the spot {}",
                get(&t.reported[0]) + get(&t.reported[1]) + get(&t.reported[2]),
                get(&t.reported[0]),
                get(&t.reported[1]),
                get(&t.reported[2]),
                get(&t.settled)
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

fn time(s: &str, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{flag}: an RFC 3339 time, got {s:?}"))
}

pub async fn run(conn: Conn, args: DayArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        bail!("--speed: at least 1");
    }
    if !(1..=16).contains(&args.hours) {
        bail!("--hours: 1 to 16 (the day runs from --start, 06:00 by default, to 22:00 at most)");
    }
    let clock = ScaledClock {
        start: time(&args.start, "--start")?,
        anchor: time(&args.anchor, "--anchor")?,
        speed: args.speed,
    };
    let start = clock.start;
    let end = start + Duration::hours(i64::from(args.hours));
    let county = county()?;
    let planned = plan(&args, start, &county);
    println!(
        "== 东湖区 (360102), {}: {} reports planned from seed {}, the day at {}× ({} h in {:.0} s)",
        start.with_timezone(&cst()).format("%Y-%m-%d %H:%M"),
        planned.len(),
        args.seed,
        args.speed,
        args.hours,
        f64::from(args.hours) * 3600.0 / args.speed
    );
    let (units, cats, policies) = load_seed(&conn, domain::seed::SAMPLE).await?;
    println!(
        "   registry: {units} units, {cats} categories, {policies} policy loaded (324 grids, 54 communities, 11 townships, 15 departments)"
    );
    let day = Arc::new(Day {
        conn,
        args: args.clone(),
        clock,
        tally: Tally::default(),
        acting: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashMap::new()),
        moved_up: Mutex::new(HashSet::new()),
        routes: Mutex::new(HashMap::new()),
        board: Mutex::new(Board::default()),
        calls: Semaphore::new(24),
    });
    let live = !args.plain && std::io::stderr().is_terminal();
    let bars = indicatif::MultiProgress::new();
    let hours_bar = bars.add(indicatif::ProgressBar::new(u64::from(args.hours) * 60));
    hours_bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:48.cyan/blue}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let text: Vec<indicatif::ProgressBar> = (0..4)
        .map(|_| {
            let b = bars.add(indicatif::ProgressBar::new_spinner());
            b.set_style(indicatif::ProgressStyle::with_template("  {msg}").expect("a template"));
            b
        })
        .collect();
    if !live {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }

    let began = Instant::now();
    let mut next = 0;
    let mut last_look = Instant::now() - std::time::Duration::from_secs(10);
    let mut last_hour = -1;
    let look_every = std::time::Duration::from_millis(500);
    loop {
        let now = day.now();
        if now >= end {
            break;
        }
        while next < planned.len() && planned[next].at <= now {
            let d = day.clone();
            let p = planned[next].clone();
            tokio::spawn(async move {
                if let Err(e) = d.report(p).await {
                    tracing::debug!(error = %e, "a report of the day failed");
                }
            });
            next += 1;
        }
        if last_look.elapsed() >= look_every {
            last_look = Instant::now();
            day.look().await?;
        }
        let local = now.with_timezone(&cst());
        let minute = (now - start).num_minutes().max(0);
        let lines = day.lines(began.elapsed().as_secs_f64());
        if now < start {
            // gridd has started and the county is seeded: the day begins in a moment
            hours_bar.set_prefix("--:--");
            hours_bar.set_message(format!(
                "the day begins at {}",
                start.with_timezone(&cst()).format("%H:%M")
            ));
        } else if live {
            hours_bar.set_prefix(local.format("%H:%M").to_string());
            hours_bar.set_position(u64::try_from(minute).unwrap_or(0));
            hours_bar.set_message(format!(
                "{} {}",
                end.with_timezone(&cst()).format("%H:%M"),
                if (8..12).contains(&chrono::Timelike::hour(&local))
                    || (14..18).contains(&chrono::Timelike::hour(&local))
                {
                    "working hours: the clocks run"
                } else {
                    "off hours: the working clocks stand still"
                }
            ));
            for (b, l) in text.iter().zip(&lines) {
                b.set_message(l.clone());
            }
        } else {
            let hour = i64::from(chrono::Timelike::hour(&local));
            if hour != last_hour {
                last_hour = hour;
                println!("-- {}", local.format("%H:%M"));
                for l in &lines {
                    println!("   {l}");
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for b in &text {
        b.finish();
    }
    hours_bar.finish();
    let lines = day.lines(began.elapsed().as_secs_f64());
    println!(
        "\n== the day ends at {} ({:.0} s)",
        end.with_timezone(&cst()).format("%H:%M"),
        began.elapsed().as_secs_f64()
    );
    for l in &lines {
        println!("   {l}");
    }
    summary(&day, start, end).await?;
    Ok(())
}

/// The day's GB/T 30428 indicators per township, from GetStats.
async fn summary(day: &Day, start: DateTime<Utc>, end: DateTime<Utc>) -> anyhow::Result<()> {
    let mut console =
        day.conn
            .console(day.conn.auth_as(Role::Dispatcher, COUNTY, "county-board")?);
    let seed: serde_json::Value = serde_json::from_str(domain::seed::SAMPLE)?;
    let townships: Vec<(String, String)> = seed["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["kind"] == "TOWNSHIP")
        .filter_map(|u| {
            Some((
                u["code"].as_str()?.to_owned(),
                u["name"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut rows = Vec::new();
    for (region, name) in std::iter::once((COUNTY.to_owned(), "东湖区".to_owned())).chain(townships)
    {
        let r = console
            .get_stats(v1::GetStatsRequest {
                region_code: region.clone(),
                from: Some(convert::timestamp(start)),
                to: Some(convert::timestamp(end)),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow::anyhow!("GetStats {region}: {}", crate::demo::describe(&s)))?
            .into_inner();
        rows.push((format!("{region} {name}"), r.total.unwrap_or_default()));
    }
    println!(
        "\n== the day's indicators per township (GetStats over the cases reported in each, GB/T 30428)\n"
    );
    print!("{}", crate::stats::render(&rows));
    println!(
        "\nwhere to look next (with gridd serving the day's database):\n\
         \x20 gridctl cases --region 360102 --status open       the county's open cases, as its console lists them\n\
         \x20 gridctl stats 360102001 --from {} --to {}  one township's indicators per unit\n\
         \x20 gridctl watch-cases 360102                         every change, live\n\
         \x20 gridctl audit --case <id>                          who did what to a case\n\
         \x20 docs/architecture.md, docs/indicators.md, docs/operations.md",
        start.to_rfc3339(),
        end.to_rfc3339()
    );
    Ok(())
}
