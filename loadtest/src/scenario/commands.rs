//! Builders for the few commands the scenario workflows send.

use std::time::Duration;

use temporalio_protos::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, FailWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes, ScheduleNexusOperationCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes, StartTimerCommandAttributes, command::Attributes,
};
use temporalio_protos::temporal::api::common::v1::{ActivityType, Payload, WorkflowType};
use temporalio_protos::temporal::api::enums::v1::{CommandType, TaskQueueKind};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::taskqueue::v1::TaskQueue;

/// The activity type every scenario schedules; the generator's activity worker completes it
/// at once.
pub const ACTIVITY_TYPE: &str = "loadtest-activity";
/// How long one activity attempt may run; the generator answers in microseconds, so this only
/// matters when the server loses a task.
pub const ACTIVITY_START_TO_CLOSE: Duration = Duration::from_secs(30);

pub fn proto_duration(d: Duration) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A command with its type set from its attributes. (The protos crate's `From` for this
/// panics on command kinds it does not know, child workflows among them.)
fn command(command_type: CommandType, attributes: Attributes) -> Command {
    Command {
        command_type: command_type as i32,
        attributes: Some(attributes),
        ..Default::default()
    }
}

pub fn normal_queue(name: &str) -> TaskQueue {
    TaskQueue {
        name: name.to_string(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    }
}

pub fn schedule_activity(activity_id: String, task_queue: &str) -> Command {
    command(
        CommandType::ScheduleActivityTask,
        Attributes::ScheduleActivityTaskCommandAttributes(ScheduleActivityTaskCommandAttributes {
            activity_id,
            activity_type: Some(ActivityType {
                name: ACTIVITY_TYPE.to_string(),
            }),
            task_queue: Some(normal_queue(task_queue)),
            start_to_close_timeout: Some(proto_duration(ACTIVITY_START_TO_CLOSE)),
            ..Default::default()
        }),
    )
}

pub fn start_timer(timer_id: String, after: Duration) -> Command {
    command(
        CommandType::StartTimer,
        Attributes::StartTimerCommandAttributes(StartTimerCommandAttributes {
            timer_id,
            start_to_fire_timeout: Some(proto_duration(after)),
        }),
    )
}

/// A child in the parent's namespace (the command's namespace field is deprecated).
pub fn start_child(workflow_id: String, workflow_type: &str, task_queue: &str) -> Command {
    command(
        CommandType::StartChildWorkflowExecution,
        Attributes::StartChildWorkflowExecutionCommandAttributes(
            StartChildWorkflowExecutionCommandAttributes {
                workflow_id,
                workflow_type: Some(WorkflowType {
                    name: workflow_type.to_string(),
                }),
                task_queue: Some(normal_queue(task_queue)),
                ..Default::default()
            },
        ),
    )
}

/// An operation of the generator's Nexus service on `endpoint`.
pub fn schedule_nexus_operation(endpoint: String, operation: &str, input: Payload) -> Command {
    command(
        CommandType::ScheduleNexusOperation,
        Attributes::ScheduleNexusOperationCommandAttributes(
            ScheduleNexusOperationCommandAttributes {
                endpoint,
                service: super::nexus::SERVICE.to_string(),
                operation: operation.to_string(),
                input: Some(input),
                schedule_to_close_timeout: Some(proto_duration(super::nexus::SCHEDULE_TO_CLOSE)),
                ..Default::default()
            },
        ),
    )
}

pub fn complete() -> Command {
    command(
        CommandType::CompleteWorkflowExecution,
        Attributes::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes { result: None },
        ),
    )
}

pub fn fail(message: &str) -> Command {
    command(
        CommandType::FailWorkflowExecution,
        Attributes::FailWorkflowExecutionCommandAttributes(
            FailWorkflowExecutionCommandAttributes {
                failure: Some(Failure {
                    message: message.to_string(),
                    source: "temper-loadtest".to_string(),
                    ..Default::default()
                }),
            },
        ),
    )
}
