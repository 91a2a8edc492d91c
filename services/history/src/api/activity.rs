//! RecordActivityTaskStarted (from matching) and the worker's activity reports: completed,
//! failed, canceled, heartbeat, by task token or by id.

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::{Payloads, WorkflowExecution};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::workflowservice::v1::PollActivityTaskQueueResponse;
use temper_types::NamespaceId;
use temper_workflow::activity::{self as act, ActivityRef};
use temper_workflow::{WorkflowError, pb, token};
use tonic::Status;

use super::obsolete_or;
use crate::{HistoryEngine, HistoryError};

pub(crate) async fn record_started(
    engine: &HistoryEngine,
    r: internal::RecordActivityTaskStartedRequest,
) -> Result<internal::RecordActivityTaskStartedResponse, Status> {
    let ns = NamespaceId(r.namespace_id.clone());
    let exec = r.execution.clone().unwrap_or_default();
    let poll = r.poll_request.clone().unwrap_or_default();
    #[allow(deprecated)]
    let build_id = poll
        .deployment_options
        .as_ref()
        .map(|o| o.build_id.clone())
        .filter(|b| !b.is_empty())
        .or_else(|| {
            poll.worker_version_capabilities
                .as_ref()
                .map(|c| c.build_id.clone())
        })
        .unwrap_or_default();
    let shard = engine.shard(&ns, &exec.workflow_id)?;
    let key = ExecutionKey {
        namespace_id: ns.clone(),
        workflow_id: exec.workflow_id.clone(),
        run_id: exec.run_id.clone(),
    };
    let updated = shard
        .transact(&key, |txn| {
            let ai =
                act::record_started(txn, r.scheduled_event_id, 0, &r.request_id, &poll.identity)?;
            act::note_started_build_id(txn, r.scheduled_event_id, &build_id);
            temper_workflow::standalone::note_worker_sdk(txn, &r.sdk_name, &r.sdk_version);
            Ok(ai)
        })
        .await
        .map_err(obsolete_or)?;
    let ai = updated.value;
    let standalone = temper_workflow::standalone::is_standalone(&updated.state);
    let info = updated.state.execution_info.unwrap_or_default();
    let task_token = token::encode(&pb::TaskToken {
        namespace_id: ns.0.clone(),
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
        scheduled_event_id: ai.scheduled_event_id,
        attempt: ai.attempt,
        activity_id: ai.activity_id.clone(),
        activity_type: ai
            .activity_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        workflow_type: info
            .workflow_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        ..Default::default()
    });
    // A standalone activity belongs to no workflow: the worker is told its run id instead.
    let (workflow_type, workflow_execution, activity_run_id) = if standalone {
        (None, None, key.run_id.clone())
    } else {
        (
            info.workflow_type.clone(),
            Some(WorkflowExecution {
                workflow_id: key.workflow_id.clone(),
                run_id: key.run_id.clone(),
            }),
            String::new(),
        )
    };
    Ok(internal::RecordActivityTaskStartedResponse {
        response: Some(PollActivityTaskQueueResponse {
            task_token,
            workflow_namespace: poll.namespace.clone(),
            workflow_type,
            workflow_execution,
            activity_run_id,
            activity_type: ai.activity_type.clone(),
            activity_id: ai.activity_id.clone(),
            header: ai.header.clone(),
            input: ai.input.clone(),
            heartbeat_details: ai.heartbeat_details.clone(),
            scheduled_time: ai.first_scheduled_time,
            current_attempt_scheduled_time: ai.scheduled_time,
            started_time: ai.started_time,
            attempt: ai.attempt,
            // Always present, zero meaning unlimited, as from the Temporal server: SDKs
            // read them unchecked (runs scheduled before this rule have them absent).
            schedule_to_close_timeout: Some(ai.schedule_to_close_timeout.unwrap_or_default()),
            start_to_close_timeout: Some(ai.start_to_close_timeout.unwrap_or_default()),
            heartbeat_timeout: Some(ai.heartbeat_timeout.unwrap_or_default()),
            retry_policy: ai.retry_policy.clone(),
            // The priority the task was dispatched with: the workflow's, overridden field by
            // field by the activity's, as from the Temporal server.
            priority: temper_workflow::priority::merge(
                info.priority.as_ref(),
                ai.priority.as_ref(),
            ),
            ..Default::default()
        }),
    })
}

/// What a worker reports about an activity.
// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Report {
    Completed(Option<Payloads>, String),
    Failed(Failure, String, Option<Payloads>),
    Canceled(Option<Payloads>, String),
    Heartbeat(Option<Payloads>),
}

/// Apply a report. Returns, for heartbeats, what the response tells the worker.
pub(crate) async fn respond(
    engine: &HistoryEngine,
    namespace_id: &str,
    task_token: &[u8],
    by_id: Option<internal::ActivityRef>,
    report: Report,
) -> Result<act::HeartbeatAnswer, HistoryError> {
    let (ns, workflow_id, run_id, token) = match by_id {
        Some(r) => {
            if r.workflow_id.is_empty() {
                return Err(WorkflowError::InvalidArgument(
                    "WorkflowId is not set on request.".into(),
                )
                .into());
            }
            if r.activity_id.is_empty() {
                return Err(WorkflowError::InvalidArgument(
                    "ActivityId is not set on request.".into(),
                )
                .into());
            }
            let token = pb::TaskToken {
                activity_id: r.activity_id,
                ..Default::default()
            };
            (
                NamespaceId(namespace_id.to_string()),
                r.workflow_id,
                r.run_id,
                token,
            )
        }
        None => {
            let t = token::decode(task_token)?;
            if !namespace_id.is_empty() && t.namespace_id != namespace_id {
                return Err(WorkflowError::InvalidArgument(
                    "Operation requested with a token from a different namespace.".into(),
                )
                .into());
            }
            (
                NamespaceId(t.namespace_id.clone()),
                t.workflow_id.clone(),
                t.run_id.clone(),
                t,
            )
        }
    };
    let by_id =
        token.scheduled_event_id == 0 && !token.activity_id.is_empty() && token.run_id.is_empty();
    // A standalone activity's run, named by the activity's id.
    let standalone = workflow_id
        .strip_prefix(temper_types::STANDALONE_ACTIVITY_WORKFLOW_ID_PREFIX)
        .map(str::to_owned);
    let shard = engine.shard(&ns, &workflow_id)?;
    let key = match shard.resolve(&ns, &workflow_id, &run_id).await {
        Err(HistoryError::ExecutionNotFound(_)) if standalone.is_some() => {
            return Err(super::standalone_activity::not_found(
                standalone.as_deref().unwrap_or_default(),
            ));
        }
        key => key?,
    };
    let updated = shard
        .transact(&key, |txn| {
            if let Some(id) = &standalone {
                match standalone_report(txn, id, by_id, &token, &report)? {
                    StandaloneReport::Answered(answer) => return Ok(answer),
                    StandaloneReport::On(ai) => return apply_report(txn, &ai, &report),
                    StandaloneReport::AsUsual => {}
                }
            }
            let r = if by_id {
                ActivityRef::ById(&token.activity_id)
            } else {
                ActivityRef::Token(&token)
            };
            let ai = act::find_started(txn, r)?;
            apply_report(txn, &ai, &report)
        })
        .await?;
    Ok(updated.value)
}

/// How a report on a standalone activity is taken, where it differs from a workflow's.
enum StandaloneReport {
    /// Answered without a change (a heartbeat for a terminated attempt).
    Answered(act::HeartbeatAnswer),
    /// Applied to this activity (one completed or failed by id before it started, which
    /// the Temporal server accepts).
    On(Box<pb::ActivityInfo>),
    /// As a workflow's activity report.
    AsUsual,
}

fn standalone_report(
    txn: &temper_workflow::Txn<'_>,
    activity_id: &str,
    by_id: bool,
    token: &pb::TaskToken,
    report: &Report,
) -> Result<StandaloneReport, WorkflowError> {
    use temper_workflow::standalone;
    let not_found = || WorkflowError::NotFound(format!("activity not found for ID: {activity_id}"));
    if !txn.is_running() {
        if let Report::Heartbeat(_) = report {
            let (scheduled, attempt) = if by_id {
                (None, None)
            } else {
                (Some(token.scheduled_event_id), Some(token.attempt))
            };
            if let Some(answer) =
                standalone::heartbeat_after_termination(txn.ms, scheduled, attempt)
            {
                return Ok(StandaloneReport::Answered(answer));
            }
        }
        if by_id && matches!(report, Report::Completed(..) | Report::Failed(..)) {
            return Err(standalone::invalid_transition(txn.ms));
        }
        return Err(not_found());
    }
    let pending = txn
        .ms
        .activities
        .values()
        .find(|ai| ai.activity_id == activity_id)
        .cloned()
        .ok_or_else(not_found)?;
    if let Report::Canceled(..) = report {
        standalone::check_cancelable(&pending)?;
    }
    if by_id
        && pending.started_time.is_none()
        && matches!(report, Report::Completed(..) | Report::Failed(..))
    {
        return Ok(StandaloneReport::On(Box::new(pending)));
    }
    match act::find_started(
        txn,
        if by_id {
            ActivityRef::ById(activity_id)
        } else {
            ActivityRef::Token(token)
        },
    ) {
        Ok(_) => Ok(StandaloneReport::AsUsual),
        Err(WorkflowError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e),
    }
}

/// Apply a worker's report to the activity it names.
fn apply_report(
    txn: &mut temper_workflow::Txn<'_>,
    ai: &pb::ActivityInfo,
    report: &Report,
) -> Result<act::HeartbeatAnswer, WorkflowError> {
    let size = |p: &Option<Payloads>| {
        p.as_ref()
            .map(|p| p.payloads.iter().map(|x| x.data.len()).sum::<usize>())
            .unwrap_or(0)
    };
    match report {
        Report::Completed(result, identity) => {
            if size(result) > txn.limits.max_payload_bytes {
                return Err(WorkflowError::InvalidArgument(
                    "Activity result exceeds size limit.".into(),
                ));
            }
            act::complete(txn, ai, result.clone(), identity);
            Ok(Default::default())
        }
        Report::Failed(failure, identity, details) => {
            act::fail(txn, ai, failure.clone(), identity, details.clone());
            Ok(Default::default())
        }
        Report::Canceled(details, identity) => {
            act::canceled(txn, ai, details.clone(), identity);
            Ok(Default::default())
        }
        Report::Heartbeat(details) => {
            if size(details) > txn.limits.max_payload_bytes {
                return Err(WorkflowError::InvalidArgument(
                    "Heartbeat details exceed size limit.".into(),
                ));
            }
            Ok(act::heartbeat(txn, ai, details.clone()))
        }
    }
}
