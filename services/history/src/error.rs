//! The history service's errors and their one mapping to gRPC statuses with Temporal's
//! error details.

use prost::Message;
use temper_persistence::{CommitError, StoreError};
use temper_proto::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use temper_proto::temporal::api::errordetails::v1::{
    ResourceExhaustedFailure, WorkflowExecutionAlreadyStartedFailure, WorkflowNotReadyFailure,
};
use temper_workflow::WorkflowError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("workflow execution not found: {0}")]
    ExecutionNotFound(String),
    #[error("Workflow execution is already running. WorkflowId: {workflow_id}, RunId: {run_id}.")]
    AlreadyStarted {
        workflow_id: String,
        run_id: String,
        start_request_id: String,
    },
    #[error("shard {0} is not owned by this node")]
    ShardNotOwned(u32),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("too many concurrent updates to one workflow; retry")]
    Busy,
    /// A workflow update was lost in the server before the workflow accepted it; sending it
    /// again admits it again.
    #[error("workflow update was aborted")]
    UpdateAborted,
}

impl From<CommitError> for HistoryError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(s) => HistoryError::Store(s),
            CommitError::ShardOwnershipLost { held, actual } => {
                HistoryError::Store(StoreError::OwnershipLost { held, actual })
            }
            CommitError::Conflict { .. } => HistoryError::Busy,
        }
    }
}

/// Wrap error details the way gRPC carries them: a `google.rpc.Status` with one `Any`.
pub fn status_with_details<M: Message + prost::Name>(
    code: Code,
    message: String,
    detail: &M,
) -> Status {
    let any = temper_proto::wkt::Any {
        type_url: M::type_url(),
        value: detail.encode_to_vec(),
    };
    let st = temper_proto::google::rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![any],
    };
    Status::with_details(code, message, st.encode_to_vec().into())
}

impl From<HistoryError> for Status {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Workflow(WorkflowError::NotFound(m)) => Status::not_found(m),
            HistoryError::Workflow(WorkflowError::AlreadyCompleted) => {
                Status::not_found("workflow execution already completed")
            }
            HistoryError::Workflow(WorkflowError::InvalidArgument(m)) => {
                Status::invalid_argument(m)
            }
            // Per-workflow limits (in-flight updates, signals): a concurrency limit, as
            // Temporal reports its in-flight update limit.
            HistoryError::Workflow(WorkflowError::ResourceExhausted(m)) => status_with_details(
                Code::ResourceExhausted,
                m,
                &ResourceExhaustedFailure {
                    cause: ResourceExhaustedCause::ConcurrentLimit as i32,
                    scope: ResourceExhaustedScope::Namespace as i32,
                },
            ),
            HistoryError::Workflow(WorkflowError::Internal(m)) => Status::internal(m),
            HistoryError::Workflow(WorkflowError::Unavailable(m)) => Status::unavailable(m),
            HistoryError::Workflow(WorkflowError::StaleState(m)) => Status::unavailable(m),
            HistoryError::Workflow(WorkflowError::FailedPrecondition(m)) => {
                Status::failed_precondition(m)
            }
            HistoryError::Workflow(WorkflowError::WorkflowNotReady(m)) => {
                status_with_details(Code::FailedPrecondition, m, &WorkflowNotReadyFailure {})
            }
            HistoryError::ExecutionNotFound(m) => {
                Status::not_found(format!("workflow execution not found: {m}"))
            }
            e @ HistoryError::AlreadyStarted { .. } => {
                let msg = e.to_string();
                let HistoryError::AlreadyStarted {
                    run_id,
                    start_request_id,
                    ..
                } = e
                else {
                    unreachable!("matched above")
                };
                status_with_details(
                    Code::AlreadyExists,
                    msg,
                    &WorkflowExecutionAlreadyStartedFailure {
                        start_request_id,
                        run_id,
                        ..Default::default()
                    },
                )
            }
            HistoryError::ShardNotOwned(s) => {
                Status::unavailable(format!("shard {s} is not owned by this node"))
            }
            HistoryError::Store(StoreError::OwnershipLost { .. }) => {
                Status::unavailable("shard ownership lost; retry")
            }
            HistoryError::Store(StoreError::Unavailable(m)) => Status::unavailable(m),
            HistoryError::Store(s) => Status::internal(s.to_string()),
            HistoryError::Busy => Status::unavailable("workflow is busy; retry"),
            HistoryError::UpdateAborted => Status::unavailable("workflow update was aborted"),
        }
    }
}
