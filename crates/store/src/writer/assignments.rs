//! The `assignments` rows of cases: a projection of each case's open holdings
//! (`domain::effects::open_assignments`), kept in step by comparing the rows still open with
//! the holdings the new state wants (ADR 0010).

use chrono::{DateTime, Utc};
use domain::effects::{AssignmentStatus, OpenAssignment, open_assignments};
use domain::record::CaseRecord;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::cases::version_i64;

#[derive(Default)]
struct AssignmentEnds {
    id: Vec<Uuid>,
    status: Vec<&'static str>,
    version: Vec<i64>,
}

/// Assignments still open, with their new figures, as columns.
#[derive(Default)]
struct AssignmentKeeps {
    id: Vec<Uuid>,
    status: Vec<&'static str>,
    accept_due_at: Vec<Option<DateTime<Utc>>>,
    handle_due_at: Vec<Option<DateTime<Utc>>>,
    overdue: Vec<bool>,
    version: Vec<i64>,
}

/// New assignments, as columns.
#[derive(Default)]
struct AssignmentOpens {
    id: Vec<Uuid>,
    case_id: Vec<Uuid>,
    unit: Vec<String>,
    tier: Vec<&'static str>,
    role: Vec<&'static str>,
    status: Vec<&'static str>,
    accept_due_at: Vec<Option<DateTime<Utc>>>,
    handle_due_at: Vec<Option<DateTime<Utc>>>,
    overdue: Vec<bool>,
    version: Vec<i64>,
}

/// An `assignments` row still open, as read back for one case.
struct OpenRow<'r> {
    id: Uuid,
    unit: &'r str,
    role: &'r str,
    status: &'r str,
}

/// What one open row, or one holding the state wants, needs so the rows match the state.
#[derive(Debug, PartialEq)]
enum AssignmentChange<'a> {
    /// The holding is over; the row ends with this status (a submitted share stays submitted).
    End { id: Uuid, status: &'static str },
    /// The holding goes on, with these figures.
    Keep { id: Uuid, to: &'a OpenAssignment },
    /// A holding with no row yet.
    Open(&'a OpenAssignment),
}

/// A row is the same holding
/// as a wanted one when unit and role agree; rows with no wanted holding end, wanted holdings
/// with no row open.
fn assignment_changes<'r, 'a>(
    open: impl Iterator<Item = OpenRow<'r>>,
    desired: &'a [OpenAssignment],
) -> Vec<AssignmentChange<'a>> {
    let same = |d: &OpenAssignment, o: &OpenRow<'_>| {
        d.unit.as_str() == o.unit && d.role.as_str() == o.role
    };
    let open: Vec<OpenRow<'r>> = open.collect();
    let mut out = Vec::with_capacity(open.len() + desired.len());
    for o in &open {
        out.push(match desired.iter().find(|d| same(d, o)) {
            Some(d) => AssignmentChange::Keep { id: o.id, to: d },
            None => AssignmentChange::End {
                id: o.id,
                status: if o.status == AssignmentStatus::Submitted.as_str() {
                    AssignmentStatus::Submitted.as_str()
                } else {
                    AssignmentStatus::Ended.as_str()
                },
            },
        });
    }
    out.extend(
        desired
            .iter()
            .filter(|d| !open.iter().any(|o| same(d, o)))
            .map(AssignmentChange::Open),
    );
    out
}

/// Makes the `assignments` rows match each case's state: ends what is no longer open,
/// updates what still is, and opens a new row for each new holding.
pub(crate) async fn sync(
    conn: &mut PgConnection,
    recs: &[CaseRecord],
    now: DateTime<Utc>,
) -> Result<()> {
    let open: Vec<(Uuid, Uuid, String, String, String)> = sqlx::query_as(
        "SELECT assignment_id, case_id, unit_code, role, status FROM assignments
          WHERE case_id = ANY($1) AND ended_at IS NULL",
    )
    .persistent(false)
    .bind(recs.iter().map(|r| r.case_id.uuid()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    write(conn, recs, &open, now).await
}

/// [`sync`] for cases inserted in this transaction, which have no rows yet to read.
pub(crate) async fn open_new(
    conn: &mut PgConnection,
    recs: &[CaseRecord],
    now: DateTime<Utc>,
) -> Result<()> {
    write(conn, recs, &[], now).await
}

/// The rows that make `open` (each case's rows still open) match each case's state.
async fn write(
    conn: &mut PgConnection,
    recs: &[CaseRecord],
    open: &[(Uuid, Uuid, String, String, String)],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut ended = AssignmentEnds::default();
    let mut kept = AssignmentKeeps::default();
    let mut opened = AssignmentOpens::default();
    for rec in recs {
        let desired = open_assignments(&rec.state);
        let version = version_i64(rec.state.version);
        let mine =
            open.iter()
                .filter(|o| o.1 == rec.case_id.uuid())
                .map(|(id, _, unit, role, status)| OpenRow {
                    id: *id,
                    unit,
                    role,
                    status,
                });
        for change in assignment_changes(mine, &desired) {
            match change {
                AssignmentChange::End { id, status } => {
                    ended.id.push(id);
                    ended.status.push(status);
                    ended.version.push(version);
                }
                AssignmentChange::Keep { id, to } => {
                    kept.id.push(id);
                    kept.status.push(to.status.as_str());
                    kept.accept_due_at.push(to.accept_due_at);
                    kept.handle_due_at.push(to.handle_due_at);
                    kept.overdue.push(to.overdue);
                    kept.version.push(version);
                }
                AssignmentChange::Open(d) => {
                    opened.id.push(Uuid::now_v7());
                    opened.case_id.push(rec.case_id.uuid());
                    opened.unit.push(d.unit.to_string());
                    opened.tier.push(d.unit.tier().map_or("", |t| t.as_str()));
                    opened.role.push(d.role.as_str());
                    opened.status.push(d.status.as_str());
                    opened.accept_due_at.push(d.accept_due_at);
                    opened.handle_due_at.push(d.handle_due_at);
                    opened.overdue.push(d.overdue);
                    opened.version.push(version);
                }
            }
        }
    }
    if !ended.id.is_empty() {
        sqlx::query(
            "UPDATE assignments a SET status = u.status, ended_at = $4, case_version = u.version
               FROM UNNEST($1::uuid[], $2::text[], $3::int8[]) AS u(id, status, version)
              WHERE a.assignment_id = u.id",
        )
        .persistent(false)
        .bind(&ended.id)
        .bind(&ended.status)
        .bind(&ended.version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if !kept.id.is_empty() {
        sqlx::query(
            "UPDATE assignments a SET status = u.status, accept_due_at = u.accept_due_at,
                handle_due_at = u.handle_due_at, overdue = u.overdue, case_version = u.version,
                accepted_at = CASE WHEN u.status <> 'PENDING_ACCEPT' THEN COALESCE(a.accepted_at, $7) END,
                submitted_at = CASE WHEN u.status = 'SUBMITTED' THEN COALESCE(a.submitted_at, $7) END
               FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                           $5::bool[], $6::int8[])
                    AS u(id, status, accept_due_at, handle_due_at, overdue, version)
              WHERE a.assignment_id = u.id",
        )
        .persistent(false)
        .bind(&kept.id)
        .bind(&kept.status)
        .bind(&kept.accept_due_at)
        .bind(&kept.handle_due_at)
        .bind(&kept.overdue)
        .bind(&kept.version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    if !opened.id.is_empty() {
        sqlx::query(
            "INSERT INTO assignments (assignment_id, case_id, unit_code, tier, role, status,
                accept_due_at, handle_due_at, created_at, overdue, case_version, accepted_at)
             SELECT id, c, unit, tier, role, status, a_due, h_due, $11, overdue, version,
                    CASE WHEN status <> 'PENDING_ACCEPT' THEN $11 END
               FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bool[],
                           $10::int8[])
                    AS u(id, c, unit, tier, role, status, a_due, h_due, overdue, version)",
        )
        .bind(&opened.id)
        .bind(&opened.case_id)
        .bind(&opened.unit)
        .bind(&opened.tier)
        .bind(&opened.role)
        .bind(&opened.status)
        .bind(&opened.accept_due_at)
        .bind(&opened.handle_due_at)
        .bind(&opened.overdue)
        .bind(&opened.version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::effects::Role;
    use domain::region::UnitCode;

    fn wanted(unit: &str, role: Role, status: AssignmentStatus) -> OpenAssignment {
        OpenAssignment {
            unit: UnitCode::parse(unit).unwrap(),
            role,
            status,
            accept_due_at: None,
            handle_due_at: None,
            overdue: false,
        }
    }

    fn row<'r>(id: Uuid, unit: &'r str, role: Role, status: &'r str) -> OpenRow<'r> {
        OpenRow {
            id,
            unit,
            role: role.as_str(),
            status,
        }
    }

    #[test]
    fn rows_keep_end_and_open_by_unit_and_role() {
        let (held, helped, left) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let lead = wanted("360102-CGJ", Role::Lead, AssignmentStatus::Accepted);
        let assist = wanted(
            "360102-SWJ",
            Role::Assisting,
            AssignmentStatus::PendingAccept,
        );
        let desired = [lead.clone(), assist.clone()];
        let rows = [
            // the holder's row becomes the lead's: same unit, other role, so it ends
            row(held, "360102-CGJ", Role::Holder, "ACCEPTED"),
            row(helped, "360102-SWJ", Role::Assisting, "PENDING_ACCEPT"),
            row(left, "360102-ZJJ", Role::Assisting, "SUBMITTED"),
        ];
        let changes = assignment_changes(rows.into_iter(), &desired);
        assert_eq!(
            changes,
            vec![
                AssignmentChange::End {
                    id: held,
                    status: "ENDED"
                },
                AssignmentChange::Keep {
                    id: helped,
                    to: &assist
                },
                AssignmentChange::End {
                    id: left,
                    status: "SUBMITTED"
                },
                AssignmentChange::Open(&lead),
            ]
        );
    }

    #[test]
    fn nothing_wanted_and_nothing_open_changes_nothing() {
        assert!(assignment_changes(std::iter::empty(), &[]).is_empty());
    }
}
