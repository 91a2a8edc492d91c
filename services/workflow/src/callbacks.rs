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

/// The completion callbacks attached to the run's updates, with the update id each waits
/// for: STANDBY until the update completes (or the run closes first), then SCHEDULED, and
/// SUCCEEDED once delivered. Ordered by update id.
pub fn update_infos(ms: &pb::MutableState) -> Vec<(String, CallbackInfo)> {
    let closed = crate::close::is_closed(ms);
    let mut ids: Vec<&String> = ms
        .updates
        .iter()
        .filter(|(_, u)| !u.callbacks.is_empty())
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let u = &ms.updates[id];
        let state = if u.callbacks_delivered {
            CallbackState::Succeeded
        } else if u.completed_event_id > 0 || closed {
            CallbackState::Scheduled
        } else {
            CallbackState::Standby
        };
        for cb in &u.callbacks {
            out.push((
                id.clone(),
                CallbackInfo {
                    callback: Some(cb.clone()),
                    registration_time: u.callbacks_registration_time,
                    state: state as i32,
                    attempt: i32::from(u.callbacks_delivered),
                    request_id: u.callbacks_request_id.clone(),
                    ..Default::default()
                },
            ));
        }
    }
    out
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
    fn update_callbacks_wait_for_their_update_or_the_close() {
        let mut m = ms(WorkflowExecutionStatus::Running, false);
        let cb = m.completion_callbacks.clone();
        m.completion_callbacks.clear();
        m.updates.insert(
            "u".into(),
            pb::UpdateInfo {
                accepted_event_id: 5,
                callbacks: cb,
                callbacks_request_id: "r".into(),
                ..Default::default()
            },
        );
        m.updates.insert("plain".into(), pb::UpdateInfo::default());
        let states = |m: &pb::MutableState| {
            update_infos(m)
                .into_iter()
                .map(|(id, c)| (id, c.state, c.request_id))
                .collect::<Vec<_>>()
        };
        let standby = CallbackState::Standby as i32;
        assert_eq!(states(&m), [("u".to_owned(), standby, "r".to_owned())]);
        m.updates.get_mut("u").expect("u").completed_event_id = 9;
        assert_eq!(states(&m)[0].1, CallbackState::Scheduled as i32);
        m.updates.get_mut("u").expect("u").callbacks_delivered = true;
        assert_eq!(states(&m)[0].1, CallbackState::Succeeded as i32);
        // Accepted, not completed, and the run closed: its callbacks are due too.
        let mut closed = ms(WorkflowExecutionStatus::Completed, false);
        closed.completion_callbacks.clear();
        closed.updates = m.updates.clone();
        let u = closed.updates.get_mut("u").expect("u");
        u.completed_event_id = 0;
        u.callbacks_delivered = false;
        assert_eq!(states(&closed)[0].1, CallbackState::Scheduled as i32);
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
