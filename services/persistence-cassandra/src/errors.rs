//! Driver errors as store errors.
//!
//! The one rule that matters: a conditional write (lightweight transaction) that failed in a
//! way that does not prove it was never applied has an UNKNOWN outcome. It may have been
//! applied (Paxos may even finish it later). Nothing retries it blindly: the caller gets
//! [`StoreError::OutcomeUnknown`] and must reload what it wrote before
//! trying again (a shard reloads its state; a version or range check then tells the truth).
//! The commit batch first tries to resolve the outcome with a linearizable read
//! (`commit::resolve_unknown`).

use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use temper_persistence::StoreError;

/// What was being done, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A read, or a write that can be repeated safely.
    Idempotent,
    /// A conditional write (LWT) or conditional batch.
    Conditional,
}

/// Prefix of the message of an error whose write may or may not have been applied.
pub(crate) const OUTCOME_UNKNOWN: &str = "outcome unknown";

/// Map a driver error. `what` names the operation ("commit to shard 3").
pub(crate) fn store_error(what: &str, op: Op, e: &ExecutionError) -> StoreError {
    match classify(e) {
        Class::NotApplied => StoreError::Unavailable(format!("{what}: {e}")),
        Class::Uncertain if op == Op::Conditional => StoreError::OutcomeUnknown(format!(
            "{what}: {OUTCOME_UNKNOWN} (the conditional write may or may not have been \
             applied; reload before retrying): {e}"
        )),
        Class::Uncertain => StoreError::Unavailable(format!("{what}: {e}")),
        Class::Rejected => StoreError::Internal(format!(
            "{what}: the cluster rejected the request (is the schema the one this temper \
             expects? run `temper schema migrate`): {e}"
        )),
        Class::Denied => StoreError::Internal(format!(
            "{what}: not allowed; check the Cassandra username, password and permissions: {e}"
        )),
        Class::Bug => StoreError::Invalid(format!("{what}: {e}")),
    }
}

/// How sure we are about what happened to a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Certainly not executed: the coordinator refused it up front, or it never left.
    NotApplied,
    /// Maybe executed: a timeout, a broken connection, a failure during the write.
    Uncertain,
    /// The statement itself is wrong for this cluster (schema mismatch, syntax).
    Rejected,
    /// Authentication or authorization.
    Denied,
    /// We sent something malformed (serialization, bad values).
    Bug,
}

pub(crate) fn classify(e: &ExecutionError) -> Class {
    match e {
        ExecutionError::BadQuery(_) => Class::Bug,
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) => Class::NotApplied,
        ExecutionError::PrepareError(_) => Class::NotApplied,
        ExecutionError::RequestTimeout(_) => Class::Uncertain,
        ExecutionError::LastAttemptError(attempt) => classify_attempt(attempt),
        ExecutionError::UseKeyspaceError(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => Class::Uncertain,
        // The enum is non-exhaustive: anything new is treated as the worst case.
        _ => Class::Uncertain,
    }
}

fn classify_attempt(e: &RequestAttemptError) -> Class {
    match e {
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => Class::Bug,
        RequestAttemptError::UnableToAllocStreamId => Class::NotApplied,
        RequestAttemptError::DbError(db, _) => classify_db(db),
        // Broken connection, unparsable response, re-prepare trouble: the request may have
        // reached the coordinator.
        _ => Class::Uncertain,
    }
}

fn classify_db(e: &DbError) -> Class {
    match e {
        // Refused before anything was written.
        DbError::Unavailable { .. }
        | DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::RateLimitReached { .. }
        | DbError::Unprepared { .. } => Class::NotApplied,
        DbError::SyntaxError
        | DbError::Invalid
        | DbError::ConfigError
        | DbError::AlreadyExists { .. }
        | DbError::FunctionFailure { .. } => Class::Rejected,
        DbError::AuthenticationError | DbError::Unauthorized => Class::Denied,
        // A read timing out changed nothing, but for an LWT the read is the Paxos prepare
        // phase of a write: still uncertain only for writes, which `store_error` handles
        // through `Op`. Writes that timed out or failed part way are uncertain.
        DbError::ReadTimeout { .. } | DbError::ReadFailure { .. } => Class::Uncertain,
        DbError::WriteTimeout { .. } | DbError::WriteFailure { .. } => Class::Uncertain,
        // Server bug, protocol error, truncate error, anything new (CAS_WRITE_UNKNOWN
        // arrives as `Other` on some versions): assume the worst.
        _ => Class::Uncertain,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scylla::errors::WriteType;
    use scylla::statement::Consistency;

    use super::*;

    fn db(e: DbError) -> ExecutionError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, "msg".to_owned()))
    }

    fn cas_timeout() -> ExecutionError {
        db(DbError::WriteTimeout {
            consistency: Consistency::LocalSerial,
            received: 1,
            required: 2,
            write_type: WriteType::Cas,
        })
    }

    #[test]
    fn conditional_writes_with_uncertain_failures_have_an_unknown_outcome() {
        for e in [
            cas_timeout(),
            ExecutionError::RequestTimeout(Duration::from_secs(10)),
            db(DbError::WriteFailure {
                consistency: Consistency::LocalQuorum,
                received: 1,
                required: 2,
                numfailures: 1,
                write_type: WriteType::Batch,
            }),
            db(DbError::ServerError),
        ] {
            let err = store_error("commit", Op::Conditional, &e);
            assert!(
                matches!(&err, StoreError::OutcomeUnknown(m) if m.contains(OUTCOME_UNKNOWN)),
                "{e:?} -> {err:?}"
            );
            let err = store_error("read", Op::Idempotent, &e);
            assert!(
                matches!(&err, StoreError::Unavailable(m) if !m.contains(OUTCOME_UNKNOWN)),
                "{e:?} -> {err:?}"
            );
        }
    }

    #[test]
    fn refusals_before_execution_are_plain_unavailable() {
        for e in [
            db(DbError::Unavailable {
                consistency: Consistency::LocalQuorum,
                required: 2,
                alive: 1,
            }),
            db(DbError::Overloaded),
            db(DbError::IsBootstrapping),
            ExecutionError::EmptyPlan,
        ] {
            let err = store_error("commit", Op::Conditional, &e);
            assert!(
                matches!(&err, StoreError::Unavailable(m) if !m.contains(OUTCOME_UNKNOWN)),
                "{e:?} -> {err:?}"
            );
        }
    }

    #[test]
    fn schema_and_permission_problems_say_what_to_check() {
        let err = store_error("read", Op::Idempotent, &db(DbError::Invalid));
        assert!(
            matches!(&err, StoreError::Internal(m) if m.contains("schema migrate")),
            "{err:?}"
        );
        let err = store_error("read", Op::Idempotent, &db(DbError::Unauthorized));
        assert!(
            matches!(&err, StoreError::Internal(m) if m.contains("password")),
            "{err:?}"
        );
    }
}
