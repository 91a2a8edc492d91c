//! RecordWorkflowTaskStarted (from matching), RespondWorkflowTaskCompleted/Failed.

use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::command::v1::command;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, WorkflowTaskFailedCause};
use temper_proto::temporal::api::history::v1::History;
use temper_proto::temporal::api::workflowservice::v1::{
    PollWorkflowTaskQueueResponse, RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskCompletedResponse, RespondWorkflowTaskFailedRequest,
    RespondWorkflowTaskFailedResponse,
};
use temper_types::NamespaceId;
use temper_workflow::commands::complete_workflow_task;
use temper_workflow::completion::{Completion, Outcome};
use temper_workflow::{WorkflowError, pb, speculative, token, update, workflow_task};
use tonic::Status;

use super::history::{FIRST_PAGE_EVENTS, PageToken};
use super::obsolete_or;
use crate::{HistoryEngine, HistoryError};

pub(crate) async fn record_started(
    engine: &HistoryEngine,
    r: internal::RecordWorkflowTaskStartedRequest,
) -> Result<internal::RecordWorkflowTaskStartedResponse, Status> {
    let ns = NamespaceId(r.namespace_id.clone());
    let exec = r.execution.clone().unwrap_or_default();
    let poll = r.poll_request.clone().unwrap_or_default();
    let shard = engine.shard(&ns, &exec.workflow_id)?;
    let key = ExecutionKey {
        namespace_id: ns.clone(),
        workflow_id: exec.workflow_id.clone(),
        run_id: exec.run_id.clone(),
    };
    let updated = shard
        .transact(&key, |txn| {
            update::record_workflow_task_started(
                txn,
                workflow_task::StartRequest {
                    #[allow(deprecated)]
                    poller: temper_workflow::versioning::Poller {
                        deployment_options: poll.deployment_options.clone(),
                        capabilities_build_id: poll
                            .worker_version_capabilities
                            .as_ref()
                            .map(|c| c.build_id.clone())
                            .unwrap_or_default(),
                        target: r.target_deployment_version.clone(),
                    },
                    scheduled_event_id: r.scheduled_event_id,
                    request_id: &r.request_id,
                    identity: &poll.identity,
                },
            )
        })
        .await
        .map_err(obsolete_or)?;
    let (started, messages) = updated.value;
    let ms = updated.state;
    if matches!(started, workflow_task::Started::New(_)) {
        crate::updates::started_speculative(&shard, &key, &ms);
    }
    let sticky = poll
        .task_queue
        .as_ref()
        .is_some_and(|q| q.kind == TaskQueueKind::Sticky as i32);
    let response = poll_response(&shard, &key, &ms, sticky, messages).await?;
    Ok(internal::RecordWorkflowTaskStartedResponse {
        response: Some(response),
    })
}

/// What the worker gets for the workflow task that `ms` (the state right after it started)
/// has started: its token and history (from the last completed task on, for a sticky poll).
pub(crate) async fn poll_response(
    shard: &crate::ShardContext,
    key: &ExecutionKey,
    ms: &pb::MutableState,
    sticky: bool,
    messages: Vec<temper_proto::temporal::api::protocol::v1::Message>,
) -> Result<PollWorkflowTaskQueueResponse, Status> {
    let ns = &key.namespace_id;
    let info = ms.execution_info.clone().unwrap_or_default();
    let Some(wt) = ms.workflow_task.clone().filter(|w| w.started_event_id > 0) else {
        return Err(temper_client::status::task_obsolete(
            "workflow task no longer started",
        ));
    };
    let previous_started = info.last_completed_workflow_task_started_event_id;
    let first = if sticky && previous_started > 0 {
        previous_started + 1
    } else {
        1
    };
    let end = wt.started_event_id + 1;
    let (mut page, now) = shard.events_between(key, first, Some(end)).await?;
    // A speculative task's own events are not stored; the worker sees them anyway. They are
    // taken from the state the page was read with: a signal that came after the task started
    // may have stored them since (the task became a normal one), and the worker must not get
    // them twice.
    page.extend(
        speculative::events(&now)
            .into_iter()
            .filter(|e| e.event_id >= first && e.event_id < end),
    );
    let mut next_page_token = Vec::new();
    if page.len() > FIRST_PAGE_EVENTS {
        page.truncate(FIRST_PAGE_EVENTS);
        let next = page.last().map(|e| e.event_id + 1).unwrap_or(first);
        next_page_token = PageToken {
            run_id: key.run_id.clone(),
            next_event_id: next,
            end_event_id: end,
        }
        .encode();
    }
    let task_token = token::encode(&pb::TaskToken {
        namespace_id: ns.0.clone(),
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
        scheduled_event_id: wt.scheduled_event_id,
        started_event_id: wt.started_event_id,
        attempt: wt.attempt,
        started_time: wt.started_time,
        workflow_type: info
            .workflow_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        ..Default::default()
    });
    Ok(PollWorkflowTaskQueueResponse {
        task_token,
        workflow_execution: Some(WorkflowExecution {
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
        }),
        workflow_type: info.workflow_type.clone(),
        previous_started_event_id: previous_started,
        started_event_id: wt.started_event_id,
        attempt: wt.attempt,
        history: Some(History { events: page }),
        next_page_token,
        workflow_execution_task_queue: info.task_queue.clone(),
        scheduled_time: wt.scheduled_time,
        started_time: wt.started_time,
        messages,
        ..Default::default()
    })
}

fn token_key(
    engine: &HistoryEngine,
    t: &pb::TaskToken,
) -> Result<(std::sync::Arc<crate::ShardContext>, ExecutionKey), HistoryError> {
    let ns = NamespaceId(t.namespace_id.clone());
    let shard = engine.shard(&ns, &t.workflow_id)?;
    Ok((
        shard,
        ExecutionKey {
            namespace_id: ns,
            workflow_id: t.workflow_id.clone(),
            run_id: t.run_id.clone(),
        },
    ))
}

/// What RespondWorkflowTaskCompleted answers (INVALID_ARGUMENT) when the task failed with
/// cause UNHANDLED_COMMAND; sdk-core matches this text.
pub(crate) const UNHANDLED_COMMAND: &str = "UnhandledCommand";

pub(crate) async fn completed(
    engine: &HistoryEngine,
    req: RespondWorkflowTaskCompletedRequest,
    search_attribute_names: Option<Vec<String>>,
) -> Result<RespondWorkflowTaskCompletedResponse, HistoryError> {
    let t = token::decode(&req.task_token)?;
    let (shard, key) = token_key(engine, &t)?;
    let binary_checksum = {
        #[allow(deprecated)]
        req.binary_checksum.clone()
    };
    // A continue-as-new rolls reset points over with the namespace's retention; other
    // completions do not look it up.
    let continues = req.commands.iter().any(|c| {
        matches!(
            c.attributes,
            Some(command::Attributes::ContinueAsNewWorkflowExecutionCommandAttributes(_))
        )
    });
    let retention = match continues {
        true => Some(shard.retention_of(&key.namespace_id).await),
        false => None,
    };
    // The endpoints the completion's Nexus operations name, looked up before the
    // transaction (the state machine does no IO); one not registered is left out.
    let mut nexus_endpoints = std::collections::HashMap::new();
    for c in &req.commands {
        if let Some(command::Attributes::ScheduleNexusOperationCommandAttributes(a)) = &c.attributes
            && !a.endpoint.is_empty()
            && !nexus_endpoints.contains_key(&a.endpoint)
            && let Some(e) = engine
                .nexus_endpoints
                .by_name(&a.endpoint)
                .await
                .map_err(|s| {
                    HistoryError::Store(temper_persistence::StoreError::Unavailable(format!(
                        "nexus endpoints: {}",
                        s.message()
                    )))
                })?
        {
            nexus_endpoints.insert(a.endpoint.clone(), e.id);
        }
    }
    let outcome = shard
        .transact(&key, |txn| {
            txn.retention = retention;
            txn.nexus_endpoints = nexus_endpoints.clone();
            let wt = workflow_task::check_token(txn, &t)?;
            Ok(complete_workflow_task(
                txn,
                &wt,
                Completion {
                    #[allow(deprecated)]
                    worker: temper_workflow::versioning::CompletingWorker {
                        stamp: req.worker_version_stamp.clone(),
                        deployment_options: req.deployment_options.clone(),
                        versioning_behavior: req.versioning_behavior,
                    },
                    commands: &req.commands,
                    identity: &req.identity,
                    binary_checksum: &binary_checksum,
                    search_attribute_names: search_attribute_names.as_deref(),
                    sticky: req.sticky_attributes.as_ref(),
                    force_create_new_workflow_task: req.force_create_new_workflow_task,
                    sdk_metadata: req.sdk_metadata.clone(),
                    metering_metadata: req.metering_metadata,
                    messages: &req.messages,
                    discard_speculative_with_events: req
                        .capabilities
                        .as_ref()
                        .is_some_and(|c| c.discard_speculative_workflow_task_with_events),
                },
            ))
        })
        .await?;
    // Updates that arrived while the task ran get a speculative task of their own.
    crate::updates::dispatch_speculative(&shard, &key, &outcome.state);
    match outcome.value {
        // The task failed (and is stored so) because events arrived that the worker has not
        // seen. Temporal answers exactly this, and the SDKs (sdk-core) evict the run from their
        // cache on it and replay; an OK here would let a worker keep a run whose close was
        // refused, and send the same close again without the new events (a lost signal).
        Outcome::Rejected(bad) if bad.cause == WorkflowTaskFailedCause::UnhandledCommand => {
            Err(WorkflowError::InvalidArgument(UNHANDLED_COMMAND.into()).into())
        }
        Outcome::Rejected(bad) => Err(WorkflowError::InvalidArgument(bad.message).into()),
        Outcome::Discarded {
            reset_history_event_id,
        } => Ok(RespondWorkflowTaskCompletedResponse {
            reset_history_event_id,
            ..Default::default()
        }),
        _ => Ok(RespondWorkflowTaskCompletedResponse::default()),
    }
}

pub(crate) async fn failed(
    engine: &HistoryEngine,
    req: RespondWorkflowTaskFailedRequest,
) -> Result<RespondWorkflowTaskFailedResponse, HistoryError> {
    let t = token::decode(&req.task_token)?;
    let (shard, key) = token_key(engine, &t)?;
    let cause = WorkflowTaskFailedCause::try_from(req.cause)
        .unwrap_or(WorkflowTaskFailedCause::Unspecified);
    shard
        .transact(&key, |txn| {
            let wt = workflow_task::check_token(txn, &t)?;
            workflow_task::fail(txn, &wt, cause, req.failure.clone(), &req.identity);
            Ok(())
        })
        .await?;
    Ok(RespondWorkflowTaskFailedResponse::default())
}
