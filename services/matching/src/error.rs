//! Matching's errors. Store errors become statuses through the one shared mapping
//! (`temper_client::status`); only matching's own cases map here.

use temper_client::status;
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
        match err {
            MatchingError::Store(e) => status::store_status(e),
            MatchingError::OwnershipLost(_)
            | MatchingError::NotOwner(_)
            | MatchingError::ShuttingDown => Status::unavailable(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use temper_types::RangeId;
    use tonic::Code;

    use super::*;

    #[test]
    fn matching_errors_have_their_codes() {
        let code = |e: MatchingError| Status::from(e).code();
        assert_eq!(
            code(MatchingError::OwnershipLost("q".into())),
            Code::Unavailable
        );
        assert_eq!(code(MatchingError::NotOwner("q".into())), Code::Unavailable);
        assert_eq!(code(MatchingError::ShuttingDown), Code::Unavailable);
        let lost = StoreError::OwnershipLost {
            held: RangeId(1),
            actual: RangeId(2),
        };
        assert_eq!(code(MatchingError::Store(lost)), Code::Unavailable);
        assert_eq!(
            code(MatchingError::Store(StoreError::Unavailable("down".into()))),
            Code::Unavailable
        );
        assert_eq!(
            code(MatchingError::Store(StoreError::NotFound("x".into()))),
            Code::NotFound
        );
        assert_eq!(
            code(MatchingError::Store(StoreError::Internal("x".into()))),
            Code::Internal
        );
    }
}
