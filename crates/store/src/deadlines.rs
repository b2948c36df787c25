//! Deadlines: armed in the transaction that starts a clock, claimed by the timer workers when
//! due, marked fired (with what came of them) in the transaction that acts on them. Never
//! cancelled: a deadline whose clock stopped finds nothing to do (ADR 0009).

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::case::Clock;
use domain::region::UnitCode;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::writer::CaseTx;

/// A timer to arm: fires at `fire_at` for `unit`'s `clock` that is due at `clock_due_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub unit: UnitCode,
    pub clock: Clock,
    pub warn: bool,
    pub fire_at: DateTime<Utc>,
    pub clock_due_at: DateTime<Utc>,
}

/// A claimed, due deadline.
#[derive(Debug, Clone)]
pub struct DueDeadline {
    pub id: i64,
    pub case_id: CaseId,
    pub unit: UnitCode,
    pub clock: Clock,
    pub warn: bool,
    pub fire_at: DateTime<Utc>,
    pub clock_due_at: DateTime<Utc>,
}

fn clock_name(c: Clock) -> &'static str {
    match c {
        Clock::Accept => "accept",
        Clock::Handle => "handle",
    }
}

/// `deadlines` columns as [`CaseTx::claim_due`] reads them (all `None` on the one row it answers
/// when nothing is due), and the earliest later deadline.
type DeadlineTuple = (
    Option<i64>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// What [`CaseTx::claim_due`] took, and when to look again.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub due: Vec<DueDeadline>,
    /// The earliest unfired deadline due after the claim's `now`, read by the same statement
    /// (`None` when nothing is armed after it).
    pub next: Option<DateTime<Utc>>,
}

/// Arms each `(case, arm)` in one statement.
pub(crate) async fn arm(
    conn: &mut PgConnection,
    arms: &[(CaseId, &Arm)],
    now: DateTime<Utc>,
) -> Result<()> {
    if arms.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at)
         SELECT c, u, k, w, f, d, $7
           FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bool[],
                       $5::timestamptz[], $6::timestamptz[]) AS x(c, u, k, w, f, d)",
    )
    .bind(arms.iter().map(|(c, _)| c.uuid()).collect::<Vec<_>>())
    .bind(
        arms.iter()
            .map(|(_, a)| a.unit.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        arms.iter()
            .map(|(_, a)| clock_name(a.clock))
            .collect::<Vec<_>>(),
    )
    .bind(arms.iter().map(|(_, a)| a.warn).collect::<Vec<_>>())
    .bind(arms.iter().map(|(_, a)| a.fire_at).collect::<Vec<_>>())
    .bind(arms.iter().map(|(_, a)| a.clock_due_at).collect::<Vec<_>>())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

impl CaseTx {
    /// Claims up to `limit` due deadlines that no other transaction holds, and reads in the
    /// same statement when the next one after `now` falls due.
    pub async fn claim_due(&mut self, now: DateTime<Utc>, limit: i64) -> Result<Claim> {
        // one row at least: the next due time joined to what was claimed, so that a round
        // that finds nothing due learns when to look again without a second statement
        let rows: Vec<DeadlineTuple> = sqlx::query_as(
            "WITH d AS (
                 SELECT id, case_id, unit_code, clock, warn, fire_at, clock_due_at FROM deadlines
                  WHERE fired_at IS NULL AND fire_at <= $1
                  ORDER BY fire_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             SELECT d.*, n.next
               FROM (SELECT min(fire_at) AS next FROM deadlines
                      WHERE fired_at IS NULL AND fire_at > $1) n
               LEFT JOIN d ON true
              ORDER BY d.fire_at, d.id",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        let next = rows.first().and_then(|r| r.7);
        for row in rows {
            // the row that carries only `next` when nothing was due
            let (
                Some(id),
                Some(case_id),
                Some(unit),
                Some(clock),
                Some(warn),
                Some(fire_at),
                Some(clock_due_at),
                _,
            ) = row
            else {
                continue;
            };
            let Ok(unit) = UnitCode::parse(&unit) else {
                // a row nobody can act on must not stall every deadline behind it
                tracing::warn!(id, "deadline names no valid unit; retired");
                self.mark_fired_many(&[(id, "corrupt")], Utc::now()).await?;
                continue;
            };
            due.push(DueDeadline {
                id,
                case_id: case_id.into(),
                unit,
                clock: if clock == "accept" {
                    Clock::Accept
                } else {
                    Clock::Handle
                },
                warn,
                fire_at,
                clock_due_at,
            });
        }
        Ok(Claim { due, next })
    }

    /// Marks each `(id, outcome)` fired at `now`, in one statement.
    pub async fn mark_fired_many(
        &mut self,
        fired: &[(i64, &str)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if fired.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE deadlines d SET fired_at = $3, outcome = f.o
               FROM UNNEST($1::int8[], $2::text[]) AS f(id, o)
              WHERE d.id = f.id",
        )
        .persistent(false)
        .bind(fired.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(fired.iter().map(|(_, o)| *o).collect::<Vec<_>>())
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
