//! Errors of workflow operations, each with the meaning the Temporal server gives it; the
//! shared mapping (`temper_client::status::workflow_status`) turns them into gRPC statuses;
//! and the commands a workflow task completion may not give.

use temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temper_proto::temporal::api::failure::v1::{Failure, ServerFailureInfo, failure::FailureInfo};

/// Why an operation on a workflow was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WorkflowError {
    /// The workflow task / activity the caller names is not pending (any more).
    #[error("{0}")]
    NotFound(String),
    /// The workflow has closed.
    #[error("workflow execution already completed")]
    AlreadyCompleted,
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Not possible yet; the caller retries later.
    #[error("{0}")]
    Unavailable(String),
    /// The workflow is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The workflow cannot take the request now (its workflow task keeps failing); Temporal's
    /// WorkflowNotReady.
    #[error("{0}")]
    WorkflowNotReady(String),
    /// The request names an event this copy of the state has not seen: it is a cache from
    /// before another node wrote (this node lost the shard and does not know yet). The
    /// history service reloads the state from the store and tries again; a task must never
    /// be dropped as obsolete on the word of a stale cache.
    #[error("{0}")]
    StaleState(String),
    /// Stored state is inconsistent; should never happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A command the server refuses, with the workflow task failure cause to record.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCommand {
    pub cause: WorkflowTaskFailedCause,
    pub message: String,
}

impl BadCommand {
    pub fn new(cause: WorkflowTaskFailedCause, message: &str) -> Self {
        Self {
            cause,
            message: message.to_string(),
        }
    }

    pub(crate) fn failure(&self) -> Failure {
        Failure {
            message: self.message.clone(),
            source: "Server".into(),
            failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
                non_retryable: true,
            })),
            ..Default::default()
        }
    }
}
