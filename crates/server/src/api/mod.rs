//! The gRPC services of `griddispatch.v1`. Handlers convert the wire request, check who may
//! do it, call the domain and the store, and convert back; they hold no business rules.

use std::sync::Arc;

use domain::record::CaseRecord;
use store::Store;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::auth::Principal;
use crate::clock::SharedClock;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::{Directory, Env, Plan, Wake};

pub mod console;
pub mod escalation;
pub mod export;
pub mod handling;
pub mod reporting;
pub mod routing;
pub mod stats;
pub mod streams;
pub mod watch;

/// What every handler needs; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub queue: queue::Queue,
    pub clock: SharedClock,
    pub limits: Arc<Limits>,
    pub directory: Arc<Directory>,
    pub wake: Arc<Wake>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub reports: crate::batcher::Batcher,
    /// This process's follower of the event feed, shared by every watch and export stream.
    pub feed: Arc<crate::pipeline::feed::FeedTail>,
}

impl Ctx {
    /// Runs one command on one case: lock it, check who may act and the expected version,
    /// let `decide` build the plan, append it and commit. The reply is sent after the commit.
    pub async fn command(
        &self,
        who: &Principal,
        case_id: Uuid,
        expected_version: u64,
        action: &str,
        decide: impl FnOnce(&Env, &CaseRecord, &mut Plan) -> ApiResult<()>,
    ) -> ApiResult<CaseRecord> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let rec = tx
            .lock_case(case_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("case {case_id} not found")))?;
        if !who.can_see(&rec) {
            return Err(ApiError::PermissionDenied(
                "the case is outside the caller's area".into(),
            ));
        }
        if expected_version != 0 && expected_version != rec.state.version {
            return Err(ApiError::Aborted(format!(
                "the case is at version {}, not {expected_version}: reload and retry",
                rec.state.version
            )));
        }
        let span = crate::trace::case_span("command", case_id, &rec.trace);
        span.record("case_id", tracing::field::display(case_id));
        let env = self
            .directory
            .env(&rec, now)
            .instrument(span.clone())
            .await?;
        let mut plan = Plan::new(&rec, now);
        span.in_scope(|| decide(&env, &rec, &mut plan))?;
        let earliest = plan.arms.iter().map(|a| a.fire_at).min();
        let out = async {
            let out = tx
                .append(
                    &rec,
                    plan.state,
                    &plan.events,
                    &plan.arms,
                    &plan.outbox,
                    &who.actor(),
                    action,
                    now,
                )
                .await?;
            tx.commit().await?;
            tracing::info!(action, version = out.state.version, "case changed");
            Ok::<_, ApiError>(out)
        }
        .instrument(span)
        .await?;
        self.wake.armed(earliest);
        self.wake.relay.notify_one();
        Ok(out)
    }
}

/// Request-size limits that protect the service.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_sync_batch: usize,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// `page_size` of a list request: 0 takes the default; more than the maximum is refused.
pub fn page_size(n: u32) -> Result<u32, ApiError> {
    match n {
        0 => Ok(DEFAULT_PAGE),
        n if n > MAX_PAGE => Err(ApiError::invalid(
            "page_size",
            format!("at most {MAX_PAGE}"),
        )),
        n => Ok(n),
    }
}

/// A command's reply: the case as it is after the commit.
pub(crate) fn case_reply(rec: &CaseRecord) -> Option<proto::v1::Case> {
    Some(proto::convert::case_to_wire(rec))
}

pub fn parse_uuid(s: &str, field: &str) -> Result<uuid::Uuid, ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    uuid::Uuid::parse_str(s).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}
