//! What the bench reads beside gridd's API: the set-up fixture (synthetic deadlines, armed
//! before the clock starts) and the counters of gridd's process and database — CPU time, peak
//! memory, statements, transactions and WAL flushes — read before and after the load.

use anyhow::Context as _;
use sqlx::PgPool;

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
pub(super) fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / 100.0, hwm))
}

/// The fixture step: `n` synthetic deadlines on `case_id`, due over `spread` seconds from a
/// second from now. They fire as stale no-ops (their clock is not the case's), which measures
/// the timer's own lateness with `n` armed. Tagged `tag` so that the readout and the clean-up
/// find only them.
pub(super) async fn arm_deadlines(
    pool: &PgPool,
    case_id: uuid::Uuid,
    n: usize,
    spread: u64,
    tag: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at, outcome)
         SELECT $1, '360102', 'accept', true,
                now() + interval '1 second' + random() * make_interval(secs => $3::double precision),
                '1970-01-01', now(), $2
           FROM generate_series(1, $4)",
    )
    .bind(case_id)
    .bind(tag)
    .bind(spread.max(1) as f64)
    .bind(i64::try_from(n).unwrap_or(0))
    .execute(pool)
    .await
    .context("arming the synthetic deadlines")?;
    Ok(())
}

/// Lateness in ms (`fired_at − fire_at`, as the timer's commit recorded it) of the synthetic
/// deadlines that fired; then removes them all.
pub(super) async fn deadline_lateness(pool: &PgPool, tag: &str) -> Vec<f64> {
    let late: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM fired_at - fire_at)::float8 * 1000 FROM deadlines
          WHERE clock_due_at = '1970-01-01' AND fired_at IS NOT NULL AND outcome <> $1",
    )
    .bind(tag)
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    sqlx::query("DELETE FROM deadlines WHERE clock_due_at = '1970-01-01'")
        .execute(pool)
        .await
        .ok();
    late
}

/// How the server's own foreign-key checks read in `pg_stat_statements`.
const FK_CHECK: &str = "SELECT % FROM ONLY %FOR KEY SHARE OF x";

/// Database counters at one moment.
#[derive(Debug, Clone, Default)]
pub(super) struct DbCounters {
    /// Statements gridd sent to its database (`pg_stat_statements`, when the server loads
    /// it), and the foreign-key checks the server ran for them on its own.
    pub statements: Option<i64>,
    pub fk_checks: Option<i64>,
    /// Committed transactions in gridd's database.
    pub commits: i64,
    /// WAL flushes to disk (`pg_stat_wal.wal_sync`), server-wide.
    pub wal_syncs: i64,
    pub wal_bytes: i64,
}

impl DbCounters {
    pub(super) async fn read(pool: &PgPool) -> DbCounters {
        let counted: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT sum(calls) FILTER (WHERE query NOT LIKE $1)::int8,
                    sum(calls) FILTER (WHERE query LIKE $1)::int8
               FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(FK_CHECK)
        .fetch_one(pool)
        .await
        .ok();
        let (statements, fk_checks) = counted.unwrap_or_default();
        let (commits, wal_syncs, wal_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                    wal_sync, wal_bytes::int8 FROM pg_stat_wal",
        )
        .fetch_one(pool)
        .await
        .unwrap_or_default();
        DbCounters {
            statements,
            fk_checks,
            commits,
            wal_syncs,
            wal_bytes,
        }
    }

    /// Makes `pg_stat_statements` readable in gridd's database when the server loads it.
    pub(super) async fn enable(pool: &PgPool) -> bool {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await
            .is_ok()
            && sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(pool)
                .await
                .is_ok()
    }

    /// The statements gridd ran most since the reset, with their calls: where the cost is.
    pub(super) async fn top_statements(pool: &PgPool, n: i64) -> Vec<(i64, String)> {
        sqlx::query_as(
            "SELECT calls, regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND query NOT LIKE $2
              ORDER BY calls DESC LIMIT $1",
        )
        .bind(n)
        .bind(FK_CHECK)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
    }
}

/// Outbox rows committed but not yet published: how far the relay is behind.
pub(super) async fn outbox_backlog(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}
