//! Nexus operations, the history service's part: sending a pending operation's start and
//! cancel requests to its endpoint's handler (through matching's Nexus task queue), turning
//! the handler's answer into the caller's events (`temper_workflow::nexus`), and, when a
//! handler workflow started for an asynchronous operation closes, calling its completion
//! callback: the caller's operation completes with the workflow's outcome.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use prost::Message;
use temper_client::{HistoryClient, MatchingClient};
use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::dispatch_nexus_task_response::Outcome;
use temper_proto::temporal::api::common::v1::{Link, Payload, WorkflowExecution, callback, link};
use temper_proto::temporal::api::enums::v1::EventType;
use temper_proto::temporal::api::enums::v1::TaskQueueKind;
use temper_proto::temporal::api::failure::v1::{
    ApplicationFailureInfo, CanceledFailureInfo, Failure, NexusHandlerFailureInfo,
    failure::FailureInfo,
};
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::nexus::v1::{
    CancelOperationRequest, HandlerError, Request as NexusRequest, StartOperationRequest, request,
    response, start_operation_response,
};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_workflow::nexus::{self, StartOutcome};
use temper_workflow::{close, pb};

use crate::shard::ShardContext;
use crate::{HistoryEngine, HistoryError};

/// The callback URL of an operation whose handler runs in this cluster (Temporal's).
pub const SYSTEM_CALLBACK_URL: &str = "temporal://system";
/// The header carrying the caller's operation to the handler workflow's callback.
const CALLBACK_TOKEN_HEADER: &str = "temporal-callback-token";
/// Longest a start or cancel request waits for a handler (Temporal's request timeout is
/// about as long; an unanswered request is an attempt that failed).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// Handler error types a new attempt may fix (the Nexus protocol's retryable ones).
const RETRYABLE: [&str; 5] = [
    "INTERNAL",
    "UNAVAILABLE",
    "UPSTREAM_TIMEOUT",
    "RESOURCE_EXHAUSTED",
    "NOT_IMPLEMENTED_YET",
];

fn unavailable(what: impl std::fmt::Display) -> HistoryError {
    HistoryError::Store(temper_persistence::StoreError::Unavailable(
        what.to_string(),
    ))
}

fn handler_failure(error_type: &str, message: &str) -> Failure {
    Failure {
        message: message.to_owned(),
        failure_info: Some(FailureInfo::NexusHandlerFailureInfo(
            NexusHandlerFailureInfo {
                r#type: error_type.to_owned(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// A Nexus protocol failure as a Temporal failure (its message, details as they are).
fn from_nexus_failure(f: &temper_proto::temporal::api::nexus::v1::Failure) -> Failure {
    Failure {
        message: f.message.clone(),
        stack_trace: f.stack_trace.clone(),
        cause: f.cause.as_deref().map(|c| Box::new(from_nexus_failure(c))),
        ..Default::default()
    }
}

/// A handler error's outcome: retried if its type says a new attempt may work.
fn handler_error_outcome(e: &HandlerError) -> StartOutcome {
    let mut failure = e
        .failure
        .as_ref()
        .map(from_nexus_failure)
        .unwrap_or_default();
    let retry_behavior = e.retry_behavior;
    failure.failure_info = Some(FailureInfo::NexusHandlerFailureInfo(
        NexusHandlerFailureInfo {
            r#type: e.error_type.clone(),
            retry_behavior,
        },
    ));
    use temper_proto::temporal::api::enums::v1::NexusHandlerErrorRetryBehavior as B;
    let retryable = match B::try_from(retry_behavior).unwrap_or(B::Unspecified) {
        B::Retryable => true,
        B::NonRetryable => false,
        B::Unspecified => RETRYABLE.contains(&e.error_type.as_str()),
    };
    if retryable {
        StartOutcome::Retry(failure)
    } else {
        StartOutcome::Failed {
            cause: failure,
            canceled: false,
        }
    }
}

/// A Temporal failure a handler sent (RespondNexusTaskFailed): a handler error unless it
/// says it is the operation's own failure.
fn failure_outcome(f: Failure) -> StartOutcome {
    match &f.failure_info {
        Some(FailureInfo::NexusHandlerFailureInfo(h)) => handler_error_outcome(&HandlerError {
            error_type: h.r#type.clone(),
            failure: Some(temper_proto::temporal::api::nexus::v1::Failure {
                message: f.message.clone(),
                ..Default::default()
            }),
            retry_behavior: h.retry_behavior,
        })
        .with_failure(f),
        Some(FailureInfo::CanceledFailureInfo(_)) => StartOutcome::Failed {
            cause: f,
            canceled: true,
        },
        _ => StartOutcome::Failed {
            cause: f,
            canceled: false,
        },
    }
}

trait WithFailure {
    fn with_failure(self, f: Failure) -> Self;
}

impl WithFailure for StartOutcome {
    /// The same decision, with the handler's own failure as the cause.
    fn with_failure(self, f: Failure) -> Self {
        match self {
            StartOutcome::Retry(_) => StartOutcome::Retry(f),
            StartOutcome::Failed { canceled, .. } => StartOutcome::Failed { cause: f, canceled },
            other => other,
        }
    }
}

/// What the handler's answer to a start request means for the operation.
fn start_outcome(outcome: Option<Outcome>) -> StartOutcome {
    match outcome {
        Some(Outcome::Response(r)) => match r.variant {
            Some(response::Variant::StartOperation(s)) => match s.variant {
                Some(start_operation_response::Variant::SyncSuccess(sync)) => {
                    StartOutcome::Completed {
                        result: sync.payload,
                        links: sync.links.iter().filter_map(temporal_link).collect(),
                    }
                }
                Some(start_operation_response::Variant::AsyncSuccess(a)) => {
                    #[allow(deprecated)]
                    let token = if a.operation_token.is_empty() {
                        a.operation_id
                    } else {
                        a.operation_token
                    };
                    StartOutcome::Started {
                        token,
                        links: a.links.iter().filter_map(temporal_link).collect(),
                    }
                }
                #[allow(deprecated)]
                Some(start_operation_response::Variant::OperationError(e)) => {
                    let cause = e
                        .failure
                        .as_ref()
                        .map(from_nexus_failure)
                        .unwrap_or_default();
                    let canceled = e.operation_state == "canceled";
                    let cause = if canceled {
                        Failure {
                            failure_info: Some(FailureInfo::CanceledFailureInfo(
                                CanceledFailureInfo::default(),
                            )),
                            ..cause
                        }
                    } else {
                        Failure {
                            failure_info: Some(FailureInfo::ApplicationFailureInfo(
                                ApplicationFailureInfo {
                                    r#type: "OperationError".into(),
                                    non_retryable: true,
                                    ..Default::default()
                                },
                            )),
                            ..cause
                        }
                    };
                    StartOutcome::Failed { cause, canceled }
                }
                Some(start_operation_response::Variant::Failure(f)) => failure_outcome(f),
                None => StartOutcome::Retry(handler_failure(
                    "INTERNAL",
                    "the handler's start response had no outcome",
                )),
            },
            _ => StartOutcome::Retry(handler_failure(
                "INTERNAL",
                "the handler answered a start request with another response",
            )),
        },
        Some(Outcome::HandlerError(e)) => handler_error_outcome(&e),
        Some(Outcome::Failure(f)) => failure_outcome(f),
        None => StartOutcome::Retry(handler_failure("INTERNAL", "empty answer from the handler")),
    }
}

/// A Nexus link a handler returned, as the Temporal link it stands for (Temporal's URL forms:
/// `temporal:///namespaces/<ns>/workflows/<id>/<run>/history?referenceType=...` for an event
/// of a workflow, by id or by request id; `.../workflows/<id>/<run>` for a workflow;
/// `.../activities/<id>/<run>/details` for an activity). Others are dropped, as in Temporal.
pub(crate) fn temporal_link(l: &temper_proto::temporal::api::nexus::v1::Link) -> Option<Link> {
    let rest = l.url.strip_prefix("temporal:///namespaces/")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let decode = percent_decode;
    // Query values are form-encoded (a space may come as `+`).
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => Some(decode(&v.replace('+', " "))),
                _ => None,
            })
    };
    let event_type = || {
        let v = param("eventType").unwrap_or_default();
        EventType::from_str_name(&format!("EVENT_TYPE_{}", snake_upper(&v)))
            .or_else(|| EventType::from_str_name(&v))
            .map(|t| t as i32)
            .unwrap_or(0)
    };
    let variant = match (l.r#type.as_str(), parts.as_slice()) {
        (
            "temporal.api.common.v1.Link.WorkflowEvent",
            [namespace, "workflows", workflow_id, run_id, "history"],
        ) => {
            use link::workflow_event::{EventReference, Reference, RequestIdReference};
            let reference = match param("referenceType").as_deref() {
                Some("EventReference") => Reference::EventRef(EventReference {
                    event_id: param("eventID").and_then(|v| v.parse().ok()).unwrap_or(0),
                    event_type: event_type(),
                }),
                Some("RequestIdReference") => Reference::RequestIdRef(RequestIdReference {
                    request_id: param("requestID").unwrap_or_default(),
                    event_type: event_type(),
                }),
                _ => return None,
            };
            link::Variant::WorkflowEvent(link::WorkflowEvent {
                namespace: decode(namespace),
                workflow_id: decode(workflow_id),
                run_id: decode(run_id),
                reference: Some(reference),
            })
        }
        ("temporal.api.common.v1.Link.Workflow", [namespace, "workflows", workflow_id, run_id]) => {
            link::Variant::Workflow(link::Workflow {
                namespace: decode(namespace),
                workflow_id: decode(workflow_id),
                run_id: decode(run_id),
                reason: param("reason").unwrap_or_default(),
            })
        }
        (
            "temporal.api.common.v1.Link.Activity",
            [namespace, "activities", activity_id, run_id, "details"],
        ) => link::Variant::Activity(link::Activity {
            namespace: decode(namespace),
            activity_id: decode(activity_id),
            run_id: decode(run_id),
        }),
        _ => return None,
    };
    Some(Link {
        variant: Some(variant),
    })
}

/// `WorkflowExecutionStarted` -> `WORKFLOW_EXECUTION_STARTED`.
fn snake_upper(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The callback token's envelope, as Temporal's: `{"v":1,"d":"<base64 of the token>"}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct TokenEnvelope {
    v: u32,
    d: String,
}

fn encode_callback_token(token: &pb::NexusCallbackToken) -> String {
    let envelope = TokenEnvelope {
        v: 1,
        d: base64::engine::general_purpose::STANDARD.encode(token.encode_to_vec()),
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

fn decode_callback_token(text: &str) -> Option<pb::NexusCallbackToken> {
    let envelope: TokenEnvelope = serde_json::from_str(text).ok()?;
    if envelope.v != 1 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(envelope.d)
        .ok()?;
    pb::NexusCallbackToken::decode(bytes.as_slice()).ok()
}

/// The link to the caller the handler gets (Temporal's URL forms): a workflow's scheduled
/// event, or the standalone operation itself.
fn caller_link(
    namespace: &str,
    key: &ExecutionKey,
    ms: &pb::MutableState,
    scheduled_event_id: i64,
) -> temper_proto::temporal::api::nexus::v1::Link {
    // What a URL path segment keeps as it is (RFC 3986's unreserved characters).
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let part = |s: &str| percent_encoding::utf8_percent_encode(s, ESCAPED).to_string();
    if let Some(so) = &ms.standalone_nexus_operation {
        return temper_proto::temporal::api::nexus::v1::Link {
            url: format!(
                "temporal:///namespaces/{}/nexus-operations/{}/{}/details",
                part(namespace),
                part(&so.operation_id),
                part(&key.run_id)
            ),
            r#type: "temporal.api.common.v1.Link.NexusOperation".into(),
        };
    }
    temper_proto::temporal::api::nexus::v1::Link {
        url: format!(
            "temporal:///namespaces/{}/workflows/{}/{}/history?referenceType=EventReference&eventID={scheduled_event_id}&eventType=NexusOperationScheduled",
            part(namespace),
            part(&key.workflow_id),
            part(&key.run_id)
        ),
        r#type: "temporal.api.common.v1.Link.WorkflowEvent".into(),
    }
}

/// What this server takes in handlers' answers: Temporal failures (with their own messages,
/// causes and stack traces), which the SDKs then send instead of Nexus handler errors.
const CAPABILITIES: request::Capabilities = request::Capabilities {
    temporal_failure_responses: true,
};

/// The headers of a request to `op`'s handler: the caller's, how long the request may take,
/// and how long the operation has left (its schedule-to-close deadline), as Temporal sends.
fn request_header(
    op: &pb::NexusOperationInfo,
    now: std::time::SystemTime,
) -> HashMap<String, String> {
    let mut header = op.nexus_header.clone();
    header.insert(
        "request-timeout".into(),
        format!("{}ms", REQUEST_TIMEOUT.as_millis()),
    );
    let limit = temper_workflow::time::from_dur(&op.schedule_to_close_timeout);
    if let Some(scheduled) = op.scheduled_time.as_ref().filter(|_| !limit.is_zero()) {
        let deadline = temper_workflow::time::from_ts(scheduled) + limit;
        let left = deadline.duration_since(now).unwrap_or_default();
        header.insert(
            "operation-timeout".into(),
            format!("{}ms", left.as_millis()),
        );
    }
    header
}

/// Where the endpoint of `op` sends its requests: (namespace id, task queue).
async fn target(
    engine: &HistoryEngine,
    shard: &ShardContext,
    op: &pb::NexusOperationInfo,
) -> Result<Result<(String, String), Failure>, HistoryError> {
    let endpoint = engine
        .nexus_endpoints
        .by_id_cached(&op.endpoint_id)
        .await
        .map_err(|s| unavailable(format!("nexus endpoints: {}", s.message())))?;
    let Some(endpoint) = endpoint else {
        return Ok(Err(handler_failure(
            "NOT_FOUND",
            &format!("endpoint {:?} not found", op.endpoint),
        )));
    };
    let Some((namespace, task_queue)) = temper_client::nexus_endpoints::worker_target(&endpoint)
    else {
        return Ok(Err(handler_failure(
            "NOT_IMPLEMENTED",
            "endpoints with an external target are not supported yet",
        )));
    };
    let ns = shard
        .persistence
        .namespaces
        .get_namespace_by_name(namespace)
        .await?;
    match ns {
        Some(ns) => Ok(Ok((ns.id.0, task_queue.to_owned()))),
        None => Ok(Err(handler_failure(
            "NOT_FOUND",
            &format!(
                "namespace {namespace} of endpoint {:?} not found",
                op.endpoint
            ),
        ))),
    }
}

/// The caller's namespace name (links and callbacks name it).
pub(crate) async fn namespace_name(
    shard: &ShardContext,
    key: &ExecutionKey,
) -> Result<String, HistoryError> {
    Ok(shard
        .persistence
        .namespaces
        .get_namespace_by_id(&key.namespace_id)
        .await?
        .map(|n| n.name)
        .unwrap_or_default())
}

async fn dispatch(
    matching: &MatchingClient,
    namespace_id: String,
    task_queue: String,
    request: NexusRequest,
) -> Result<Option<Outcome>, tonic::Status> {
    let req = internal::DispatchNexusTaskRequest {
        namespace_id,
        task_queue: Some(TaskQueue {
            name: task_queue,
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        request: Some(request),
        timeout_ms: REQUEST_TIMEOUT.as_millis() as i64,
    };
    matching
        .dispatch_nexus_task(tonic::Request::new(req))
        .await
        .map(|r| r.into_inner().outcome)
}

/// A NEXUS_START task: send attempt `task.attempt` of the operation's start request (an
/// operation on the system endpoint is carried out here instead, `crate::system_nexus`).
pub(crate) async fn send_start(
    engine: &HistoryEngine,
    shard: &ShardContext,
    matching: &MatchingClient,
    history: &HistoryClient,
    key: &ExecutionKey,
    task: &pb::TransferTask,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    if close::is_closed(&ms) {
        return Ok(());
    }
    let Some(op) = ms.nexus_operations.get(&task.scheduled_event_id).cloned() else {
        return Ok(());
    };
    if op.started_event_id != 0
        || op.attempt + 1 != task.attempt
        || op.next_attempt_schedule_time.is_some()
    {
        return Ok(());
    }
    let outcome = if op.endpoint == temper_workflow::system_nexus::ENDPOINT {
        let namespace = namespace_name(shard, key).await?;
        crate::system_nexus::start(history, key, &namespace, &op, &shard.limits).await
    } else {
        match target(engine, shard, &op).await? {
            Err(failure) => StartOutcome::Retry(failure),
            Ok((namespace_id, task_queue)) => {
                let namespace = namespace_name(shard, key).await?;
                let token = pb::NexusCallbackToken {
                    namespace_id: key.namespace_id.0.clone(),
                    workflow_id: key.workflow_id.clone(),
                    run_id: key.run_id.clone(),
                    scheduled_event_id: op.scheduled_event_id,
                    request_id: op.request_id.clone(),
                };
                let callback_token = encode_callback_token(&token);
                let header = request_header(&op, shard.now());
                let request = NexusRequest {
                    header,
                    scheduled_time: op.scheduled_time,
                    capabilities: Some(CAPABILITIES),
                    variant: Some(request::Variant::StartOperation(StartOperationRequest {
                        service: op.service.clone(),
                        operation: op.operation.clone(),
                        request_id: op.request_id.clone(),
                        callback: SYSTEM_CALLBACK_URL.into(),
                        payload: op.input.clone(),
                        callback_header: HashMap::from([(
                            CALLBACK_TOKEN_HEADER.to_owned(),
                            callback_token,
                        )]),
                        links: vec![caller_link(&namespace, key, &ms, op.scheduled_event_id)],
                    })),
                    endpoint: op.endpoint.clone(),
                };
                match dispatch(matching, namespace_id, task_queue, request).await {
                    Ok(answer) => start_outcome(answer),
                    Err(s)
                        if s.code() == tonic::Code::DeadlineExceeded
                            || s.code() == tonic::Code::FailedPrecondition =>
                    {
                        StartOutcome::Retry(handler_failure("UPSTREAM_TIMEOUT", "upstream timeout"))
                    }
                    Err(s) => return Err(unavailable(format!("matching: {s}"))),
                }
            }
        }
    };
    let (scheduled_event_id, attempt) = (task.scheduled_event_id, task.attempt);
    shard
        .transact(key, |txn| {
            nexus::on_start(txn, scheduled_event_id, attempt, outcome.clone());
            Ok(())
        })
        .await?;
    Ok(())
}

/// A NEXUS_CANCEL task: send the operation's cancel request to its handler.
pub(crate) async fn send_cancel(
    engine: &HistoryEngine,
    shard: &ShardContext,
    matching: &MatchingClient,
    key: &ExecutionKey,
    task: &pb::TransferTask,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let Some(op) = ms.nexus_operations.get(&task.scheduled_event_id).cloned() else {
        return Ok(());
    };
    if close::is_closed(&ms) || op.cancel_requested_event_id == 0 || op.cancel_delivered {
        return Ok(());
    }
    let answer = match target(engine, shard, &op).await? {
        Err(failure) => Some(failure),
        Ok((namespace_id, task_queue)) => {
            let header = request_header(&op, shard.now());
            #[allow(deprecated)]
            let request = NexusRequest {
                header,
                scheduled_time: op.scheduled_time,
                capabilities: Some(CAPABILITIES),
                variant: Some(request::Variant::CancelOperation(CancelOperationRequest {
                    service: op.service.clone(),
                    operation: op.operation.clone(),
                    operation_id: op.operation_token.clone(),
                    operation_token: op.operation_token.clone(),
                })),
                endpoint: op.endpoint.clone(),
            };
            match dispatch(matching, namespace_id, task_queue, request).await {
                Ok(Some(Outcome::Response(_))) => None,
                Ok(Some(Outcome::HandlerError(e))) => Some(
                    e.failure
                        .as_ref()
                        .map(from_nexus_failure)
                        .unwrap_or_else(|| handler_failure(&e.error_type, &e.error_type)),
                ),
                Ok(Some(Outcome::Failure(f))) => Some(f),
                Ok(None) => Some(handler_failure("INTERNAL", "empty answer from the handler")),
                // No handler in time: try again later (the task is retried).
                Err(s) => return Err(unavailable(format!("nexus cancel: {s}"))),
            }
        }
    };
    let scheduled_event_id = task.scheduled_event_id;
    shard
        .transact(key, |txn| {
            nexus::on_cancel_answer(txn, scheduled_event_id, answer.clone());
            Ok(())
        })
        .await?;
    Ok(())
}

/// A COMPLETION_CALLBACKS task: the run (a handler workflow) closed; tell each caller.
pub(crate) async fn call_callbacks(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    if !close::is_closed(&ms) || ms.completion_callbacks.is_empty() {
        return Ok(());
    }
    let info = ms.execution_info.clone().unwrap_or_default();
    // The outcome is the close event's.
    let (events, _) = shard
        .events_between(
            key,
            info.completion_event_id,
            Some(info.completion_event_id + 1),
        )
        .await?;
    let close = events.into_iter().next().and_then(|e| e.attributes);
    // A run that another continues (retry, cron) passed its callbacks on: the chain's last
    // run calls back.
    let continued = match &close {
        Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => {
            a.new_execution_run_id.as_str()
        }
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
            a.new_execution_run_id.as_str()
        }
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(a)) => {
            a.new_execution_run_id.as_str()
        }
        _ => "",
    };
    if !continued.is_empty() {
        return Ok(());
    }
    let (result, failure, canceled) = match close {
        Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => (
            a.result
                .and_then(|p| p.payloads.into_iter().next())
                .or(Some(Payload::default())),
            None,
            false,
        ),
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => (None, a.failure, false),
        Some(Attributes::WorkflowExecutionCanceledEventAttributes(a)) => (
            None,
            Some(Failure {
                message: "operation canceled".into(),
                failure_info: Some(FailureInfo::CanceledFailureInfo(CanceledFailureInfo {
                    details: a.details,
                    ..Default::default()
                })),
                ..Default::default()
            }),
            true,
        ),
        Some(Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => (
            None,
            Some(Failure {
                message: "operation terminated".into(),
                failure_info: Some(FailureInfo::TerminatedFailureInfo(Default::default())),
                cause: Some(Box::new(Failure {
                    message: a.reason,
                    ..Default::default()
                })),
                ..Default::default()
            }),
            false,
        ),
        Some(Attributes::WorkflowExecutionTimedOutEventAttributes(_)) => (
            None,
            Some(Failure {
                message: "operation exceeded internal timeout".into(),
                failure_info: Some(FailureInfo::TimeoutFailureInfo(Default::default())),
                ..Default::default()
            }),
            false,
        ),
        // Continued as new: the chain goes on; its last run calls back.
        _ => return Ok(()),
    };
    let links = vec![
        event_link(
            shard,
            key,
            link::workflow_event::Reference::EventRef(link::workflow_event::EventReference {
                event_id: info.completion_event_id,
                event_type: 0,
            }),
        )
        .await?,
    ];
    deliver(
        history,
        &ms.completion_callbacks,
        Delivery {
            result,
            failure,
            canceled,
            links,
        },
    )
    .await?;
    // Every caller has it: describe shows the callbacks succeeded.
    shard
        .transact(key, |txn| {
            txn.ms.completion_callbacks_delivered = true;
            Ok(())
        })
        .await?;
    Ok(())
}

/// A link to an event of the run `key`, for a completion callback to carry.
async fn event_link(
    shard: &ShardContext,
    key: &ExecutionKey,
    reference: link::workflow_event::Reference,
) -> Result<Link, HistoryError> {
    Ok(Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: namespace_name(shard, key).await?,
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
            reference: Some(reference),
        })),
    })
}

/// What a completion callback tells its caller's operation.
struct Delivery {
    result: Option<Payload>,
    failure: Option<Failure>,
    canceled: bool,
    links: Vec<Link>,
}

/// Deliver an outcome to completion callbacks: each one this cluster made completes its
/// caller's operation (a caller that is gone needs nothing). Callbacks to other URLs are not
/// supported yet and are skipped with a warning.
async fn deliver(
    history: &HistoryClient,
    callbacks: &[temper_proto::temporal::api::common::v1::Callback],
    d: Delivery,
) -> Result<(), HistoryError> {
    for cb in callbacks {
        let Some(callback::Variant::Nexus(n)) = &cb.variant else {
            continue;
        };
        if n.url != SYSTEM_CALLBACK_URL {
            tracing::warn!(url = %n.url, "completion callbacks to external URLs are not supported yet");
            continue;
        }
        let Some(token) = n
            .header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(CALLBACK_TOKEN_HEADER))
            .and_then(|(_, v)| decode_callback_token(v))
        else {
            tracing::warn!("a completion callback without a token this cluster made; skipped");
            continue;
        };
        let req = internal::CompleteNexusOperationRequest {
            namespace_id: token.namespace_id,
            execution: Some(WorkflowExecution {
                workflow_id: token.workflow_id,
                run_id: token.run_id,
            }),
            scheduled_event_id: token.scheduled_event_id,
            request_id: token.request_id,
            result: d.result.clone(),
            failure: d.failure.clone(),
            canceled: d.canceled,
            links: d.links.clone(),
        };
        match history
            .complete_nexus_operation(tonic::Request::new(req))
            .await
        {
            Ok(_) => {}
            // The caller is gone (deleted, or closed): nobody to tell.
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(unavailable(format!("nexus callback: {s}"))),
        }
    }
    Ok(())
}

/// Call the completion callbacks of update `update_id` of the run: with the update's outcome
/// once it completed, or with Temporal's "workflow completed before the update" failure when
/// the run closed first; then mark them delivered.
pub(crate) async fn call_update_callbacks(
    shard: &ShardContext,
    history: &HistoryClient,
    key: &ExecutionKey,
    update_id: &str,
) -> Result<(), HistoryError> {
    let ms = shard.snapshot(key).await?;
    let Some(u) = ms.updates.get(update_id) else {
        return Ok(());
    };
    if u.callbacks.is_empty() || u.callbacks_delivered {
        return Ok(());
    }
    let outcome = if u.completed_event_id > 0 {
        let (events, _) = shard
            .events_between(key, u.completed_event_id, Some(u.completed_event_id + 1))
            .await?;
        match events.into_iter().next().and_then(|e| e.attributes) {
            Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a)) => a.outcome,
            _ => None,
        }
    } else if close::is_closed(&ms) {
        Some(temper_workflow::update::failed(
            temper_workflow::update::accepted_update_completed_workflow(),
        ))
    } else {
        // Neither completed nor closed: its task comes when one of them happens.
        return Ok(());
    };
    use temper_proto::temporal::api::update::v1::outcome::Value;
    let (result, failure) = match outcome.and_then(|o| o.value) {
        Some(Value::Success(p)) => (
            Some(p.payloads.into_iter().next().unwrap_or_default()),
            None,
        ),
        Some(Value::Failure(f)) => (None, Some(f)),
        None => (Some(Payload::default()), None),
    };
    let links = vec![
        event_link(
            shard,
            key,
            link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: u.callbacks_request_id.clone(),
                    event_type: EventType::WorkflowExecutionUpdateAccepted as i32,
                },
            ),
        )
        .await?,
    ];
    deliver(
        history,
        &u.callbacks,
        Delivery {
            result,
            failure,
            canceled: false,
            links,
        },
    )
    .await?;
    shard
        .transact(key, |txn| {
            if let Some(u) = txn.ms.updates.get_mut(update_id) {
                u.callbacks_delivered = true;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// CompleteNexusOperation: a handler workflow's callback reached the caller's shard.
pub(crate) async fn complete(
    engine: &HistoryEngine,
    r: internal::CompleteNexusOperationRequest,
) -> Result<(), HistoryError> {
    let ns = temper_types::NamespaceId(r.namespace_id.clone());
    let exec = r.execution.clone().unwrap_or_default();
    let shard = engine.shard(&ns, &exec.workflow_id)?;
    let key = ExecutionKey {
        namespace_id: ns,
        workflow_id: exec.workflow_id,
        run_id: exec.run_id,
    };
    let result = r.result.clone();
    let failure = r.failure.clone();
    shard
        .transact(&key, |txn| {
            nexus::on_completion(
                txn,
                r.scheduled_event_id,
                &r.request_id,
                result.clone(),
                failure.clone(),
                r.canceled,
            );
            Ok(())
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_tokens_round_trip_in_temporals_envelope() {
        let t = pb::NexusCallbackToken {
            namespace_id: "ns".into(),
            workflow_id: "wf".into(),
            run_id: "run".into(),
            scheduled_event_id: 5,
            request_id: "req".into(),
        };
        let text = encode_callback_token(&t);
        assert!(text.starts_with("{\"v\":1,\"d\":\""), "{text}");
        assert_eq!(decode_callback_token(&text), Some(t));
        assert_eq!(decode_callback_token("{\"v\":2,\"d\":\"\"}"), None);
        assert_eq!(decode_callback_token("garbage"), None);
    }

    #[test]
    fn handler_errors_are_retried_by_type_unless_they_say() {
        let e = |t: &str| HandlerError {
            error_type: t.into(),
            ..Default::default()
        };
        assert!(matches!(
            handler_error_outcome(&e("UNAVAILABLE")),
            StartOutcome::Retry(_)
        ));
        assert!(matches!(
            handler_error_outcome(&e("BAD_REQUEST")),
            StartOutcome::Failed {
                canceled: false,
                ..
            }
        ));
    }

    #[test]
    fn workflow_links_are_read_from_temporals_urls() {
        let l = temper_proto::temporal::api::nexus::v1::Link {
            url: "temporal:///namespaces/default/workflows/wf%201/run-1/history?referenceType=EventReference&eventID=1&eventType=WorkflowExecutionStarted".into(),
            r#type: "temporal.api.common.v1.Link.WorkflowEvent".into(),
        };
        let Some(Link {
            variant: Some(link::Variant::WorkflowEvent(w)),
        }) = temporal_link(&l)
        else {
            panic!("a workflow event link");
        };
        assert_eq!(
            (
                w.namespace.as_str(),
                w.workflow_id.as_str(),
                w.run_id.as_str()
            ),
            ("default", "wf 1", "run-1")
        );
        assert_eq!(
            w.reference,
            Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: 1,
                    event_type: EventType::WorkflowExecutionStarted as i32,
                }
            ))
        );
    }

    #[test]
    fn request_id_and_workflow_links_are_read_too() {
        let l = temper_proto::temporal::api::nexus::v1::Link {
            url: "temporal:///namespaces/default/workflows/wf/run-1/history?referenceType=RequestIdReference&requestID=req-1&eventType=EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED".into(),
            r#type: "temporal.api.common.v1.Link.WorkflowEvent".into(),
        };
        let Some(Link {
            variant: Some(link::Variant::WorkflowEvent(w)),
        }) = temporal_link(&l)
        else {
            panic!("a workflow event link");
        };
        assert_eq!(
            w.reference,
            Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: "req-1".into(),
                    event_type: EventType::WorkflowExecutionSignaled as i32,
                }
            ))
        );
        let l = temper_proto::temporal::api::nexus::v1::Link {
            url: "temporal:///namespaces/default/workflows/wf/run-1?reason=a+b".into(),
            r#type: "temporal.api.common.v1.Link.Workflow".into(),
        };
        assert_eq!(
            temporal_link(&l).and_then(|l| l.variant),
            Some(link::Variant::Workflow(link::Workflow {
                namespace: "default".into(),
                workflow_id: "wf".into(),
                run_id: "run-1".into(),
                reason: "a b".into(),
            }))
        );
        // A kind of link Temporal does not keep on the caller's event.
        let l = temper_proto::temporal::api::nexus::v1::Link {
            url: "temporal:///namespaces/default/nexus-operations/op/run-1/details".into(),
            r#type: "temporal.api.common.v1.Link.NexusOperation".into(),
        };
        assert_eq!(temporal_link(&l), None);
    }
}
