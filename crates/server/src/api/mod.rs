//! The gRPC services of `griddispatch.v1`. Handlers convert the wire request, check who may
//! do it, call the domain and the store, and convert back; they hold no business rules.

use std::sync::Arc;

use store::Store;

use crate::clock::SharedClock;
use crate::error::ApiError;

pub mod pending;
pub mod reporting;
pub mod routing;

/// What every handler needs; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub clock: SharedClock,
    pub limits: Arc<Limits>,
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

pub fn parse_uuid(s: &str, field: &str) -> Result<uuid::Uuid, ApiError> {
    if s.is_empty() {
        return Err(ApiError::invalid(field, "required"));
    }
    uuid::Uuid::parse_str(s).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}
