//! 合并 and 拆分: a unit merges a case into another of the same matter, or splits a wrongly
//! linked repeat off again (ADR 0044). Each changes two cases, so each is one transaction of
//! the case writer around both, locked in id order.

use domain::CaseId;
use domain::record::CaseRecord;
use domain::region::UnitCode;
use domain::repeat::Linked;
use tracing::info;

use super::Ctx;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::Plan;

/// Which of the two cases a request names first.
pub(crate) enum Link {
    /// `case` is merged into `into`.
    Merge { into: CaseId, reason: String },
    /// `case` is split off the case it is linked into.
    Split { reason: String },
}

impl Ctx {
    /// Merges or splits `case` as `unit`; answers the case and the other one, as committed.
    pub(crate) async fn link(
        &self,
        who: &Principal,
        case_id: CaseId,
        unit: UnitCode,
        expected_version: u64,
        link: Link,
    ) -> ApiResult<(CaseRecord, CaseRecord)> {
        let not_found = |id: CaseId| ApiError::NotFound(format!("case {id} not found"));
        let other_id = match &link {
            Link::Merge { into, .. } => *into,
            // the case it is linked into, read before the lock and checked again under it
            Link::Split { .. } => self
                .store
                .get_case(case_id)
                .await?
                .filter(|r| who.can_see(r))
                .ok_or_else(|| not_found(case_id))?
                .state
                .merged_into
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(
                        "the case is not linked into another case: nothing to split".into(),
                    )
                })?,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let mut locked = tx.lock_cases(&[case_id, other_id]).await?;
        let take = |locked: &mut Vec<CaseRecord>, id: CaseId| {
            let i = locked.iter().position(|r| r.case_id == id);
            i.map(|i| locked.swap_remove(i))
                .filter(|r| who.can_see(r))
                .ok_or_else(|| not_found(id))
        };
        let case = take(&mut locked, case_id)?;
        if expected_version != 0 && expected_version != case.state.version {
            return Err(ApiError::Aborted(format!(
                "the case is at version {}, not {expected_version}: reload and retry",
                case.state.version
            )));
        }
        if other_id == case_id {
            return Err(ApiError::invalid(
                "into_case_id",
                "a case cannot be merged into itself",
            ));
        }
        let other = take(&mut locked, other_id)?;
        if case.county != other.county {
            return Err(ApiError::FailedPrecondition(
                "the two cases are in different counties".into(),
            ));
        }
        let (decided, action) = match &link {
            Link::Merge { reason, .. } => (
                domain::repeat::merge(
                    &unit,
                    reason,
                    (case.case_id, &case.state),
                    (other.case_id, &other.state),
                    now,
                )?,
                "merge",
            ),
            Link::Split { reason } => (
                domain::repeat::split(
                    &unit,
                    reason,
                    (case.case_id, &case.state),
                    (other.case_id, &other.state),
                    now,
                )?,
                "split",
            ),
        };
        let Linked {
            case: (_, case_event),
            other: (_, other_event),
        } = decided;
        // through the plans, so that each case's queues follow its state
        let mut case_plan = Plan::new(&case, now);
        case_plan.push(case_event)?;
        if matches!(link, Link::Split { .. }) {
            // REPORTED again: the router routes it as it routes a new report
            case_plan
                .outbox
                .push(queue::Message::Intake(queue::IntakeMsg {
                    case_id: case.case_id,
                    version: case_plan.state.version,
                    county: case.county.clone(),
                    trace: case.trace.clone(),
                }));
        }
        let mut other_plan = Plan::new(&other, now);
        other_plan.push(other_event)?;
        let actor = who.actor();
        let items = [(&case, &case_plan), (&other, &other_plan)].map(|(rec, plan)| store::Append {
            before: rec,
            after: plan.state.clone(),
            events: &plan.events,
            arms: &plan.arms,
            outbox: &plan.outbox,
            actor: &actor,
            action,
        });
        let mut written = tx.append_many(&items, now).await?;
        tx.commit().await?;
        self.wake.relay.notify_one();
        let other = written.pop();
        let case = written.pop();
        let (Some(case), Some(other)) = (case, other) else {
            return Err(ApiError::from(store::StoreError::Corrupt(
                "a write of two cases answered fewer".into(),
            )));
        };
        info!(
            %case_id,
            other = %other.case_id,
            action,
            reports = other.state.reports,
            "cases linked"
        );
        Ok((case, other))
    }
}
