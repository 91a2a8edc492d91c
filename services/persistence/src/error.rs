//! Store errors. Conditional-write failures say exactly which condition failed, so callers
//! can tell ownership loss (stop the shard) from a version conflict (reload and retry).

use temper_types::RangeId;

use crate::CurrentExecution;

/// A store call failed for a reason other than a write condition.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store could not be reached or timed out; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A conditional write failed in a way that does not prove it was not applied (a
    /// timeout during a lightweight transaction). The caller must reload what it wrote
    /// before going on; a shard reloads itself.
    #[error("store write outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// A row that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique row (namespace name or id, cluster metadata) exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The lease or shard this write was made under belongs to someone else now.
    #[error("ownership lost: held range {held}, store has {actual}")]
    OwnershipLost { held: RangeId, actual: RangeId },
    /// A conditional update found a different version than expected.
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    /// Stored data could not be decoded, or the request was malformed.
    #[error("corrupt or invalid data: {0}")]
    Invalid(String),
    /// The backend does not have this feature (yet); the message says which.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else from the driver.
    #[error("store error: {0}")]
    Internal(String),
}

/// Why one write of a commit batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// The execution row's `db_record_version` was not the expected one (`None`: no row).
    VersionMismatch {
        expected: Option<i64>,
        actual: Option<i64>,
    },
    /// The current-run pointer did not match the condition; `actual` is what the store has.
    CurrentRunMismatch { actual: Option<CurrentExecution> },
}

/// A conditional commit failed: nothing of the batch was applied.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// The shard's `range_id` is no longer the one the writer holds.
    #[error("shard ownership lost: held range {held}, store has {actual}")]
    ShardOwnershipLost { held: RangeId, actual: RangeId },
    /// Write `index` of the batch failed its condition. Other writes may be fine: retry them
    /// without it.
    #[error("write {index} of the batch conflicted: {kind:?}")]
    Conflict { index: usize, kind: ConflictKind },
    #[error(transparent)]
    Store(#[from] StoreError),
}
