//! Errors of the background workers, and of the directory they share with the RPC handlers.
//! They keep their sources; `crate::error` turns them into statuses where a handler meets one.

use std::time::Duration;

use domain::case::TransitionError;
use domain::policy::CategoryCode;
use domain::region::RegionCode;
use queue::QueueError;
use store::StoreError;

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("reading the registry: {0}")]
    Store(#[from] StoreError),
    #[error("county {0} has no routing policy")]
    NoPolicy(RegionCode),
    #[error("category {0} is no longer in the catalogue")]
    NoCategory(CategoryCode),
}

/// Why a worker's step failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("the state machine refused the event: {0}")]
    Refused(#[from] TransitionError),
    #[error("no unit above grid {0} in the registry")]
    NoUnit(RegionCode),
    #[error("{what} took longer than {limit:?}")]
    TooSlow { what: &'static str, limit: Duration },
    /// A fault point armed by a test (test builds only).
    #[error("fault point {0}")]
    Fault(&'static str),
}

impl WorkerError {
    /// Whether no retry can help until the registry or the case changes: a missing policy,
    /// category or unit, or an event the state machine refuses. Everything else is a fault
    /// of the moment, and the step is rolled back and run again.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            WorkerError::Directory(DirectoryError::NoPolicy(_) | DirectoryError::NoCategory(_))
                | WorkerError::Refused(_)
                | WorkerError::NoUnit(_)
        )
    }
}

pub type WorkerResult<T> = Result<T, WorkerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_no_retry_can_change_is_permanent() {
        let county = RegionCode::parse("360102").unwrap();
        assert!(WorkerError::from(DirectoryError::NoPolicy(county.clone())).is_permanent());
        assert!(WorkerError::NoUnit(county).is_permanent());
        assert!(!WorkerError::from(StoreError::Busy).is_permanent());
        assert!(!WorkerError::from(DirectoryError::Store(StoreError::Busy)).is_permanent());
        assert!(!WorkerError::from(QueueError::Unavailable("down".into())).is_permanent());
        assert!(!WorkerError::Fault("timer-directory-unavailable").is_permanent());
        assert!(
            !WorkerError::TooSlow {
                what: "routing",
                limit: Duration::from_secs(30)
            }
            .is_permanent()
        );
    }
}
