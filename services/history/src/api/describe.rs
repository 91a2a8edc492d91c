//! DescribeWorkflowExecution, from the mutable state.

use temper_proto::temporal::api::activity::v1::ActivityOptions;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{
    EventType, PendingActivityState, PendingWorkflowTaskState,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflow::v1::{
    PendingActivityInfo, PendingChildExecutionInfo, PendingWorkflowTaskInfo, RequestIdInfo,
    WorkflowExecutionConfig, WorkflowExecutionExtendedInfo, WorkflowExecutionInfo,
    pending_activity_info,
};
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, DescribeWorkflowExecutionResponse,
};
use temper_types::NamespaceId;
use temper_workflow::WorkflowError;
use temper_workflow::time::{GO_ZERO_TIME, from_ts, ts};

use crate::{HistoryEngine, HistoryError};

/// A pending activity's state as Temporal names it; a paused one shows whether a worker
/// still runs it.
pub(crate) fn pending_state(ai: &temper_workflow::pb::ActivityInfo) -> PendingActivityState {
    match (ai.cancel_requested, ai.started_time.is_some(), ai.paused) {
        (true, _, _) => PendingActivityState::CancelRequested,
        (false, true, false) => PendingActivityState::Started,
        (false, true, true) => PendingActivityState::PauseRequested,
        (false, false, false) => PendingActivityState::Scheduled,
        (false, false, true) => PendingActivityState::Paused,
    }
}

pub(crate) async fn describe(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: DescribeWorkflowExecutionRequest,
) -> Result<DescribeWorkflowExecutionResponse, HistoryError> {
    let exec = req.execution.unwrap_or_default();
    if exec.workflow_id.is_empty() {
        return Err(
            WorkflowError::InvalidArgument("WorkflowId is not set on request.".into()).into(),
        );
    }
    let shard = engine.shard(ns, &exec.workflow_id)?;
    let key = shard.resolve(ns, &exec.workflow_id, &exec.run_id).await?;
    let ms = shard.snapshot(&key).await?;
    let info = ms.execution_info.clone().unwrap_or_default();
    // The run's user metadata is its started event's, read from there as in Temporal.
    let (first, _) = shard.events_between(&key, 1, Some(2)).await?;
    let user_metadata = first.into_iter().next().and_then(|e| e.user_metadata);
    let execution_duration = match (&info.close_time, &info.start_time) {
        (Some(c), Some(s)) => from_ts(c)
            .duration_since(from_ts(s))
            .ok()
            .and_then(temper_workflow::time::dur),
        _ => None,
    };
    let mut pending_activities: Vec<PendingActivityInfo> = ms
        .activities
        .values()
        .map(|ai| {
            let state = pending_state(ai);
            let pause_info = ai.pause_info.as_ref().filter(|_| ai.paused).map(|p| {
                pending_activity_info::PauseInfo {
                    pause_time: p.pause_time,
                    paused_by: Some(pending_activity_info::pause_info::PausedBy::Manual(
                        pending_activity_info::pause_info::Manual {
                            identity: p.identity.clone(),
                            reason: p.reason.clone(),
                        },
                    )),
                }
            });
            PendingActivityInfo {
                activity_id: ai.activity_id.clone(),
                activity_type: ai.activity_type.clone(),
                state: state as i32,
                heartbeat_details: ai.heartbeat_details.clone(),
                last_heartbeat_time: ai.last_heartbeat_time,
                last_started_time: ai.started_time,
                attempt: ai.attempt,
                maximum_attempts: ai
                    .retry_policy
                    .as_ref()
                    .map(|p| p.maximum_attempts)
                    .unwrap_or(0),
                scheduled_time: ai.scheduled_time,
                expiration_time: ai.expiration_time,
                last_failure: ai.last_failure.clone(),
                last_worker_identity: ai.last_worker_identity.clone(),
                // A paused activity has no next attempt scheduled.
                next_attempt_schedule_time: ai.retry_time.filter(|_| !ai.paused),
                paused: ai.paused,
                pause_info,
                priority: ai.priority.clone(),
                activity_options: Some(ActivityOptions {
                    // As the Temporal server fills it: the name twice, no kind.
                    task_queue: ai.task_queue.as_ref().map(|q| TaskQueue {
                        name: q.name.clone(),
                        normal_name: q.name.clone(),
                        ..Default::default()
                    }),
                    schedule_to_close_timeout: Some(
                        ai.schedule_to_close_timeout.unwrap_or_default(),
                    ),
                    schedule_to_start_timeout: Some(
                        ai.schedule_to_start_timeout.unwrap_or_default(),
                    ),
                    start_to_close_timeout: Some(ai.start_to_close_timeout.unwrap_or_default()),
                    heartbeat_timeout: Some(ai.heartbeat_timeout.unwrap_or_default()),
                    retry_policy: ai.retry_policy.clone(),
                    priority: ai.priority.clone(),
                    start_delay: None,
                }),
                ..Default::default()
            }
        })
        .collect();
    pending_activities.sort_by(|a, b| a.activity_id.cmp(&b.activity_id));
    let pending_nexus_operations = ms
        .nexus_operations
        .values()
        .map(|op| {
            let state = pending_nexus_state(op);
            #[allow(deprecated)]
            temper_proto::temporal::api::workflow::v1::PendingNexusOperationInfo {
                endpoint: op.endpoint.clone(),
                service: op.service.clone(),
                operation: op.operation.clone(),
                operation_id: op.operation_token.clone(),
                operation_token: op.operation_token.clone(),
                schedule_to_close_timeout: op.schedule_to_close_timeout,
                scheduled_time: op.scheduled_time,
                state: state as i32,
                attempt: op.attempt,
                last_attempt_complete_time: op.last_attempt_complete_time,
                last_attempt_failure: op.last_attempt_failure.clone(),
                next_attempt_schedule_time: op.next_attempt_schedule_time,
                scheduled_event_id: op.scheduled_event_id,
                ..Default::default()
            }
        })
        .collect::<Vec<_>>();
    let pending_workflow_task = ms.workflow_task.as_ref().map(|wt| PendingWorkflowTaskInfo {
        state: if wt.started_event_id > 0 {
            PendingWorkflowTaskState::Started
        } else {
            PendingWorkflowTaskState::Scheduled
        } as i32,
        scheduled_time: wt.scheduled_time,
        original_scheduled_time: wt.scheduled_time,
        started_time: wt.started_time,
        attempt: wt.attempt,
    });
    let _ = ts;
    let mut pending_children: Vec<PendingChildExecutionInfo> = ms
        .children
        .values()
        .filter(|c| c.started_event_id != 0)
        .map(|c| PendingChildExecutionInfo {
            workflow_id: c.workflow_id.clone(),
            run_id: c.run_id.clone(),
            workflow_type_name: c
                .workflow_type
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            initiated_id: c.initiated_event_id,
            parent_close_policy: c.parent_close_policy,
        })
        .collect();
    pending_children.sort_by_key(|c| c.initiated_id);
    let parent = info.parent.clone();
    Ok(DescribeWorkflowExecutionResponse {
        execution_config: Some(WorkflowExecutionConfig {
            task_queue: info.task_queue.clone(),
            workflow_execution_timeout: info.workflow_execution_timeout,
            workflow_run_timeout: info.workflow_run_timeout,
            default_workflow_task_timeout: info.default_workflow_task_timeout,
            user_metadata,
        }),
        workflow_execution_info: Some(WorkflowExecutionInfo {
            execution: Some(WorkflowExecution {
                workflow_id: key.workflow_id.clone(),
                run_id: key.run_id.clone(),
            }),
            r#type: info.workflow_type.clone(),
            start_time: info.start_time,
            close_time: info.close_time,
            status: info.status,
            history_length: ms.next_event_id - 1,
            execution_time: info.execution_time,
            // Present even when empty, as from the Temporal server.
            memo: Some(info.memo.clone().unwrap_or_default()),
            search_attributes: info.search_attributes.clone(),
            task_queue: info
                .task_queue
                .as_ref()
                .map(|q| q.name.clone())
                .unwrap_or_default(),
            state_transition_count: info.state_transition_count,
            history_size_bytes: info.history_size_bytes,
            execution_duration,
            first_run_id: info.first_run_id.clone(),
            parent_namespace_id: parent
                .as_ref()
                .map(|p| p.namespace_id.clone())
                .unwrap_or_default(),
            parent_execution: parent.as_ref().and_then(|p| p.execution.clone()),
            root_execution: info.root_execution.clone(),
            auto_reset_points: info.auto_reset_points.clone(),
            priority: info.priority.clone(),
            versioning_info: temper_workflow::versioning::describe(&info),
            #[allow(deprecated)]
            most_recent_worker_version_stamp: info.most_recent_worker_version_stamp.clone(),
            worker_deployment_name: info
                .versioning_info
                .as_ref()
                .and_then(|v| v.deployment_version.as_ref())
                .map(|v| v.deployment_name.clone())
                .unwrap_or_default(),
            ..Default::default()
        }),
        pending_activities,
        pending_nexus_operations,
        pending_children,
        pending_workflow_task,
        workflow_extended_info: Some(extended_info(&info)),
        callbacks: temper_workflow::callbacks::infos(&ms)
            .into_iter()
            .map(|c| (None, c))
            .chain(
                temper_workflow::callbacks::update_infos(&ms)
                    .into_iter()
                    .map(|(id, c)| (Some(id), c)),
            )
            .map(|(update_id, c)| {
                use temper_proto::temporal::api::workflow::v1::{CallbackInfo, callback_info};
                let variant = match update_id {
                    None => callback_info::trigger::Variant::WorkflowClosed(
                        callback_info::WorkflowClosed {},
                    ),
                    Some(update_id) => {
                        callback_info::trigger::Variant::UpdateWorkflowExecutionCompleted(
                            callback_info::UpdateWorkflowExecutionCompleted { update_id },
                        )
                    }
                };
                CallbackInfo {
                    callback: c.callback,
                    trigger: Some(callback_info::Trigger {
                        variant: Some(variant),
                    }),
                    registration_time: c.registration_time,
                    state: c.state,
                    attempt: c.attempt,
                    last_attempt_complete_time: c.last_attempt_complete_time,
                    last_attempt_failure: c.last_attempt_failure,
                    next_attempt_schedule_time: c.next_attempt_schedule_time,
                    blocked_reason: c.blocked_reason,
                    request_id: c.request_id,
                }
            })
            .collect(),
    })
}

/// The extended info the Temporal server always returns: the run's expiration (Go's zero
/// time when the run has no timeout), its original start time and the request ids that
/// created it and signaled it (so a signal's request-id link can be resolved to its event; a
/// signal-with-start's one id names the signal, as in Temporal).
fn extended_info(info: &temper_workflow::pb::ExecutionInfo) -> WorkflowExecutionExtendedInfo {
    let mut request_id_infos = std::collections::HashMap::new();
    if !info.create_request_id.is_empty() {
        request_id_infos.insert(
            info.create_request_id.clone(),
            RequestIdInfo {
                event_type: EventType::WorkflowExecutionStarted as i32,
                event_id: 1,
                buffered: false,
            },
        );
    }
    for r in &info.signal_requests {
        let buffered = r.event_id <= 0;
        request_id_infos.insert(
            r.request_id.clone(),
            RequestIdInfo {
                event_type: EventType::WorkflowExecutionSignaled as i32,
                event_id: if buffered { 0 } else { r.event_id },
                buffered,
            },
        );
    }
    WorkflowExecutionExtendedInfo {
        execution_expiration_time: info.execution_expiration_time,
        run_expiration_time: Some(info.run_expiration_time.unwrap_or(GO_ZERO_TIME)),
        original_start_time: info.start_time,
        request_id_infos,
        ..Default::default()
    }
}

/// A pending Nexus operation's state, as describe shows it.
pub(crate) fn pending_nexus_state(
    op: &temper_workflow::pb::NexusOperationInfo,
) -> temper_proto::temporal::api::enums::v1::PendingNexusOperationState {
    use temper_proto::temporal::api::enums::v1::PendingNexusOperationState as S;
    if op.started_event_id != 0 {
        S::Started
    } else if op.next_attempt_schedule_time.is_some() {
        S::BackingOff
    } else {
        S::Scheduled
    }
}
