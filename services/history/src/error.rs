//! The history service's errors. Their store and workflow errors become statuses through
//! the one shared mapping (`temper_client::status`); only history's own cases map here.

use temper_client::status;
use temper_persistence::{CommitError, StoreError};
use temper_workflow::WorkflowError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error("workflow execution not found: {0}")]
    ExecutionNotFound(String),
    #[error("{}", reason.message(workflow_id, run_id))]
    AlreadyStarted {
        workflow_id: String,
        run_id: String,
        start_request_id: String,
        reason: AlreadyStartedReason,
    },
    /// CreateSchedule with an id a live schedule has (Temporal's words and error details).
    #[error("schedule {schedule_id:?} is already registered")]
    ScheduleAlreadyRegistered {
        schedule_id: String,
        run_id: String,
        start_request_id: String,
    },
    /// StartActivityExecution for an id whose activity runs, or ran under a reuse policy
    /// that refuses another.
    #[error("activity execution already started")]
    ActivityAlreadyStarted {
        activity_id: String,
        run_id: String,
        start_request_id: String,
    },
    /// StartNexusOperationExecution for an id whose operation runs, or ran under a reuse
    /// policy that refuses another (Temporal's words).
    #[error(
        "nexus operation execution already started: request_id={start_request_id}, run_id={run_id}"
    )]
    NexusOperationAlreadyStarted {
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

/// Why a workflow id cannot be given to a new run (each says so in Temporal's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlreadyStartedReason {
    /// A run with the id is running.
    Running,
    /// The last run closed, and the reuse policy rejects duplicates.
    Finished,
    /// The last run completed, and the reuse policy allows a new one only after a failure.
    FinishedSuccessfully,
}

impl AlreadyStartedReason {
    fn message(self, workflow_id: &str, run_id: &str) -> String {
        match self {
            Self::Running => format!(
                "Workflow execution is already running. WorkflowId: {workflow_id}, RunId: {run_id}."
            ),
            Self::Finished => format!(
                "Workflow execution already finished. WorkflowId: {workflow_id}, RunId: {run_id}. Workflow Id reuse policy: reject duplicate workflow Id."
            ),
            Self::FinishedSuccessfully => format!(
                "Workflow execution already finished successfully. WorkflowId: {workflow_id}, RunId: {run_id}. Workflow Id reuse policy: allow duplicate workflow Id if last run failed."
            ),
        }
    }
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

impl From<HistoryError> for Status {
    fn from(e: HistoryError) -> Self {
        let message = e.to_string();
        match e {
            HistoryError::Workflow(e) => status::workflow_status(e),
            HistoryError::Store(e) => status::store_status(e),
            HistoryError::ExecutionNotFound(_) => status::not_found(message),
            HistoryError::AlreadyStarted {
                run_id,
                start_request_id,
                ..
            } => status::already_started(message, run_id, start_request_id),
            HistoryError::ScheduleAlreadyRegistered {
                run_id,
                start_request_id,
                ..
            } => status::already_started(message, run_id, start_request_id),
            HistoryError::ActivityAlreadyStarted {
                run_id,
                start_request_id,
                ..
            } => status::activity_already_started(message, run_id, start_request_id),
            HistoryError::NexusOperationAlreadyStarted {
                run_id,
                start_request_id,
            } => status::nexus_operation_already_started(message, run_id, start_request_id),
            HistoryError::ShardNotOwned(_) | HistoryError::UpdateAborted => {
                Status::unavailable(message)
            }
            HistoryError::Busy => Status::unavailable("workflow is busy; retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use temper_persistence::ConflictKind;
    use temper_proto::temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure;
    use temper_types::RangeId;
    use tonic::Code;

    use super::*;

    fn code(e: HistoryError) -> Code {
        Status::from(e).code()
    }

    #[test]
    fn a_missing_row_is_not_found() {
        // The store's NotFound is the caller's NOT_FOUND, as the frontend answers it (it was
        // INTERNAL here once).
        let status = Status::from(HistoryError::Store(StoreError::NotFound(
            "history branch".into(),
        )));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "history branch");
    }

    #[test]
    fn history_errors_have_their_codes() {
        let lost = StoreError::OwnershipLost {
            held: RangeId(1),
            actual: RangeId(2),
        };
        assert_eq!(code(HistoryError::Store(lost)), Code::Unavailable);
        assert_eq!(
            code(HistoryError::Store(StoreError::Unavailable("down".into()))),
            Code::Unavailable
        );
        assert_eq!(
            code(HistoryError::Store(StoreError::Invalid("bad".into()))),
            Code::Internal
        );
        assert_eq!(
            code(HistoryError::Workflow(WorkflowError::AlreadyCompleted)),
            Code::NotFound
        );
        assert_eq!(code(HistoryError::ShardNotOwned(7)), Code::Unavailable);
        assert_eq!(code(HistoryError::Busy), Code::Unavailable);
        assert_eq!(code(HistoryError::UpdateAborted), Code::Unavailable);
        let missing = Status::from(HistoryError::ExecutionNotFound("wf".into()));
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "workflow execution not found: wf");
    }

    #[test]
    fn already_started_carries_temporals_detail() {
        let status = Status::from(HistoryError::AlreadyStarted {
            workflow_id: "wf".into(),
            run_id: "run".into(),
            start_request_id: "req".into(),
            reason: AlreadyStartedReason::Running,
        });
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            "Workflow execution is already running. WorkflowId: wf, RunId: run."
        );
        let failure = status::detail::<WorkflowExecutionAlreadyStartedFailure>(&status)
            .expect("WorkflowExecutionAlreadyStartedFailure");
        assert_eq!(failure.run_id, "run");
        assert_eq!(failure.start_request_id, "req");
    }

    #[test]
    fn commit_errors_become_history_errors() {
        let lost = HistoryError::from(CommitError::ShardOwnershipLost {
            held: RangeId(1),
            actual: RangeId(2),
        });
        assert!(matches!(
            lost,
            HistoryError::Store(StoreError::OwnershipLost { .. })
        ));
        let conflict = HistoryError::from(CommitError::Conflict {
            index: 0,
            kind: ConflictKind::VersionMismatch {
                expected: Some(1),
                actual: Some(2),
            },
        });
        assert!(matches!(conflict, HistoryError::Busy));
        assert_eq!(
            code(HistoryError::from(CommitError::Store(
                StoreError::NotFound("x".into())
            ))),
            Code::NotFound
        );
    }
}
