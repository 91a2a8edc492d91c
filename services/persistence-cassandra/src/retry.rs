//! The retry policy of conditional writes (lightweight transactions and conditional
//! batches): retry once, on another node, only when the coordinator refused the request
//! before doing anything (`Unavailable`, `Overloaded`, `IsBootstrapping`); never after a
//! timeout, a broken connection or a failure part way, where the write may have been applied.
//!
//! Everything else uses the driver's `DefaultRetryPolicy`, which retries idempotent
//! statements only (our conditional statements are also marked non-idempotent, so this
//! policy is a second, explicit guard: the default policy would for instance retry a read
//! timeout whatever the statement).

use scylla::errors::{DbError, RequestAttemptError};
use scylla::policies::retry::{RequestInfo, RetryDecision, RetryPolicy, RetrySession};

#[derive(Debug, Default)]
pub(crate) struct ConditionalRetryPolicy;

impl RetryPolicy for ConditionalRetryPolicy {
    fn new_session(&self) -> Box<dyn RetrySession> {
        Box::new(ConditionalRetrySession { retried: false })
    }
}

struct ConditionalRetrySession {
    retried: bool,
}

impl RetrySession for ConditionalRetrySession {
    fn decide_should_retry(&mut self, request_info: RequestInfo) -> RetryDecision {
        decide(request_info.error, &mut self.retried)
    }

    fn reset(&mut self) {
        self.retried = false;
    }
}

/// Whether a failed attempt of a conditional write may be sent again.
pub(crate) fn decide(error: &RequestAttemptError, retried: &mut bool) -> RetryDecision {
    let refused_up_front = matches!(
        error,
        RequestAttemptError::UnableToAllocStreamId
            | RequestAttemptError::DbError(
                DbError::Unavailable { .. } | DbError::Overloaded | DbError::IsBootstrapping,
                _
            )
    );
    if refused_up_front && !*retried {
        *retried = true;
        RetryDecision::RetryNextTarget(None)
    } else {
        RetryDecision::DontRetry
    }
}

#[cfg(test)]
mod tests {
    use scylla::errors::WriteType;
    use scylla::statement::Consistency;

    use super::*;

    fn db(e: DbError) -> RequestAttemptError {
        RequestAttemptError::DbError(e, "msg".to_owned())
    }

    #[test]
    fn only_up_front_refusals_are_retried_and_only_once() {
        let unavailable = db(DbError::Unavailable {
            consistency: Consistency::LocalSerial,
            required: 2,
            alive: 1,
        });
        let mut retried = false;
        assert_eq!(
            decide(&unavailable, &mut retried),
            RetryDecision::RetryNextTarget(None)
        );
        assert_eq!(decide(&unavailable, &mut retried), RetryDecision::DontRetry);
        let mut retried = false;
        assert_eq!(
            decide(&db(DbError::Overloaded), &mut retried),
            RetryDecision::RetryNextTarget(None)
        );
        for uncertain in [
            db(DbError::WriteTimeout {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                write_type: WriteType::Cas,
            }),
            db(DbError::ReadTimeout {
                consistency: Consistency::LocalSerial,
                received: 2,
                required: 2,
                data_present: false,
            }),
            db(DbError::WriteFailure {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                numfailures: 1,
                write_type: WriteType::Batch,
            }),
            db(DbError::ServerError),
        ] {
            let mut retried = false;
            assert_eq!(
                decide(&uncertain, &mut retried),
                RetryDecision::DontRetry,
                "{uncertain:?}"
            );
        }
    }
}
