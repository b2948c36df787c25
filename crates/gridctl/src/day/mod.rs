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

mod plan;
mod units;

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use proto::{convert, v1};
use server::auth::Role;
use server::clock::ScaledClock;
use tokio::sync::{Mutex, Semaphore};

use crate::{Conn, load_seed};
use units::{Board, Day, Tally};

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
    let county = plan::county()?;
    let planned = plan::plan(args.seed, args.volume, args.hours, start, &county);
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
    repeat_rule(&conn).await?;
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

/// The county's rule for repeated reports (ADR 0044), put into its policy before the day: the
/// same matter within 50 m of an open case reported in the last three days is linked to it,
/// and a spot reported three times in 30 days raises its case's severity.
async fn repeat_rule(conn: &Conn) -> anyhow::Result<()> {
    let mut routing = conn.routing(conn.auth_as(Role::Admin, "", "day")?);
    let mut policy = routing
        .get_policy(v1::GetPolicyRequest {
            county_code: COUNTY.into(),
        })
        .await?
        .into_inner()
        .policy
        .context("the county has a policy")?;
    policy.repeats = Some(v1::RepeatRule {
        distance_m: 50,
        window_hours: 72,
        recurrence_reports: 3,
        recurrence_days: 30,
        recurrence_action: v1::RecurrenceAction::RaiseSeverity.into(),
    });
    routing
        .put_policy(v1::PutPolicyRequest {
            policy: Some(policy),
        })
        .await?;
    println!(
        "   repeats: the same matter within 50 m of an open case is linked to it; a spot reported 3 times in 30 days is raised a level"
    );
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
