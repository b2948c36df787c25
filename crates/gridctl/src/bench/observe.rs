//! What the bench reads beside gridd's API: the set-up fixture (synthetic deadlines, armed
//! before the clock starts) and the counters of gridd's process and database — CPU time, peak
//! memory, statements, transactions and WAL flushes — read before and after the load.

use anyhow::Context as _;
use sqlx::PgPool;

/// CPU seconds (user + system) and peak RSS (KiB) of a process.
pub(super) fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let (cpu, _) = proc_times(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((cpu, hwm))
}

/// The fixture step: `n` synthetic deadlines on `case_id`, due over `spread` seconds from two
/// seconds from now. They fire as stale no-ops (their clock is not the case's), which measures
/// the timer's own lateness with `n` armed. Rows written behind gridd's back wake no timer:
/// gridd finds them at its periodic re-read (every second), so the first falls due after one
/// re-read has seen them — the figure is the timer's lateness, not the re-read's interval.
/// Tagged `tag` so that the readout and the clean-up find only them.
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
                now() + interval '2 seconds' + random() * make_interval(secs => $3::double precision),
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
    /// Milliseconds the database spent executing and planning those statements (planning is
    /// zero unless the server has `pg_stat_statements.track_planning` on).
    pub exec_ms: f64,
    pub plan_ms: f64,
    /// Committed transactions in gridd's database.
    pub commits: i64,
    /// WAL flushes to disk (`pg_stat_wal.wal_sync`), server-wide.
    pub wal_syncs: i64,
    pub wal_bytes: i64,
}

impl DbCounters {
    pub(super) async fn read(pool: &PgPool) -> DbCounters {
        let counted: Option<(Option<i64>, Option<i64>, f64, f64)> = sqlx::query_as(
            "SELECT sum(calls) FILTER (WHERE query NOT LIKE $1)::int8,
                    sum(calls) FILTER (WHERE query LIKE $1)::int8,
                    coalesce(sum(total_exec_time), 0)::float8,
                    coalesce(sum(total_plan_time), 0)::float8
               FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(FK_CHECK)
        .fetch_one(pool)
        .await
        .ok();
        let (statements, fk_checks, exec_ms, plan_ms) = counted.unwrap_or_default();
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
            exec_ms,
            plan_ms,
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

    /// The statements gridd ran since the reset that took the largest shares of the
    /// database's time in them, execution and planning (`pg_stat_statements.track_planning`,
    /// when the server has it on; the foreign-key checks the server ran for a statement are
    /// counted in its own time), with their calls, that share and the planning's part of it:
    /// where the cost is.
    pub(super) async fn top_statements(pool: &PgPool, n: i64) -> Vec<StatementShare> {
        sqlx::query_as(
            "SELECT calls,
                    (100 * (total_exec_time + total_plan_time)
                         / nullif(sum(total_exec_time + total_plan_time) OVER (), 0))::float8,
                    (100 * total_plan_time
                         / nullif(sum(total_exec_time + total_plan_time) OVER (), 0))::float8,
                    regexp_replace(left(query, 90), '\\s+', ' ', 'g')
               FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND query NOT LIKE $2
              ORDER BY total_exec_time + total_plan_time DESC LIMIT $1",
        )
        .bind(n)
        .bind(FK_CHECK)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
    }
}

/// One statement's line in [`DbCounters::top_statements`]: calls, its share of the database's
/// time in statements, the part of that share spent planning it, and its text.
pub(super) type StatementShare = (i64, f64, f64, String);

/// Outbox rows committed but not yet published: how far the relay is behind.
pub(super) async fn outbox_backlog(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// CPU seconds spent by the machine and by each party of the run, read from `/proc`: where a
/// load's CPU goes, and so where its floor is on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CpuSplit {
    /// Every core's busy time (user, nice, system, irq, softirq, steal).
    pub machine: f64,
    /// Of that, the time the hypervisor ran something else on this machine's cores: on a
    /// shared host it makes every figure of the run slower, so it is printed beside them.
    pub steal: f64,
    pub gridd: f64,
    /// The database cluster: its postmaster and every backend, live or ended.
    pub postgres: f64,
    /// This process: the load generator and the consoles.
    pub bench: f64,
}

impl CpuSplit {
    pub(super) fn read(gridd: Option<u32>, postmaster: Option<u32>) -> CpuSplit {
        let (machine, steal) = machine_busy().unwrap_or_default();
        CpuSplit {
            machine,
            steal,
            gridd: gridd.and_then(proc_usage).map_or(0.0, |(s, _)| s),
            postgres: postmaster.map_or(0.0, tree_cpu),
            bench: proc_times(std::process::id()).map_or(0.0, |t| t.0),
        }
    }

    /// Prints the split between `self` and `later` per `per` items of `what`.
    pub(super) fn print(&self, later: &CpuSplit, secs: f64, per: u64, what: &str) {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let d = |a: f64, b: f64| (b - a).max(0.0);
        let machine = d(self.machine, later.machine);
        let parts = [
            ("gridd", d(self.gridd, later.gridd)),
            ("PostgreSQL", d(self.postgres, later.postgres)),
            ("load generator", d(self.bench, later.bench)),
        ];
        let named: f64 = parts.iter().map(|p| p.1).sum();
        let share = |s: f64| s / secs / cores as f64 * 100.0;
        println!(
            "  machine CPU            {:.0} % busy of {cores} cores during the load (steal {:.0} %)",
            share(machine),
            share(d(self.steal, later.steal))
        );
        if per == 0 {
            return;
        }
        let ms = |s: f64| s * 1000.0 / per as f64;
        let mut line = format!("  CPU per {what:<14} ");
        for (name, s) in parts {
            line.push_str(&format!("{name} {:.3} ms, ", ms(s)));
        }
        line.push_str(&format!(
            "the rest {:.3} ms (total {:.3} ms)",
            ms((machine - named).max(0.0)),
            ms(machine)
        ));
        println!("{line}");
    }
}

/// The postmaster of the cluster `pool` talks to, when it runs on this machine.
pub(super) async fn postmaster(pool: &PgPool) -> Option<u32> {
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// (own, reaped children's) CPU seconds of a process.
fn proc_times(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<f64> = stat
        .rsplit_once(") ")?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (f.len() == 4).then(|| ((f[0] + f[1]) / 100.0, (f[2] + f[3]) / 100.0))
}

/// A process and its children, the ended ones included (they are reaped by it).
fn tree_cpu(pid: u32) -> f64 {
    let Some((own, reaped)) = proc_times(pid) else {
        return 0.0;
    };
    let mut total = own + reaped;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return total;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let ppid = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(") ")?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        if ppid == Some(pid) {
            total += proc_times(child).map_or(0.0, |t| t.0);
        }
    }
    total
}

/// Busy CPU seconds of the whole machine since boot, and the steal among them.
fn machine_busy() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?;
    Some((busy / 100.0, f.get(7)? / 100.0))
}
