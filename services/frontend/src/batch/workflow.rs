//! The batch's own workflow, which is where a batch's state lives: its input (the request),
//! its checkpoints (signals), and its end. The workflow has one workflow task, scheduled when
//! it started, which nothing polls: to close the workflow the runner takes that task itself
//! (history's RecordWorkflowTaskStarted, as a worker's poll would) and completes it with a memo
//! upsert with the stats and CompleteWorkflowExecution (or FailWorkflowExecution when the query
//! cannot run).

use prost::Message;
use temper_client::HistoryClient;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, FailWorkflowExecutionCommandAttributes,
    ModifyWorkflowPropertiesCommandAttributes, command,
};
use temper_proto::temporal::api::common::v1::{Memo, Payloads, WorkflowExecution};
use temper_proto::temporal::api::enums::v1::{CommandType, EventType};
use temper_proto::temporal::api::failure::v1::{ApplicationFailureInfo, Failure, failure};
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::{self as ws, StartBatchOperationRequest};
use tonic::{Code, Request, Status};

use super::ops::IDENTITY;
use super::progress::{CHECKPOINT_SIGNAL, Progress};
use super::request::{self, TASK_QUEUE, json_payload, payload_json};
use super::runner::{Deps, Job, RETRY};

pub(super) async fn checkpoint(
    history: &HistoryClient,
    job: &Job,
    p: &Progress,
) -> Result<(), Status> {
    history
        .signal_workflow_execution(Request::new(internal::SignalWorkflowExecutionRequest {
            namespace_id: job.namespace_id.clone(),
            request: Some(ws::SignalWorkflowExecutionRequest {
                namespace: job.request.namespace.clone(),
                workflow_execution: Some(job.execution()),
                signal_name: CHECKPOINT_SIGNAL.to_owned(),
                input: Some(Payloads {
                    payloads: vec![json_payload(&p.to_json())],
                }),
                identity: IDENTITY.to_owned(),
                request_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .map(|_| ())
}

/// The newest checkpoint in the batch workflow's history, if any.
pub(super) async fn last_checkpoint(
    history: &HistoryClient,
    job: &Job,
) -> Result<Option<Progress>, Status> {
    checkpoint_of(
        history,
        &job.namespace_id,
        &job.request.namespace,
        job.execution(),
    )
    .await
}

/// The newest checkpoint of the batch workflow `execution`.
pub(super) async fn checkpoint_of(
    history: &HistoryClient,
    namespace_id: &str,
    namespace: &str,
    execution: WorkflowExecution,
) -> Result<Option<Progress>, Status> {
    let mut token = Vec::new();
    loop {
        let page = history
            .get_workflow_execution_history_reverse(Request::new(
                internal::GetWorkflowExecutionHistoryReverseRequest {
                    namespace_id: namespace_id.to_owned(),
                    request: Some(ws::GetWorkflowExecutionHistoryReverseRequest {
                        namespace: namespace.to_owned(),
                        execution: Some(execution.clone()),
                        maximum_page_size: 100,
                        next_page_token: token,
                    }),
                },
            ))
            .await?
            .into_inner();
        for ev in page.history.map(|h| h.events).unwrap_or_default() {
            if let Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) = &ev.attributes
                && a.signal_name == CHECKPOINT_SIGNAL
            {
                let p = a
                    .input
                    .as_ref()
                    .and_then(|i| i.payloads.first())
                    .and_then(payload_json)
                    .and_then(|v| Progress::from_json(&v));
                if p.is_some() {
                    return Ok(p);
                }
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(None);
        }
        token = page.next_page_token;
    }
}

/// The request a batch workflow was started with (its input), and when it started (RFC 3339).
pub(super) async fn read_start(
    history: &HistoryClient,
    namespace_id: &str,
    namespace: &str,
    execution: WorkflowExecution,
) -> Result<(StartBatchOperationRequest, String), Status> {
    let page = history
        .get_workflow_execution_history(Request::new(
            internal::GetWorkflowExecutionHistoryRequest {
                namespace_id: namespace_id.to_owned(),
                request: Some(ws::GetWorkflowExecutionHistoryRequest {
                    namespace: namespace.to_owned(),
                    execution: Some(execution),
                    maximum_page_size: 1,
                    ..Default::default()
                }),
                long_poll_timeout_ms: 0,
            },
        ))
        .await?
        .into_inner();
    let first = page.history.and_then(|h| h.events.into_iter().next());
    let started = first
        .as_ref()
        .and_then(|e| e.event_time.as_ref())
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
    let input = first
        .and_then(|e| match e.attributes {
            Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.input,
            _ => None,
        })
        .and_then(|i| i.payloads.into_iter().next())
        .and_then(|p| StartBatchOperationRequest::decode(p.data.as_slice()).ok());
    match (input, started) {
        (Some(r), Some(t)) => Ok((r, t)),
        _ => Err(Status::internal(
            "the batch workflow's first event is not a start with a batch request",
        )),
    }
}

/// Take the batch workflow's pending workflow task and complete (or fail) the workflow.
pub(super) async fn close(deps: &Deps, job: &Job, outcome: Result<Progress, String>) {
    loop {
        match try_close(deps, job, &outcome).await {
            Ok(()) => return,
            Err(s) if s.code() == Code::NotFound => return,
            Err(s) => {
                tracing::warn!(job_id = %job.request.job_id, error = %s, "batch: closing");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn try_close(
    deps: &Deps,
    job: &Job,
    outcome: &Result<Progress, String>,
) -> Result<(), Status> {
    let scheduled = pending_workflow_task(deps, job).await?;
    let started = deps
        .history
        .record_workflow_task_started(Request::new(internal::RecordWorkflowTaskStartedRequest {
            target_deployment_version: None,
            namespace_id: job.namespace_id.clone(),
            execution: Some(job.execution()),
            scheduled_event_id: scheduled,
            request_id: uuid::Uuid::new_v4().to_string(),
            poll_request: Some(ws::PollWorkflowTaskQueueRequest {
                namespace: job.request.namespace.clone(),
                task_queue: Some(TaskQueue {
                    name: TASK_QUEUE.to_owned(),
                    ..Default::default()
                }),
                identity: IDENTITY.to_owned(),
                ..Default::default()
            }),
        }))
        .await?
        .into_inner();
    let token = started.response.map(|r| r.task_token).unwrap_or_default();
    let commands = match outcome {
        Ok(p) => vec![
            Command {
                command_type: CommandType::ModifyWorkflowProperties as i32,
                attributes: Some(
                    command::Attributes::ModifyWorkflowPropertiesCommandAttributes(
                        ModifyWorkflowPropertiesCommandAttributes {
                            upserted_memo: Some(Memo {
                                fields: [(
                                    request::MEMO_STATS.to_owned(),
                                    json_payload(&p.stats_json()),
                                )]
                                .into(),
                            }),
                        },
                    ),
                ),
                ..Default::default()
            },
            Command {
                command_type: CommandType::CompleteWorkflowExecution as i32,
                attributes: Some(
                    command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                        CompleteWorkflowExecutionCommandAttributes {
                            result: Some(Payloads {
                                payloads: vec![json_payload(&p.to_json())],
                            }),
                        },
                    ),
                ),
                ..Default::default()
            },
        ],
        Err(message) => vec![Command {
            command_type: CommandType::FailWorkflowExecution as i32,
            attributes: Some(command::Attributes::FailWorkflowExecutionCommandAttributes(
                FailWorkflowExecutionCommandAttributes {
                    failure: Some(Failure {
                        message: message.clone(),
                        source: "temper".to_owned(),
                        failure_info: Some(failure::FailureInfo::ApplicationFailureInfo(
                            ApplicationFailureInfo {
                                r#type: "InvalidArgument".to_owned(),
                                non_retryable: true,
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }),
                },
            )),
            ..Default::default()
        }],
    };
    deps.history
        .respond_workflow_task_completed(Request::new(
            internal::RespondWorkflowTaskCompletedRequest {
                namespace_id: job.namespace_id.clone(),
                request: Some(ws::RespondWorkflowTaskCompletedRequest {
                    task_token: token,
                    commands,
                    identity: IDENTITY.to_owned(),
                    namespace: job.request.namespace.clone(),
                    ..Default::default()
                }),
                search_attributes: None,
            },
        ))
        .await?;
    Ok(())
}

/// The scheduled event id of the batch workflow's newest workflow task. NOT_FOUND when the
/// workflow has closed.
async fn pending_workflow_task(deps: &Deps, job: &Job) -> Result<i64, Status> {
    let mut token = Vec::new();
    let mut scheduled = None;
    loop {
        let page = deps
            .history
            .get_workflow_execution_history(Request::new(
                internal::GetWorkflowExecutionHistoryRequest {
                    namespace_id: job.namespace_id.clone(),
                    request: Some(ws::GetWorkflowExecutionHistoryRequest {
                        namespace: job.request.namespace.clone(),
                        execution: Some(job.execution()),
                        maximum_page_size: 1000,
                        next_page_token: token,
                        ..Default::default()
                    }),
                    long_poll_timeout_ms: 0,
                },
            ))
            .await?
            .into_inner();
        for ev in page.history.map(|h| h.events).unwrap_or_default() {
            let t = EventType::try_from(ev.event_type).unwrap_or(EventType::Unspecified);
            match t {
                EventType::WorkflowTaskScheduled => scheduled = Some(ev.event_id),
                EventType::WorkflowExecutionCompleted
                | EventType::WorkflowExecutionFailed
                | EventType::WorkflowExecutionTerminated
                | EventType::WorkflowExecutionCanceled
                | EventType::WorkflowExecutionTimedOut
                | EventType::WorkflowExecutionContinuedAsNew => {
                    return Err(temper_client::status::not_found(
                        "the batch workflow has closed",
                    ));
                }
                _ => {}
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    scheduled.ok_or_else(|| Status::unavailable("the batch workflow has no workflow task yet"))
}
