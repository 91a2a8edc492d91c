//! Matching's errors and their one mapping to `tonic::Status`.

use temper_persistence::StoreError;
use tonic::Status;

/// Why matching could not take or hand out a task. Invalid requests are answered with
/// `InvalidArgument` directly and never reach this type.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MatchingError {
    /// Another matching node took this queue partition's lease; the caller retries (the next
    /// attempt re-leases it or reaches the new owner).
    #[error("task queue {0} is owned by another matching node; retry")]
    OwnershipLost(String),
    /// The matching ring gives this partition to another node; the caller looks the owner
    /// up again.
    #[error("task queue partition {0} is not owned by this matching node; retry")]
    NotOwner(String),
    /// The engine is stopping; the caller retries against another node or after restart.
    #[error("matching is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error("task queue store: {0}")]
    Store(#[from] StoreError),
}

impl From<MatchingError> for Status {
    fn from(err: MatchingError) -> Self {
        match &err {
            MatchingError::OwnershipLost(_)
            | MatchingError::NotOwner(_)
            | MatchingError::ShuttingDown => Status::unavailable(err.to_string()),
            MatchingError::Store(StoreError::Unavailable(_)) => {
                Status::unavailable(err.to_string())
            }
            MatchingError::Store(StoreError::OwnershipLost { .. }) => {
                Status::unavailable(err.to_string())
            }
            MatchingError::Store(_) => Status::internal(err.to_string()),
        }
    }
}
