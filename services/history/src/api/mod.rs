//! The history service's API handlers, one file per family.

pub(crate) mod activity;
pub(crate) mod activity_ops;
pub(crate) mod children;
pub(crate) mod control;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod history;
pub(crate) mod query;
pub(crate) mod reset;
pub(crate) mod schedule;
pub(crate) mod standalone_activity;
pub(crate) mod standalone_nexus;
pub(crate) mod standalone_run;
pub(crate) mod start;
pub(crate) mod update;
pub(crate) mod update_with_start;
pub(crate) mod workflow_task;

use temper_workflow::WorkflowError;
use tonic::Status;

use crate::HistoryError;

/// For record-started calls from matching: a task that is no longer pending is obsolete
/// (matching drops it); anything else is an error worth retrying.
pub(crate) fn obsolete_or(e: HistoryError) -> Status {
    match e {
        HistoryError::Workflow(WorkflowError::NotFound(m)) => {
            temper_client::status::task_obsolete(m)
        }
        HistoryError::Workflow(WorkflowError::AlreadyCompleted) => {
            temper_client::status::task_obsolete("workflow execution already completed")
        }
        HistoryError::ExecutionNotFound(m) => temper_client::status::task_obsolete(m),
        other => other.into(),
    }
}
