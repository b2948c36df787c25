//! `gridctl stats`: the GB/T 30428 indicators of a region and period (GetStats) as two
//! tables, counts and rates, over cases, per tier and per unit (docs/indicators.md).

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone as _, Utc};
use proto::{convert, v1};
use server::auth::Role;

use unicode_width::UnicodeWidthStr as _;

use crate::Conn;

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// The region: a code prefix (county 6 digits, township 9, community 12; 2 or 4 for a
    /// province or city).
    pub region: String,
    /// Start of the period: a date (`2026-11-01`, midnight China time) or an RFC 3339 time.
    /// Default: 30 days before --to.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period, exclusive, in the same forms. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// Ask as staff of this unit (when minting a token from GRIDD_JWT_SECRET); default: an
    /// installation-wide admin.
    #[arg(long, default_value = "")]
    pub unit: String,
}

/// China Standard Time, for dates given without a time and for printing.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

fn parse_time(s: &str, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{flag}: expected YYYY-MM-DD or an RFC 3339 time, got {s:?}"))?;
    cst()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("{flag}: {s:?} is not a valid local time"))
}

pub async fn run(conn: &Conn, args: StatsArgs) -> anyhow::Result<()> {
    let to = match &args.to {
        Some(s) => parse_time(s, "--to")?,
        None => Utc::now(),
    };
    let from = match &args.from {
        Some(s) => parse_time(s, "--from")?,
        None => to - Duration::days(30),
    };
    if from >= to {
        bail!("--from must be before --to");
    }
    let auth = if args.unit.is_empty() {
        conn.auth_as(Role::Admin, "", "gridctl")?
    } else {
        // townships and above dispatch; communities, grids and departments are unit staff
        let role = if args.unit.len() <= 9 && !args.unit.contains('-') {
            Role::Dispatcher
        } else {
            Role::UnitStaff
        };
        conn.auth_as(role, &args.unit, "gridctl")?
    };
    let r = conn
        .console(auth)
        .get_stats(v1::GetStatsRequest {
            region_code: args.region.clone(),
            from: Some(convert::timestamp(from)),
            to: Some(convert::timestamp(to)),
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", crate::demo::describe(&s)))?
        .into_inner();
    println!(
        "indicators of {} from {} to {} (UTC+8, end exclusive)\n",
        args.region,
        from.with_timezone(&cst()).format("%Y-%m-%d %H:%M"),
        to.with_timezone(&cst()).format("%Y-%m-%d %H:%M"),
    );
    let mut rows: Vec<(String, v1::Indicators)> = Vec::new();
    rows.push(("TOTAL (cases)".into(), r.total.unwrap_or_default()));
    for t in &r.tiers {
        rows.push((
            format!("tier {}", tier_name(t.tier())),
            t.indicators.clone().unwrap_or_default(),
        ));
    }
    for u in &r.units {
        rows.push((
            format!("{} ({})", u.unit_code, tier_name(u.tier())),
            u.indicators.clone().unwrap_or_default(),
        ));
    }
    print!("{}", render(&rows));
    Ok(())
}

fn tier_name(t: v1::Tier) -> &'static str {
    match t {
        v1::Tier::Grid => "grid",
        v1::Tier::Community => "community",
        v1::Tier::Township => "township",
        v1::Tier::County => "county",
        v1::Tier::City => "city",
        v1::Tier::Unspecified => "-",
    }
}

type Column = (&'static str, fn(&v1::Indicators) -> String);

fn n(v: u64) -> String {
    v.to_string()
}

fn pct(v: f64) -> String {
    format!("{v:.1}")
}

fn hours(v: f64) -> String {
    format!("{v:.2}")
}

const COUNTS: &[Column] = &[
    ("reported", |i| n(i.reported)),
    ("self", |i| n(i.self_handled)),
    ("closed", |i| n(i.closed)),
    ("on time", |i| n(i.closed_on_time)),
    ("overdue open", |i| n(i.overdue_unclosed)),
    ("due", |i| n(i.due_to_close)),
    ("rework", |i| n(i.reworked)),
    ("dispatch", |i| n(i.dispatched)),
    ("re-disp", |i| n(i.redispatched)),
    ("returns", |i| n(i.returns)),
    ("rated", |i| n(i.rated)),
    ("satisfied", |i| n(i.satisfied)),
    ("bad", |i| n(i.bad_reviews)),
    ("accepted", |i| n(i.accepted)),
    ("accept h", |i| hours(i.avg_accept_hours)),
    ("results", |i| n(i.results)),
    ("handle h", |i| hours(i.avg_handle_hours)),
];

const RATES: &[Column] = &[
    ("closure %", |i| pct(i.closure_rate)),
    ("on time %", |i| pct(i.on_time_closure_rate)),
    ("rework %", |i| pct(i.rework_rate)),
    ("dispatch %", |i| pct(i.accurate_dispatch_rate)),
    ("self %", |i| pct(i.self_handled_rate)),
    ("satisfied %", |i| pct(i.satisfaction_rate)),
    ("return %", |i| pct(i.return_rate)),
    ("bad %", |i| pct(i.bad_review_rate)),
    ("score", |i| pct(i.score)),
    ("grade", |i| i.grade.clone()),
];

/// The counts table, then the rates table: one row per line of `rows`, names left, figures
/// right-aligned.
pub(crate) fn render(rows: &[(String, v1::Indicators)]) -> String {
    let mut out = String::new();
    for (title, columns) in [("counts", COUNTS), ("rates", RATES)] {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(_, i)| columns.iter().map(|(_, f)| f(i)).collect())
            .collect();
        let name_width = rows
            .iter()
            .map(|(name, _)| name.width())
            .chain([title.len()])
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(c, (head, _))| {
                cells
                    .iter()
                    .map(|r| r[c].len())
                    .chain([head.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        out.push_str(&format!("{title:<name_width$}"));
        for ((head, _), w) in columns.iter().zip(&widths) {
            out.push_str(&format!("  {head:>w$}"));
        }
        out.push('\n');
        for ((name, _), row) in rows.iter().zip(&cells) {
            // Chinese names take two columns a character
            let pad = name_width - name.width();
            out.push_str(name);
            out.push_str(&" ".repeat(pad));
            for (cell, w) in row.iter().zip(&widths) {
                out.push_str(&format!("  {cell:>w$}"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_china_midnight_and_times_are_rfc3339() {
        let t = parse_time("2027-03-01", "--from").unwrap();
        assert_eq!(t.to_rfc3339(), "2027-02-28T16:00:00+00:00");
        let t = parse_time("2027-03-01T09:30:00+08:00", "--from").unwrap();
        assert_eq!(t.to_rfc3339(), "2027-03-01T01:30:00+00:00");
        assert!(parse_time("March", "--from").is_err());
    }

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            (
                "TOTAL (cases)".to_owned(),
                v1::Indicators {
                    reported: 12_345,
                    closure_rate: 66.666,
                    grade: "D".into(),
                    ..Default::default()
                },
            ),
            ("360102-ZJJ (county)".to_owned(), v1::Indicators::default()),
        ];
        let text = render(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("counts"));
        assert!(lines[1].starts_with("TOTAL (cases)"));
        assert!(lines[1].contains("12345"));
        // every line of a table is as wide as its header
        assert_eq!(lines[1].len(), lines[0].len());
        assert_eq!(lines[2].len(), lines[0].len());
        let rates = lines.iter().position(|l| l.starts_with("rates")).unwrap();
        assert!(lines[rates + 1].contains("66.7"));
        assert!(lines[rates + 1].ends_with('D'));
    }
}
