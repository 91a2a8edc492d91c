//! What a workflow's history says so far, boiled down to the counts the scenario workflows
//! decide on. Built fresh from the full history on every workflow task, so the workflows stay
//! deterministic functions of their history.

use temporalio_protos::temporal::api::common::v1::{Payload, Payloads};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};

/// Counts and facts a scenario workflow needs from its history.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HistorySummary {
    /// The workflow's input (from WorkflowExecutionStarted).
    pub input: Option<Payloads>,
    /// The task queue the workflow runs on (from WorkflowExecutionStarted).
    pub task_queue: String,
    /// Whether WorkflowExecutionStarted was seen at all.
    pub has_started_event: bool,
    /// The parent's workflow id, for a child workflow.
    pub parent_workflow_id: Option<String>,
    pub activities_scheduled: u32,
    pub activities_completed: u32,
    /// The first activity that failed, timed out or was canceled, with why.
    pub activity_failure: Option<String>,
    pub timers_started: u32,
    pub timers_fired: u32,
    pub signals: u32,
    pub children_initiated: u32,
    pub children_completed: u32,
    /// The first child that could not start or did not complete, with why.
    pub child_failure: Option<String>,
    pub nexus_scheduled: u32,
    pub nexus_completed: u32,
    /// The result of the first Nexus operation that completed.
    pub nexus_first_result: Option<Payload>,
    /// The first Nexus operation that failed, timed out or was canceled, with why.
    pub nexus_failure: Option<String>,
    /// Workflow tasks that failed since the last completed one.
    pub consecutive_failed_workflow_tasks: u32,
    /// Why the most recent failed workflow task failed.
    pub last_workflow_task_failure: Option<String>,
    /// The id of the last event (the history's length).
    pub last_event_id: i64,
}

fn failure_message(f: Option<&Failure>) -> String {
    match f {
        Some(f) if !f.message.is_empty() => f.message.clone(),
        _ => "no failure message".to_string(),
    }
}

/// A failure's message and its causes' (a Nexus operation's failure says only "nexus
/// operation completed unsuccessfully"; the handler's reason is in its cause).
fn failure_chain(f: Option<&Failure>) -> String {
    let mut parts = vec![failure_message(f)];
    let mut cause = f.and_then(|f| f.cause.as_deref());
    while let Some(c) = cause {
        if parts.len() >= 4 {
            break;
        }
        parts.push(failure_message(Some(c)));
        cause = c.cause.as_deref();
    }
    parts.join(": ")
}

impl HistorySummary {
    pub fn from_events(events: &[HistoryEvent]) -> Self {
        let mut s = Self::default();
        for e in events {
            s.last_event_id = s.last_event_id.max(e.event_id);
            let Some(attrs) = &e.attributes else { continue };
            match attrs {
                Attributes::WorkflowExecutionStartedEventAttributes(a) => {
                    s.has_started_event = true;
                    s.input = a.input.clone();
                    s.parent_workflow_id = a
                        .parent_workflow_execution
                        .as_ref()
                        .map(|p| p.workflow_id.clone());
                    s.task_queue = a
                        .task_queue
                        .as_ref()
                        .map(|q| q.name.clone())
                        .unwrap_or_default();
                }
                Attributes::WorkflowTaskCompletedEventAttributes(_) => {
                    s.consecutive_failed_workflow_tasks = 0;
                }
                Attributes::WorkflowTaskFailedEventAttributes(a) => {
                    s.consecutive_failed_workflow_tasks += 1;
                    s.last_workflow_task_failure = Some(failure_message(a.failure.as_ref()));
                }
                Attributes::ActivityTaskScheduledEventAttributes(_) => s.activities_scheduled += 1,
                Attributes::ActivityTaskCompletedEventAttributes(_) => s.activities_completed += 1,
                Attributes::ActivityTaskFailedEventAttributes(a) => {
                    s.activity_failure.get_or_insert_with(|| {
                        format!("activity failed: {}", failure_message(a.failure.as_ref()))
                    });
                }
                Attributes::ActivityTaskTimedOutEventAttributes(a) => {
                    s.activity_failure.get_or_insert_with(|| {
                        format!(
                            "activity timed out: {}",
                            failure_message(a.failure.as_ref())
                        )
                    });
                }
                Attributes::ActivityTaskCanceledEventAttributes(_) => {
                    s.activity_failure
                        .get_or_insert_with(|| "activity canceled".to_string());
                }
                Attributes::TimerStartedEventAttributes(_) => s.timers_started += 1,
                Attributes::TimerFiredEventAttributes(_) => s.timers_fired += 1,
                Attributes::WorkflowExecutionSignaledEventAttributes(_) => s.signals += 1,
                Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(_) => {
                    s.children_initiated += 1;
                }
                Attributes::ChildWorkflowExecutionCompletedEventAttributes(_) => {
                    s.children_completed += 1;
                }
                Attributes::StartChildWorkflowExecutionFailedEventAttributes(a) => {
                    s.child_failure.get_or_insert_with(|| {
                        format!("child workflow {} could not start", a.workflow_id)
                    });
                }
                Attributes::ChildWorkflowExecutionFailedEventAttributes(a) => {
                    s.child_failure.get_or_insert_with(|| {
                        format!(
                            "child workflow failed: {}",
                            failure_message(a.failure.as_ref())
                        )
                    });
                }
                Attributes::ChildWorkflowExecutionCanceledEventAttributes(_) => {
                    s.child_failure
                        .get_or_insert_with(|| "child workflow canceled".to_string());
                }
                Attributes::ChildWorkflowExecutionTimedOutEventAttributes(_) => {
                    s.child_failure
                        .get_or_insert_with(|| "child workflow timed out".to_string());
                }
                Attributes::ChildWorkflowExecutionTerminatedEventAttributes(_) => {
                    s.child_failure
                        .get_or_insert_with(|| "child workflow terminated".to_string());
                }
                Attributes::NexusOperationScheduledEventAttributes(_) => s.nexus_scheduled += 1,
                Attributes::NexusOperationCompletedEventAttributes(a) => {
                    if s.nexus_completed == 0 {
                        s.nexus_first_result = Some(a.result.clone().unwrap_or_default());
                    }
                    s.nexus_completed += 1;
                }
                Attributes::NexusOperationFailedEventAttributes(a) => {
                    s.nexus_failure.get_or_insert_with(|| {
                        format!(
                            "nexus operation failed: {}",
                            failure_chain(a.failure.as_ref())
                        )
                    });
                }
                Attributes::NexusOperationTimedOutEventAttributes(a) => {
                    s.nexus_failure.get_or_insert_with(|| {
                        format!(
                            "nexus operation timed out: {}",
                            failure_chain(a.failure.as_ref())
                        )
                    });
                }
                Attributes::NexusOperationCanceledEventAttributes(_) => {
                    s.nexus_failure
                        .get_or_insert_with(|| "nexus operation canceled".to_string());
                }
                _ => {}
            }
        }
        s
    }
}
