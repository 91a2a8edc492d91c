//! A run's completion callbacks as describe calls show them (DescribeWorkflowExecution,
//! DescribeActivityExecution, DescribeNexusOperationExecution): each callback, when it was
//! registered, and where it stands. A callback waits (STANDBY) while the run is open, is
//! SCHEDULED once it closes, and SUCCEEDED once the history service delivered it.

use temper_proto::temporal::api::callback::v1::CallbackInfo;
use temper_proto::temporal::api::enums::v1::CallbackState;

use crate::pb;

/// Every completion callback of the run in `ms`, in the order they were registered.
pub fn infos(ms: &pb::MutableState) -> Vec<CallbackInfo> {
    let closed = crate::close::is_closed(ms);
    let delivered = closed && ms.completion_callbacks_delivered;
    let start = ms.execution_info.as_ref().and_then(|i| i.start_time);
    let state = match (closed, delivered) {
        (false, _) => CallbackState::Standby,
        (true, false) => CallbackState::Scheduled,
        (true, true) => CallbackState::Succeeded,
    };
    ms.completion_callbacks
        .iter()
        .enumerate()
        .map(|(i, cb)| CallbackInfo {
            callback: Some(cb.clone()),
            registration_time: ms.completion_callback_times.get(i).copied().or(start),
            state: state as i32,
            attempt: i32::from(delivered),
            last_attempt_complete_time: if delivered {
                ms.execution_info.as_ref().and_then(|i| i.close_time)
            } else {
                None
            },
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::{Callback, callback};
    use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;

    fn ms(status: WorkflowExecutionStatus, delivered: bool) -> pb::MutableState {
        pb::MutableState {
            execution_info: Some(pb::ExecutionInfo {
                status: status as i32,
                start_time: Some(temper_proto::wkt::Timestamp {
                    seconds: 10,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            completion_callbacks: vec![Callback {
                variant: Some(callback::Variant::Nexus(callback::Nexus {
                    url: "temporal://system".into(),
                    header: Default::default(),
                })),
                links: Vec::new(),
            }],
            completion_callbacks_delivered: delivered,
            ..Default::default()
        }
    }

    #[test]
    fn callbacks_wait_while_the_run_is_open_and_succeed_once_delivered() {
        let open = infos(&ms(WorkflowExecutionStatus::Running, false));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].state, CallbackState::Standby as i32);
        assert_eq!(open[0].registration_time.map(|t| t.seconds), Some(10));
        let closed = infos(&ms(WorkflowExecutionStatus::Completed, false));
        assert_eq!(closed[0].state, CallbackState::Scheduled as i32);
        let done = infos(&ms(WorkflowExecutionStatus::Completed, true));
        assert_eq!(
            (done[0].state, done[0].attempt),
            (CallbackState::Succeeded as i32, 1)
        );
    }
}
