//! The reads the workers and consoles start from: a unit's pending items, every pending
//! assignment and every unrouted case for rebuilding queues, a case's assignments.

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::Tier;
use domain::effects::{AssignmentStatus, Role};
use domain::region::UnitCode;
use queue::Message;
use uuid::Uuid;

use crate::rows::corrupt;
use crate::{Result, Store};

/// A unit's pending item, for the start of a console's queue.
#[derive(Debug, Clone)]
pub struct PendingItem {
    pub case_id: CaseId,
    pub assignment_id: Uuid,
    pub accept_due_at: Option<DateTime<Utc>>,
}

/// A pending-accept assignment anywhere, for rebuilding inboxes.
#[derive(Debug, Clone)]
pub struct PendingAnywhere {
    pub case_id: CaseId,
    pub unit: UnitCode,
    pub version: u64,
}

impl PendingAnywhere {
    /// The inbox item the assignment stands for.
    #[must_use]
    pub fn message(&self) -> Message {
        Message::Inbox(queue::InboxMsg {
            kind: domain::effects::ItemKind::ToAccept,
            case_id: self.case_id,
            version: self.version,
            unit: self.unit.clone(),
        })
    }
}

/// A case still waiting for the router.
#[derive(Debug, Clone)]
pub struct Unrouted {
    pub case_id: CaseId,
    pub county: domain::region::RegionCode,
    pub version: u64,
}

impl Unrouted {
    /// The intake entry that sends the case to its county's router.
    #[must_use]
    pub fn message(&self) -> Message {
        Message::Intake(queue::IntakeMsg {
            case_id: self.case_id,
            version: self.version,
            county: self.county.clone(),
            trace: std::collections::BTreeMap::new(),
        })
    }

    fn from_row((case_id, county, version): (Uuid, String, i64)) -> Result<Unrouted> {
        Ok(Unrouted {
            case_id: case_id.into(),
            county: domain::region::RegionCode::parse(&county)
                .map_err(|e| corrupt("county code", e))?,
            version: u64::try_from(version).map_err(|e| corrupt("case version", e))?,
        })
    }
}

impl Store {
    pub async fn pending_for_unit(&self, unit: &UnitCode) -> Result<Vec<PendingItem>> {
        let rows: Vec<(Uuid, Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT case_id, assignment_id, accept_due_at FROM assignments
              WHERE unit_code = $1 AND status = 'PENDING_ACCEPT' AND ended_at IS NULL
              ORDER BY accept_due_at NULLS LAST, created_at",
        )
        .bind(unit.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(case_id, assignment_id, accept_due_at)| PendingItem {
                case_id: case_id.into(),
                assignment_id,
                accept_due_at,
            })
            .collect())
    }

    /// Every pending-accept assignment, after `after` (keyset on assignment id), for rebuilds.
    pub async fn pending_everywhere(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, PendingAnywhere)>> {
        let rows: Vec<(Uuid, Uuid, String, i64)> = sqlx::query_as(
            "SELECT a.assignment_id, a.case_id, a.unit_code, c.version
               FROM assignments a JOIN cases c USING (case_id)
              WHERE a.status = 'PENDING_ACCEPT' AND a.ended_at IS NULL
                AND ($1::uuid IS NULL OR a.assignment_id > $1)
              ORDER BY a.assignment_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(aid, case_id, unit, version)| {
                Ok((
                    aid,
                    PendingAnywhere {
                        case_id: case_id.into(),
                        unit: UnitCode::parse(&unit).map_err(|e| corrupt("unit code", e))?,
                        version: u64::try_from(version).map_err(|e| corrupt("case version", e))?,
                    },
                ))
            })
            .collect()
    }

    /// Cases still waiting for the router, after `after`, for rebuilding intake queues.
    pub async fn reported_cases(&self, after: Option<CaseId>, limit: i64) -> Result<Vec<Unrouted>> {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT case_id, county_code, version FROM cases
              WHERE status = 'REPORTED' AND ($1::uuid IS NULL OR case_id > $1)
              ORDER BY case_id LIMIT $2",
        )
        .bind(after.map(CaseId::uuid))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Unrouted::from_row).collect()
    }

    /// Cases still REPORTED that were filed before `before` (oldest first).
    pub async fn reported_before(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Unrouted>> {
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT case_id, county_code, version FROM cases
              WHERE status = 'REPORTED' AND reported_at < $1
              ORDER BY reported_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Unrouted::from_row).collect()
    }

    /// Every unit code, for the in-memory registry.
    pub async fn unit_codes(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT code FROM units")
            .fetch_all(&self.pool)
            .await?)
    }

    /// County codes with a policy: the intake queues the router reads.
    pub async fn counties(&self) -> Result<Vec<domain::region::RegionCode>> {
        let codes: Vec<String> =
            sqlx::query_scalar("SELECT county_code FROM policies ORDER BY county_code")
                .fetch_all(&self.pool)
                .await?;
        codes
            .iter()
            .map(|c| domain::region::RegionCode::parse(c).map_err(|e| corrupt("county code", e)))
            .collect()
    }

    /// The assignments of a case, oldest first.
    pub async fn case_assignments(&self, case_id: CaseId) -> Result<Vec<Assignment>> {
        let rows: Vec<AssignmentRow> = sqlx::query_as(
            "SELECT assignment_id, case_id, unit_code, tier, role, status, accept_due_at,
                    handle_due_at, created_at, accepted_at, submitted_at, overdue, note
               FROM assignments WHERE case_id = $1 ORDER BY created_at, assignment_id",
        )
        .bind(case_id.uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Assignment::try_from).collect()
    }
}

/// An assignment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub assignment_id: Uuid,
    pub case_id: CaseId,
    pub unit: UnitCode,
    pub tier: Tier,
    pub role: Role,
    pub status: AssignmentStatus,
    pub accept_due_at: Option<DateTime<Utc>>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub note: String,
}

impl TryFrom<AssignmentRow> for Assignment {
    type Error = crate::StoreError;
    fn try_from(r: AssignmentRow) -> Result<Assignment> {
        Ok(Assignment {
            assignment_id: r.assignment_id,
            case_id: r.case_id.into(),
            unit: UnitCode::parse(&r.unit_code).map_err(|e| corrupt("unit code", e))?,
            tier: r.tier.parse().map_err(|e| corrupt("assignment tier", e))?,
            role: r.role.parse().map_err(|e| corrupt("assignment role", e))?,
            status: r
                .status
                .parse()
                .map_err(|e| corrupt("assignment status", e))?,
            accept_due_at: r.accept_due_at,
            handle_due_at: r.handle_due_at,
            created_at: r.created_at,
            accepted_at: r.accepted_at,
            submitted_at: r.submitted_at,
            overdue: r.overdue,
            note: r.note,
        })
    }
}

/// An assignment's row as read, before its columns are checked.
#[derive(sqlx::FromRow)]
struct AssignmentRow {
    pub assignment_id: Uuid,
    pub case_id: Uuid,
    pub unit_code: String,
    pub tier: String,
    pub role: String,
    pub status: String,
    pub accept_due_at: Option<DateTime<Utc>>,
    pub handle_due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub note: String,
}
