//! A year of case history for the console benchmark: deterministic, and each case a real fold
//! of its events through the state machine, loaded straight into PostgreSQL.

use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::case::{CaseState, Clock, Event};
use domain::geo::{Crs, LatLon};
use domain::policy::CategoryCode;
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use domain::{Severity, Tier};

use super::ConsoleBenchArgs;

/// A small deterministic generator (xorshift64*): the same history on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        u
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The places cases happen: the sample county's grids, and made-up counties of the same shape.
struct Geography {
    counties: Vec<(RegionCode, Vec<UnitCode>, Vec<UnitCode>)>,
    categories: Vec<CategoryCode>,
}

fn geography(n: usize) -> anyhow::Result<Geography> {
    let seed = domain::seed::parse(domain::seed::SAMPLE)?;
    let grids: Vec<UnitCode> = seed
        .units
        .iter()
        .filter(|u| u.kind == domain::UnitKind::Grid)
        .map(|u| u.code.clone())
        .collect();
    let depts: Vec<UnitCode> = seed
        .units
        .iter()
        .filter(|u| u.code.is_department())
        .map(|u| u.code.clone())
        .collect();
    let mut counties = vec![(RegionCode::parse("360102")?, grids, depts)];
    for i in 1..n {
        let county = format!("3601{:02}", 10 + i);
        let mut g = Vec::new();
        for t in 1..=10 {
            for c in 1..=5 {
                for k in 1..=6 {
                    g.push(UnitCode::parse(&format!("{county}{t:03}{c:03}{k:03}"))?);
                }
            }
        }
        let d = ["CGJ", "ZJJ", "GAFJ", "SWJ", "HBJ"]
            .iter()
            .map(|s| UnitCode::parse(&format!("{county}-{s}")))
            .collect::<Result<_, _>>()?;
        counties.push((RegionCode::parse(&county)?, g, d));
    }
    let categories = seed
        .categories
        .iter()
        .filter(|c| c.parent_code.is_some())
        .map(|c| c.code.clone())
        .collect();
    Ok(Geography {
        counties,
        categories,
    })
}

/// A case's events with their times.
type Log = Vec<(Event, DateTime<Utc>)>;

/// Appends `e` at `dt` after the last event.
fn push(
    log: &mut Vec<(Event, DateTime<Utc>)>,
    e: Event,
    dt: chrono::Duration,
    t: &mut DateTime<Utc>,
) {
    *t += dt;
    log.push((e, *t));
}

fn up(u: &UnitCode, len: usize) -> UnitCode {
    UnitCode::parse(&u.as_str()[..len]).expect("a grid's parents are units")
}

/// One case's life: its events through the real state machine, ending at most at `now`.
fn life(
    rng: &mut Rng,
    grid: &UnitCode,
    depts: &[UnitCode],
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<(CaseState, Log)> {
    let (community, township, county) = (up(grid, 12), up(grid, 9), up(grid, 6));
    let h = chrono::Duration::hours;
    let m = chrono::Duration::minutes;
    let mut log: Vec<(Event, DateTime<Utc>)> = Vec::new();
    let mut t = at;
    push(
        &mut log,
        Event::Reported {
            grid: grid.clone(),
            self_handled: false,
        },
        m(0),
        &mut t,
    );
    if rng.chance(6) {
        // settled on the spot
        log[0].0 = Event::Reported {
            grid: grid.clone(),
            self_handled: true,
        };
    } else {
        let young = now - at < chrono::Duration::days(14);
        let stop = if young { rng.below(5) } else { 9 };
        push(
            &mut log,
            Event::Routed {
                unit: community.clone(),
                tier: Tier::Community,
                accept_due_at: at + h(2),
                reason: "按类别和级别".into(),
                admitted: true,
            },
            m(1),
            &mut t,
        );
        let joint = rng.chance(8);
        if stop > 0 && !joint {
            push(
                &mut log,
                Event::Accepted {
                    unit: community.clone(),
                    handle_due_at: t + h(72),
                },
                m(30),
                &mut t,
            );
            if !young && rng.chance(3) {
                push(
                    &mut log,
                    Event::Overdue {
                        unit: community,
                        clock: Clock::Handle,
                    },
                    h(73),
                    &mut t,
                );
            } else if stop > 1 {
                push(
                    &mut log,
                    Event::ResultSubmitted {
                        photos: Vec::new(),
                        unit: community.clone(),
                        note: "已处理".into(),
                    },
                    h(20),
                    &mut t,
                );
                if stop > 2 {
                    if rng.chance(4) {
                        push(
                            &mut log,
                            Event::Verified {
                                unit: grid.clone(),
                                passed: false,
                                note: "仍有问题".into(),
                                handle_due_at: Some(t + h(24)),
                            },
                            h(3),
                            &mut t,
                        );
                        push(
                            &mut log,
                            Event::ResultSubmitted {
                                photos: Vec::new(),
                                unit: community,
                                note: "返工完成".into(),
                            },
                            h(10),
                            &mut t,
                        );
                    }
                    push(
                        &mut log,
                        Event::Verified {
                            unit: grid.clone(),
                            passed: true,
                            note: String::new(),
                            handle_due_at: None,
                        },
                        h(4),
                        &mut t,
                    );
                    if rng.chance(70) {
                        let score = [5, 5, 5, 4, 4, 3, 2][rng.below(7)];
                        push(
                            &mut log,
                            Event::Rated {
                                score,
                                comment: String::new(),
                            },
                            h(6),
                            &mut t,
                        );
                    }
                }
            }
        } else if stop > 0 {
            let (lead, help) = (
                depts[rng.below(depts.len())].clone(),
                depts[rng.below(depts.len())].clone(),
            );
            let assisting = if help == lead { Vec::new() } else { vec![help] };
            push(
                &mut log,
                Event::CalledUp {
                    unit: community,
                    reason: "超出社区能力".into(),
                    to_unit: township.clone(),
                    to_tier: Tier::Township,
                    accept_due_at: t + h(2),
                },
                m(40),
                &mut t,
            );
            push(
                &mut log,
                Event::CalledUp {
                    unit: township,
                    reason: "需区级部门".into(),
                    to_unit: county.clone(),
                    to_tier: Tier::County,
                    accept_due_at: t + h(2),
                },
                m(50),
                &mut t,
            );
            push(
                &mut log,
                Event::Dispatched {
                    unit: county,
                    lead: lead.clone(),
                    lead_tier: Tier::County,
                    assisting: assisting.clone(),
                    accept_due_at: t + h(2),
                    note: "联合处置".into(),
                },
                m(20),
                &mut t,
            );
            if stop > 1 {
                for u in assisting.iter().chain([&lead]) {
                    push(
                        &mut log,
                        Event::Accepted {
                            unit: u.clone(),
                            handle_due_at: t + h(120),
                        },
                        m(45),
                        &mut t,
                    );
                }
                if stop > 2 {
                    for u in &assisting {
                        push(
                            &mut log,
                            Event::PartSubmitted {
                                photos: Vec::new(),
                                unit: u.clone(),
                                note: "配合完成".into(),
                            },
                            h(30),
                            &mut t,
                        );
                    }
                    push(
                        &mut log,
                        Event::ResultSubmitted {
                            photos: Vec::new(),
                            unit: lead,
                            note: "已处置".into(),
                        },
                        h(12),
                        &mut t,
                    );
                    if stop > 3 {
                        push(
                            &mut log,
                            Event::Verified {
                                unit: grid.clone(),
                                passed: true,
                                note: String::new(),
                                handle_due_at: None,
                            },
                            h(5),
                            &mut t,
                        );
                    }
                }
            }
        }
    }
    // nothing in the future: a young case's life is cut at `now`
    log.retain(|(_, when)| *when <= now);
    let state = CaseState::replay(log.iter().map(|(e, w)| (e, *w)))
        .context("the generated life breaks the state machine")?
        .context("a case has events")?;
    Ok((state, log))
}

pub(super) async fn load(store: &store::Store, a: &ConsoleBenchArgs) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(store.pool())
        .await?;
    let want = a.cases.saturating_sub(usize::try_from(have).unwrap_or(0));
    if want == 0 {
        println!("history: {have} cases already loaded");
        return Ok(());
    }
    let started = Instant::now();
    let events = add(store, a, have, want).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "history: {want} cases and {events} events over {} counties and {} months loaded in {secs:.0} s ({:.0} cases/s)",
        a.counties,
        a.months,
        want as f64 / secs
    );
    Ok(())
}

/// Adds `want` cases of history after the `have` already loaded, in batches of 2,000, each
/// batch in one transaction of the store; answers how many events they hold.
pub(super) async fn add(
    store: &store::Store,
    a: &ConsoleBenchArgs,
    have: i64,
    want: usize,
) -> anyhow::Result<usize> {
    let geo = geography(a.counties)?;
    let now = Utc::now();
    let span = chrono::Duration::days(30 * a.months).num_seconds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (have as u64 + 1));
    let (mut events, mut batch) = (0usize, Vec::with_capacity(2000));
    let mut numbers = vec![0u64; geo.counties.len()];
    for i in 0..want {
        let k = i % geo.counties.len();
        let (county, grids, depts) = &geo.counties[k];
        let grid = &grids[rng.below(grids.len())];
        let at = now - chrono::Duration::seconds(i64::try_from(rng.next() % span as u64)?);
        let (state, log) = life(&mut rng, grid, depts, at, now)?;
        numbers[k] += 1;
        let category = geo.categories[rng.below(geo.categories.len())].clone();
        events += log.len();
        batch.push((
            CaseRecord {
                case_id: domain::CaseId::new(),
                case_number: format!(
                    "{county}-{}-H{:07}",
                    at.format("%Y%m%d"),
                    numbers[k] + have as u64
                ),
                county: county.clone(),
                grid: grid.region(),
                category,
                severity: if rng.chance(10) {
                    Severity::Larger
                } else {
                    Severity::General
                },
                title: format!("历史案件 {i}"),
                description: "网格巡查发现".into(),
                // spread over the county's 10 km by 10 km town, the counties 20 km apart: the
                // search for repeats (ADR 0044) is timed on this
                location: LatLon {
                    lat: 28.68 + 0.2 * k as f64 + (rng.unit() - 0.5) * 0.09,
                    lon: 115.89 + (rng.unit() - 0.5) * 0.1,
                },
                reported_crs: Crs::Wgs84,
                attachments: Vec::new(),
                occurred_at: at,
                reported_at: at,
                reported_by: format!("worker@{grid}"),
                source: Default::default(),
                updated_at: log.last().map_or(at, |(_, w)| *w),
                state,
                trace: std::collections::BTreeMap::new(),
            },
            log,
        ));
        if batch.len() == 2000 || i + 1 == want {
            store.load_history(&batch).await?;
            batch.clear();
            if (i + 1) % 100_000 == 0 {
                println!("  loaded {} cases", i + 1);
            }
        }
    }
    Ok(events)
}
