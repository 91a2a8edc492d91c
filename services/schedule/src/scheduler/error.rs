//! Why a scheduler operation was refused.

use crate::error::SpecError;

/// Why [`super::create`] or [`super::handle`] refused an input. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The request is invalid (INVALID_ARGUMENT); the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// UpdateSchedule's conflict token is not the current one (Temporal: FAILED_PRECONDITION
    /// "mismatched conflict token").
    #[error("mismatched conflict token")]
    ConflictTokenMismatch,
    /// The stored state is unusable (a bug or a corrupt blob).
    #[error("scheduler state: {0}")]
    Internal(String),
}

impl From<SpecError> for SchedulerError {
    fn from(e: SpecError) -> Self {
        SchedulerError::InvalidArgument(e.to_string())
    }
}
