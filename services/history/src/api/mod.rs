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

use temper_proto::temporal::api::common::v1::{Link, link};
use temper_proto::temporal::api::enums::v1::EventType;
use temper_workflow::WorkflowError;
use tonic::Status;

use crate::HistoryError;

/// A link to the WorkflowExecutionSignaled event of the signal with `request_id` (Temporal's
/// backlink: by request id, since the event may still be buffered and have no id yet).
pub(crate) fn signal_link(
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    request_id: &str,
) -> Link {
    Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: namespace.to_owned(),
            workflow_id: workflow_id.to_owned(),
            run_id: run_id.to_owned(),
            reference: Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: request_id.to_owned(),
                    event_type: EventType::WorkflowExecutionSignaled as i32,
                },
            )),
        })),
    }
}

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
