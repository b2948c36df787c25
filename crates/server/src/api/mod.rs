//! The gRPC services of `griddispatch.v1`. Handlers convert the wire request, check who may
//! do it, call the domain and the store, and convert back; they hold no business rules.

use std::sync::Arc;

use domain::record::CaseRecord;
use store::Store;

use crate::auth::Principal;
use crate::clock::SharedClock;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::{Directory, Env, Plan, Wake};

pub mod console;
pub mod duty;
pub mod escalation;
pub mod export;
pub mod handling;
pub mod media;
pub mod repeats;
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
    /// Group commit for commands on cases.
    pub commands: crate::commands::Commands,
    /// This process's follower of the event feed, shared by every watch and export stream.
    pub feed: Arc<crate::pipeline::feed::FeedTail>,
    /// Per-principal limits (shared with the access layer).
    pub limiter: Arc<crate::limits::Limiter>,
    /// How reporters' contacts are sealed and kept.
    pub contacts: Arc<crate::contacts::ContactPolicy>,
    /// Where photos, videos and voice notes are kept.
    pub media: crate::media::MediaStore,
}

impl Ctx {
    /// A place for one more open stream of `who`, or RESOURCE_EXHAUSTED.
    pub fn open_stream(&self, who: &Principal) -> ApiResult<crate::limits::StreamPermit> {
        self.limiter.open_stream(&who.key()).map_err(|max| {
            ApiError::ResourceExhausted(format!(
                "this caller already holds {max} open streams; close one first"
            ))
        })
    }

    /// Runs one command on one case through the command writers (`crate::commands`): lock
    /// it, check who may act and the expected version, let `decide` build the plan, append it
    /// and commit. The reply is sent after the commit.
    pub async fn command(
        &self,
        who: &Principal,
        case_id: domain::CaseId,
        expected_version: u64,
        action: &'static str,
        decide: impl FnOnce(&Env, &CaseRecord, &mut Plan) -> ApiResult<()> + Send + 'static,
    ) -> ApiResult<CaseRecord> {
        self.commands
            .submit(crate::commands::Command {
                who: who.clone(),
                case_id,
                expected_version,
                action,
                decide: Box::new(decide),
            })
            .await
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

/// A case id field: required, a UUID.
pub fn parse_case_id(s: &str, field: &str) -> Result<domain::CaseId, ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    s.parse()
        .map_err(|_| ApiError::invalid(field, "must be a UUID"))
}
