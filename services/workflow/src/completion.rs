//! What a worker's workflow task completion brings (the parts of
//! RespondWorkflowTaskCompletedRequest the state machine needs) and what came of it.

use temper_proto::temporal::api::command::v1::Command;
use temper_proto::temporal::api::taskqueue::v1::StickyExecutionAttributes;

use crate::BadCommand;

/// The parts of RespondWorkflowTaskCompletedRequest the state machine needs.
pub struct Completion<'a> {
    pub commands: &'a [Command],
    pub identity: &'a str,
    pub binary_checksum: &'a str,
    /// Search attribute names the namespace accepts; `None`: not checked.
    pub search_attribute_names: Option<&'a [String]>,
    pub sticky: Option<&'a StickyExecutionAttributes>,
    pub force_create_new_workflow_task: bool,
    /// SDK flags and metadata, kept on the WorkflowTaskCompleted event for replay.
    pub sdk_metadata: Option<temper_proto::temporal::api::sdk::v1::WorkflowTaskCompletedMetadata>,
    pub metering_metadata: Option<temper_proto::temporal::api::common::v1::MeteringMetadata>,
    /// Protocol messages (update acceptances, rejections, responses).
    pub messages: &'a [temper_proto::temporal::api::protocol::v1::Message],
    /// The worker can take the same events again after a discarded speculative task.
    pub discard_speculative_with_events: bool,
    /// The completing worker's build id, deployment and the behavior it reports.
    pub worker: crate::versioning::CompletingWorker,
}

/// What came of a completion.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Applied. `new_workflow_task`: the scheduled event id of a new workflow task, if any.
    Completed {
        new_workflow_task: Option<i64>,
        closed: bool,
    },
    /// Rejected: the workflow task was failed with this cause instead.
    Rejected(BadCommand),
    /// A speculative task that only rejected updates: nothing was written; the worker rolls
    /// its history back to the WorkflowTaskStarted event `reset_history_event_id`.
    Discarded { reset_history_event_id: i64 },
}
