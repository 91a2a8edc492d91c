//! Building history events and knowing their types, and where an event stands when it is
//! applied to a run's state.

use temper_proto::temporal::api::enums::v1::EventType;
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};

/// The event type of an attributes variant.
pub(crate) fn event_type_of(a: &Attributes) -> EventType {
    use Attributes as A;
    match a {
        A::WorkflowExecutionStartedEventAttributes(_) => EventType::WorkflowExecutionStarted,
        A::WorkflowExecutionCompletedEventAttributes(_) => EventType::WorkflowExecutionCompleted,
        A::WorkflowExecutionFailedEventAttributes(_) => EventType::WorkflowExecutionFailed,
        A::WorkflowExecutionTimedOutEventAttributes(_) => EventType::WorkflowExecutionTimedOut,
        A::WorkflowTaskScheduledEventAttributes(_) => EventType::WorkflowTaskScheduled,
        A::WorkflowTaskStartedEventAttributes(_) => EventType::WorkflowTaskStarted,
        A::WorkflowTaskCompletedEventAttributes(_) => EventType::WorkflowTaskCompleted,
        A::WorkflowTaskTimedOutEventAttributes(_) => EventType::WorkflowTaskTimedOut,
        A::WorkflowTaskFailedEventAttributes(_) => EventType::WorkflowTaskFailed,
        A::ActivityTaskScheduledEventAttributes(_) => EventType::ActivityTaskScheduled,
        A::ActivityTaskStartedEventAttributes(_) => EventType::ActivityTaskStarted,
        A::ActivityTaskCompletedEventAttributes(_) => EventType::ActivityTaskCompleted,
        A::ActivityTaskFailedEventAttributes(_) => EventType::ActivityTaskFailed,
        A::ActivityTaskTimedOutEventAttributes(_) => EventType::ActivityTaskTimedOut,
        A::ActivityTaskCancelRequestedEventAttributes(_) => EventType::ActivityTaskCancelRequested,
        A::ActivityTaskCanceledEventAttributes(_) => EventType::ActivityTaskCanceled,
        A::TimerStartedEventAttributes(_) => EventType::TimerStarted,
        A::TimerFiredEventAttributes(_) => EventType::TimerFired,
        A::TimerCanceledEventAttributes(_) => EventType::TimerCanceled,
        A::WorkflowExecutionCancelRequestedEventAttributes(_) => {
            EventType::WorkflowExecutionCancelRequested
        }
        A::WorkflowExecutionCanceledEventAttributes(_) => EventType::WorkflowExecutionCanceled,
        A::MarkerRecordedEventAttributes(_) => EventType::MarkerRecorded,
        A::WorkflowExecutionSignaledEventAttributes(_) => EventType::WorkflowExecutionSignaled,
        A::WorkflowExecutionTerminatedEventAttributes(_) => EventType::WorkflowExecutionTerminated,
        A::WorkflowExecutionContinuedAsNewEventAttributes(_) => {
            EventType::WorkflowExecutionContinuedAsNew
        }
        A::UpsertWorkflowSearchAttributesEventAttributes(_) => {
            EventType::UpsertWorkflowSearchAttributes
        }
        A::WorkflowPropertiesModifiedEventAttributes(_) => EventType::WorkflowPropertiesModified,
        A::StartChildWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::StartChildWorkflowExecutionInitiated
        }
        A::StartChildWorkflowExecutionFailedEventAttributes(_) => {
            EventType::StartChildWorkflowExecutionFailed
        }
        A::ChildWorkflowExecutionStartedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionStarted
        }
        A::ChildWorkflowExecutionCompletedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionCompleted
        }
        A::ChildWorkflowExecutionFailedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionFailed
        }
        A::ChildWorkflowExecutionCanceledEventAttributes(_) => {
            EventType::ChildWorkflowExecutionCanceled
        }
        A::ChildWorkflowExecutionTimedOutEventAttributes(_) => {
            EventType::ChildWorkflowExecutionTimedOut
        }
        A::ChildWorkflowExecutionTerminatedEventAttributes(_) => {
            EventType::ChildWorkflowExecutionTerminated
        }
        A::NexusOperationScheduledEventAttributes(_) => EventType::NexusOperationScheduled,
        A::NexusOperationStartedEventAttributes(_) => EventType::NexusOperationStarted,
        A::NexusOperationCompletedEventAttributes(_) => EventType::NexusOperationCompleted,
        A::NexusOperationFailedEventAttributes(_) => EventType::NexusOperationFailed,
        A::NexusOperationCanceledEventAttributes(_) => EventType::NexusOperationCanceled,
        A::NexusOperationTimedOutEventAttributes(_) => EventType::NexusOperationTimedOut,
        A::NexusOperationCancelRequestedEventAttributes(_) => {
            EventType::NexusOperationCancelRequested
        }
        A::NexusOperationCancelRequestCompletedEventAttributes(_) => {
            EventType::NexusOperationCancelRequestCompleted
        }
        A::NexusOperationCancelRequestFailedEventAttributes(_) => {
            EventType::NexusOperationCancelRequestFailed
        }
        A::SignalExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::SignalExternalWorkflowExecutionInitiated
        }
        A::SignalExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::SignalExternalWorkflowExecutionFailed
        }
        A::ExternalWorkflowExecutionSignaledEventAttributes(_) => {
            EventType::ExternalWorkflowExecutionSignaled
        }
        A::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionInitiated
        }
        A::RequestCancelExternalWorkflowExecutionFailedEventAttributes(_) => {
            EventType::RequestCancelExternalWorkflowExecutionFailed
        }
        A::ExternalWorkflowExecutionCancelRequestedEventAttributes(_) => {
            EventType::ExternalWorkflowExecutionCancelRequested
        }
        A::WorkflowExecutionUpdateAcceptedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateAccepted
        }
        A::WorkflowExecutionUpdateCompletedEventAttributes(_) => {
            EventType::WorkflowExecutionUpdateCompleted
        }
        A::WorkflowExecutionOptionsUpdatedEventAttributes(_) => {
            EventType::WorkflowExecutionOptionsUpdated
        }
        _ => EventType::Unspecified,
    }
}

/// Whether an event closes the workflow.
pub fn is_close_event(t: i32) -> bool {
    [
        EventType::WorkflowExecutionCompleted,
        EventType::WorkflowExecutionFailed,
        EventType::WorkflowExecutionTimedOut,
        EventType::WorkflowExecutionCanceled,
        EventType::WorkflowExecutionTerminated,
        EventType::WorkflowExecutionContinuedAsNew,
    ]
    .iter()
    .any(|e| *e as i32 == t)
}

/// A new event without id (assigned when written).
pub(crate) fn new_event(attrs: Attributes, now: &temper_proto::wkt::Timestamp) -> HistoryEvent {
    // Events older SDKs do not know, which they may skip in replay (as the Temporal server
    // marks them).
    let worker_may_ignore = matches!(
        attrs,
        Attributes::WorkflowExecutionOptionsUpdatedEventAttributes(_)
    );
    HistoryEvent {
        event_type: event_type_of(&attrs) as i32,
        event_time: Some(*now),
        attributes: Some(attrs),
        worker_may_ignore,
        ..Default::default()
    }
}

/// The id an event has while it is buffered (written after the workflow task in flight ends,
/// when its id is known).
pub(crate) const BUFFERED_EVENT_ID: i64 = -1;

/// Where an event stands in its run's history when it is applied to the state: its id
/// ([`BUFFERED_EVENT_ID`] while buffered) and its time. Each family's `apply_*` functions
/// take it; the live path and replay call the same ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub(crate) id: i64,
    pub(crate) time: temper_proto::wkt::Timestamp,
}

impl At {
    pub(crate) fn system_time(&self) -> std::time::SystemTime {
        crate::time::from_ts(&self.time)
    }
}
