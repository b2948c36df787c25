//! The duty notifier's calls (ADR 0043): one row per person to call about a case reaching a
//! unit's queue, in call order. The first is due at once; each later one waits until the one
//! before it is unanswered or dead-lettered. The notifier's place in the event feed moves in the
//! transaction that records the calls, so a window of the feed is turned into calls once.

use chrono::{DateTime, Utc};
use domain::CaseId;
use uuid::Uuid;

use crate::{Result, Store};

/// A call to record: the person at `step` of the call order.
#[derive(Debug, Clone)]
pub struct NewNotice {
    pub case_id: CaseId,
    pub version: u64,
    pub unit: String,
    pub step: i32,
    pub person_id: String,
    pub person_name: String,
}

/// A call claimed for delivery, or one whose answer time has passed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notice {
    pub notice_id: Uuid,
    pub case_id: Uuid,
    pub version: i64,
    pub unit_code: String,
    pub step: i32,
    pub person_id: String,
    pub person_name: String,
    pub attempts: i32,
    /// This holder's claim: only it may settle the call.
    pub claim: Option<Uuid>,
}

const COLUMNS: &str =
    "notice_id, case_id, version, unit_code, step, person_id, person_name, attempts, claim";

/// The call still matters: its case waits for its unit to accept it, and no later event put
/// the case in that unit's queue again (that one has calls of its own).
const STILL_WAITING: &str = "EXISTS (SELECT 1 FROM assignments a
                         WHERE a.case_id = n.case_id AND a.unit_code = n.unit_code
                           AND a.status = 'PENDING_ACCEPT')
            AND NOT EXISTS (SELECT 1 FROM duty_notices m
                             WHERE m.case_id = n.case_id AND m.unit_code = n.unit_code
                               AND m.version > n.version)";

impl Store {
    /// Where the notifier has read the feed to; the first call starts it at the feed's head
    /// (cases already waiting when the notifier is first set up are not called about).
    pub async fn notifier_cursor(&self) -> Result<i64> {
        let head = self.feed_head().await?;
        sqlx::query(
            "INSERT INTO duty_notifier_cursor (id, pos) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(head)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT pos FROM duty_notifier_cursor WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Records the calls of a window of the feed and moves the cursor from `from` to `to`, in
    /// one transaction. False when another notifier moved it first (nothing is written).
    pub async fn add_notices(
        &self,
        from: i64,
        to: i64,
        notices: &[NewNotice],
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved =
            sqlx::query("UPDATE duty_notifier_cursor SET pos = $2 WHERE id = 1 AND pos = $1")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        for n in notices {
            sqlx::query(
                "INSERT INTO duty_notices
                    (notice_id, case_id, version, unit_code, step, person_id, person_name,
                     status, next_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (case_id, version, unit_code, step) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(n.case_id.uuid())
            .bind(i64::try_from(n.version).unwrap_or(i64::MAX))
            .bind(&n.unit)
            .bind(n.step)
            .bind(&n.person_id)
            .bind(&n.person_name)
            .bind(if n.step == 0 { "pending" } else { "waiting" })
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Claims up to `limit` calls due at `now` for delivery: each is out of others' reach
    /// until `lease_until`, when it is due again if its delivery was never settled. Calls
    /// whose unit has accepted the case meanwhile are answered, not delivered.
    pub async fn claim_notices(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Notice>> {
        sqlx::query(&format!(
            "UPDATE duty_notices n SET status = 'answered', claim = NULL
              WHERE n.status = 'pending' AND n.next_at <= $1 AND NOT ({STILL_WAITING})"
        ))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_as(&format!(
            "UPDATE duty_notices SET next_at = $2, claim = gen_random_uuid()
              WHERE notice_id IN (SELECT notice_id FROM duty_notices
                                   WHERE status = 'pending' AND next_at <= $1
                                   ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The call reached its receiver; unanswered by `answer_by`, the next person is called.
    /// Nothing changes when another holder has claimed the call since (its lease ran out).
    pub async fn notice_delivered(&self, n: &Notice, answer_by: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE duty_notices SET status = 'delivered', attempts = attempts + 1,
                    answer_by = $2, last_error = NULL, claim = NULL
              WHERE notice_id = $1 AND status = 'pending' AND claim = $3",
        )
        .bind(n.notice_id)
        .bind(answer_by)
        .bind(n.claim)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The delivery failed: tried again at `retry_at`, or dead-lettered when `None` (and
    /// the next person called at once).
    pub async fn notice_failed(
        &self,
        n: &Notice,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let settled = sqlx::query(
            "UPDATE duty_notices SET attempts = attempts + 1, last_error = $2, claim = NULL,
                    status = CASE WHEN $3::timestamptz IS NULL THEN 'dead' ELSE status END,
                    next_at = COALESCE($3, next_at)
              WHERE notice_id = $1 AND status = 'pending' AND claim = $4",
        )
        .bind(n.notice_id)
        .bind(error.chars().take(500).collect::<String>())
        .bind(retry_at)
        .bind(n.claim)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if settled == 1 && retry_at.is_none() {
            call_next(&mut tx, n, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delivered calls whose answer time has passed, settled: when the case no longer waits
    /// for the unit to accept it, the call was answered; otherwise it is unanswered and the
    /// next person in the call order is due now. Answers the unanswered ones.
    pub async fn settle_unanswered(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<Notice>> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(Notice, bool)> = sqlx::query_as::<_, NoticeWaiting>(&format!(
            "SELECT {COLUMNS}, {STILL_WAITING} AS waiting FROM duty_notices n
              WHERE status = 'delivered' AND answer_by <= $1
              ORDER BY answer_by LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| (r.notice, r.waiting))
        .collect();
        let mut unanswered = Vec::new();
        for (n, waiting) in due {
            sqlx::query("UPDATE duty_notices SET status = $2 WHERE notice_id = $1")
                .bind(n.notice_id)
                .bind(if waiting { "unanswered" } else { "answered" })
                .execute(&mut *tx)
                .await?;
            if waiting {
                call_next(&mut tx, &n, now).await?;
                unanswered.push(n);
            }
        }
        tx.commit().await?;
        Ok(unanswered)
    }

    /// Every call about a case, in order (for tests and operators).
    pub async fn notices_of(&self, case: CaseId) -> Result<Vec<(i32, String, String, i32)>> {
        Ok(sqlx::query_as(
            "SELECT step, person_id, status, attempts FROM duty_notices
              WHERE case_id = $1 ORDER BY version, unit_code, step",
        )
        .bind(case.uuid())
        .fetch_all(&self.pool)
        .await?)
    }
}

#[derive(sqlx::FromRow)]
struct NoticeWaiting {
    #[sqlx(flatten)]
    notice: Notice,
    waiting: bool,
}

/// Makes the call after `n` due now, if there is one and the case still waits for the unit.
async fn call_next(tx: &mut sqlx::PgConnection, n: &Notice, now: DateTime<Utc>) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE duty_notices n SET status = 'pending', next_at = $5
          WHERE case_id = $1 AND version = $2 AND unit_code = $3 AND step = $4
            AND status = 'waiting' AND {STILL_WAITING}"
    ))
    .bind(n.case_id)
    .bind(n.version)
    .bind(&n.unit_code)
    .bind(n.step + 1)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}
