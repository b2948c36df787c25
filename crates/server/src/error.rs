//! The one place where errors become gRPC statuses. Database and Redis error text never
//! reaches a client: it is logged here with the request's span and replaced by a plain message.

use domain::case::TransitionError;
use domain::report::FieldViolation;
use store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A caller over one of its limits (`crate::limits`).
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("service unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldViolation::new(field, description)])
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::KeyReused => ApiError::AlreadyExists(
                "idempotency_key was already used for a different report".into(),
            ),
            StoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
            StoreError::Unavailable(inner) => ApiError::Unavailable(inner.to_string()),
            StoreError::Busy => {
                ApiError::Unavailable("too many writes queued for the database".into())
            }
            StoreError::Corrupt(what) => ApiError::Internal(what),
            StoreError::Db(inner) => ApiError::Internal(inner.to_string()),
            StoreError::Batch(inner) => match &*inner {
                StoreError::Unavailable(e) => ApiError::Unavailable(e.to_string()),
                StoreError::Invalid { field, reason } => {
                    ApiError::invalid(field.clone(), reason.clone())
                }
                other => ApiError::Internal(other.to_string()),
            },
        }
    }
}

impl From<crate::pipeline::DirectoryError> for ApiError {
    fn from(e: crate::pipeline::DirectoryError) -> Self {
        use crate::pipeline::DirectoryError;
        match e {
            DirectoryError::Store(e) => e.into(),
            missing @ (DirectoryError::NoPolicy(_) | DirectoryError::NoCategory(_)) => {
                ApiError::FailedPrecondition(missing.to_string())
            }
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::Invalid { field, reason } => ApiError::invalid(field, reason),
            other => ApiError::FailedPrecondition(other.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid(violations) => {
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                let message = format!("invalid request: {}", fields.join(", "));
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::Aborted(m) => Status::aborted(m),
            ApiError::AlreadyExists(m) => Status::already_exists(m),
            ApiError::Unauthenticated(m) => Status::unauthenticated(m),
            ApiError::PermissionDenied(m) => Status::permission_denied(m),
            ApiError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ApiError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "dependency unavailable");
                Status::unavailable("service temporarily unavailable, retry")
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// The `google.rpc.Code` number of an error, for per-item errors inside streams.
#[must_use]
pub fn code_of(status: &Status) -> i32 {
    status.code() as i32
}
