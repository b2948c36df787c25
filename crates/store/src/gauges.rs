//! What the metrics endpoint samples at each scrape: the open cases per stage, tier and kind of
//! holder with the oldest one's age, the outbox's backlog, the deadlines armed, the pool's use.
//! Each query reads a partial index or the open cases only.

use chrono::{DateTime, Utc};

use crate::{Result, Store};

/// Open cases in one stage at one tier, held by a department or not.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueGauge {
    /// `REPORTED`, `PENDING_ACCEPT`, `IN_PROGRESS` or `PENDING_VERIFICATION`.
    pub status: String,
    pub tier: String,
    /// Held by a department (`<county>-<SUFFIX>`) rather than a tier's unit.
    pub department: bool,
    pub count: i64,
    /// How long the longest-waiting one has been in this stage.
    pub oldest_secs: f64,
    /// Those past their clock.
    pub overdue: i64,
}

/// One scrape's sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    pub queues: Vec<QueueGauge>,
    /// Outbox rows not yet published to Redis, and the oldest one's age.
    pub outbox_pending: i64,
    pub outbox_lag_secs: f64,
    /// Deadlines armed and not yet fired.
    pub deadlines_armed: i64,
    /// The pool's connections: open, idle, and the most it may open.
    pub pool_open: u32,
    pub pool_idle: usize,
    pub pool_max: u32,
}

impl Store {
    /// Samples the gauges as of `now`.
    pub async fn gauges(&self, now: DateTime<Utc>) -> Result<Gauges> {
        type Row = (String, String, bool, i64, Option<f64>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT status, tier, coalesce(holder_unit LIKE '%-%', false), count(*), \
                    extract(epoch FROM $1 - min(updated_at))::float8, \
                    count(*) FILTER (WHERE overdue) \
               FROM cases \
              WHERE status IN ('REPORTED', 'PENDING_ACCEPT', 'IN_PROGRESS', 'PENDING_VERIFICATION') \
              GROUP BY 1, 2, 3",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let (outbox_pending, outbox_lag): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM $1 - min(created_at))::float8 \
               FROM outbox WHERE published_at IS NULL",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let (deadlines_armed,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM deadlines WHERE fired_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(Gauges {
            queues: rows
                .into_iter()
                .map(
                    |(status, tier, department, count, oldest, overdue)| QueueGauge {
                        status,
                        tier,
                        department,
                        count,
                        oldest_secs: oldest.unwrap_or(0.0).max(0.0),
                        overdue,
                    },
                )
                .collect(),
            outbox_pending,
            outbox_lag_secs: outbox_lag.unwrap_or(0.0).max(0.0),
            deadlines_armed,
            pool_open: self.pool.size(),
            pool_idle: self.pool.num_idle(),
            pool_max: self.pool.options().get_max_connections(),
        })
    }
}
