//! The Nexus half of the `nexus` scenario, without I/O: the names a run uses (endpoint, Nexus
//! task queue, service, operations, handler workflow ids), the caller's input, and what the
//! generator's Nexus worker answers each request with: a synchronous result, or a handler
//! workflow to start (its completion callback made from the request) and the asynchronous
//! answer that names it.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use temporalio_protos::temporal::api::common::v1::{
    Callback, Link, Payload, WorkflowType, callback, link,
};
use temporalio_protos::temporal::api::enums::v1::EventType;
use temporalio_protos::temporal::api::nexus::v1::{
    self as nexus, Request, Response, StartOperationRequest, StartOperationResponse, request,
    response, start_operation_response,
};
use temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use super::commands::normal_queue;
use super::workflows::WorkflowKind;

/// The Nexus service the caller calls.
pub const SERVICE: &str = "loadtest";
/// The synchronous operation: answered at once with its input.
pub const SYNC_OPERATION: &str = "echo";
/// The asynchronous operation: starts a handler workflow, which completes it on closing.
pub const ASYNC_OPERATION: &str = "start-workflow";
/// How long the caller waits for each operation (the server retries the start request
/// meanwhile); past it the operation times out and the caller fails.
pub const SCHEDULE_TO_CLOSE: Duration = Duration::from_secs(60);
/// The callback header the handler adds for the server: which operation the completion is
/// for, should it arrive before the asynchronous answer does.
pub const OPERATION_TOKEN_HEADER: &str = "nexus-operation-token";
/// Longest endpoint name the servers take.
const ENDPOINT_NAME_LIMIT: usize = 200;
/// Suffix of the handler workflow's id after its caller's.
const HANDLER_SUFFIX: &str = "-handler";
/// What a URL path segment keeps as it is (RFC 3986's unreserved characters).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The Nexus task queue of a run whose workflows run on `task_queue`.
pub fn task_queue(task_queue: &str) -> String {
    format!("{task_queue}-nexus")
}

/// The endpoint the callers in `namespace` call: a pure function of the workflow task queue
/// and namespace, so a caller finds it from its own history. Servers take names that start
/// with a letter, hold letters, digits and `-`, and end with a letter or digit.
pub fn endpoint_name(task_queue: &str, namespace: &str) -> String {
    let raw = format!("{task_queue}-{namespace}-nexus");
    let mut name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "lt-");
    }
    if name.len() > ENDPOINT_NAME_LIMIT {
        // Keep the end ("-nexus") and say the name was cut with a hash of the whole.
        let hash = raw.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let tail = format!("-{hash:016x}-nexus");
        name.truncate(ENDPOINT_NAME_LIMIT - tail.len());
        name.push_str(&tail);
    }
    name
}

/// The id of the workflow that backs caller `caller`'s asynchronous operation.
pub fn handler_workflow_id(caller: &str) -> String {
    format!("{caller}{HANDLER_SUFFIX}")
}

/// The caller of handler workflow `handler`, if the id is one of ours.
pub fn caller_of_handler(handler: &str) -> Option<&str> {
    handler
        .strip_suffix(HANDLER_SUFFIX)
        .filter(|c| !c.is_empty())
}

/// What the caller passes to both operations: its own workflow id, as a JSON string. The
/// echo returns it; the workflow-backed operation names its handler workflow after it.
pub fn operation_input(caller: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(caller).expect("a string serializes"),
        ..Default::default()
    }
}

fn caller_from_input(p: Option<&Payload>) -> Result<String, String> {
    let p = p.ok_or("the request has no input")?;
    match serde_json::from_slice::<String>(&p.data) {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => Err("the input is not a caller's workflow id (a JSON string)".to_string()),
    }
}

/// A handler error for the server (Nexus's predefined types: `BAD_REQUEST`, `NOT_FOUND`,
/// `INTERNAL`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFailure {
    pub error_type: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl HandlerFailure {
    fn bad_request(message: String) -> Self {
        Self {
            error_type: "BAD_REQUEST",
            message,
            retryable: false,
        }
    }
}

/// What to do with one Nexus task.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Answer at once: the synchronous operation's result, or a cancel request's
    /// acknowledgement.
    Respond(Box<Response>),
    /// Start this handler workflow, then answer with [`async_started`].
    StartWorkflow(Box<StartWorkflowExecutionRequest>),
    /// Fail the task with a handler error.
    Fail(HandlerFailure),
}

/// The answer to a Nexus request that reached the worker of namespace `namespace`, whose
/// handler workflows run on `workflow_task_queue`.
pub fn answer(
    namespace: &str,
    workflow_task_queue: &str,
    identity: &str,
    request: Option<&Request>,
) -> Answer {
    match request.and_then(|r| r.variant.as_ref()) {
        Some(request::Variant::StartOperation(start)) => {
            start_answer(namespace, workflow_task_queue, identity, start)
        }
        // The callers never cancel; should a server ask anyway, there is nothing to stop
        // (the handler workflow completes in its first task).
        Some(request::Variant::CancelOperation(_)) => Answer::Respond(Box::new(Response {
            variant: Some(response::Variant::CancelOperation(
                nexus::CancelOperationResponse {},
            )),
        })),
        None => Answer::Fail(HandlerFailure::bad_request(
            "the Nexus task carries no request".to_string(),
        )),
    }
}

fn start_answer(
    namespace: &str,
    workflow_task_queue: &str,
    identity: &str,
    start: &StartOperationRequest,
) -> Answer {
    if start.service != SERVICE {
        return Answer::Fail(HandlerFailure {
            error_type: "NOT_FOUND",
            message: format!("no service {:?} here (only {SERVICE:?})", start.service),
            retryable: false,
        });
    }
    let caller = match caller_from_input(start.payload.as_ref()) {
        Ok(c) => c,
        Err(e) => return Answer::Fail(HandlerFailure::bad_request(e)),
    };
    match start.operation.as_str() {
        SYNC_OPERATION => Answer::Respond(Box::new(sync_result(start.payload.clone()))),
        ASYNC_OPERATION => {
            let workflow_id = handler_workflow_id(&caller);
            if start.callback.is_empty() {
                return Answer::Fail(HandlerFailure::bad_request(
                    "the request has no callback URL".to_string(),
                ));
            }
            let mut header = start.callback_header.clone();
            header.insert(
                OPERATION_TOKEN_HEADER.to_string(),
                operation_token(namespace, &workflow_id),
            );
            let links: Vec<Link> = start.links.iter().filter_map(temporal_link).collect();
            Answer::StartWorkflow(Box::new(StartWorkflowExecutionRequest {
                namespace: namespace.to_string(),
                workflow_id,
                workflow_type: Some(WorkflowType {
                    name: WorkflowKind::NexusHandler.type_name().to_string(),
                }),
                task_queue: Some(normal_queue(workflow_task_queue)),
                identity: identity.to_string(),
                // A start request the server sends again carries the same id, and so
                // starts the same run.
                request_id: start.request_id.clone(),
                completion_callbacks: vec![Callback {
                    links: links.clone(),
                    variant: Some(callback::Variant::Nexus(callback::Nexus {
                        url: start.callback.clone(),
                        header,
                    })),
                }],
                links,
                ..Default::default()
            }))
        }
        other => Answer::Fail(HandlerFailure {
            error_type: "NOT_FOUND",
            message: format!("no operation {other:?} in service {SERVICE:?}"),
            retryable: false,
        }),
    }
}

fn sync_result(payload: Option<Payload>) -> Response {
    start_response(start_operation_response::Variant::SyncSuccess(
        start_operation_response::Sync {
            payload,
            links: Vec::new(),
        },
    ))
}

fn start_response(v: start_operation_response::Variant) -> Response {
    Response {
        variant: Some(response::Variant::StartOperation(StartOperationResponse {
            variant: Some(v),
        })),
    }
}

/// The answer once handler workflow `started` is running (run `run_id`): its operation token,
/// and a link to it (the server's, from the start response, or one to the started event by
/// request id).
pub fn async_started(
    started: &StartWorkflowExecutionRequest,
    run_id: &str,
    response_link: Option<&Link>,
) -> Response {
    let event = match response_link.and_then(|l| l.variant.as_ref()) {
        Some(link::Variant::WorkflowEvent(e)) => e.clone(),
        _ => link::WorkflowEvent {
            namespace: started.namespace.clone(),
            workflow_id: started.workflow_id.clone(),
            run_id: run_id.to_string(),
            reference: Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: started.request_id.clone(),
                    event_type: EventType::WorkflowExecutionStarted as i32,
                },
            )),
        },
    };
    start_response(start_operation_response::Variant::AsyncSuccess(
        #[allow(deprecated)]
        start_operation_response::Async {
            operation_id: String::new(),
            links: vec![nexus_link(&event)],
            operation_token: operation_token(&started.namespace, &started.workflow_id),
        },
    ))
}

/// A workflow-backed operation's token, in the SDKs' form: unpadded base64url of
/// `{"t":1,"ns":...,"wid":...}` (type 1: a workflow).
pub fn operation_token(namespace: &str, workflow_id: &str) -> String {
    #[derive(serde::Serialize)]
    struct Token<'a> {
        t: u8,
        ns: &'a str,
        wid: &'a str,
    }
    let json = serde_json::to_vec(&Token {
        t: 1,
        ns: namespace,
        wid: workflow_id,
    })
    .expect("a plain struct serializes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The link type names of Nexus links (the Temporal message's full name).
const WORKFLOW_EVENT_LINK_TYPE: &str = "temporal.api.common.v1.Link.WorkflowEvent";

/// A Nexus link from the caller as a Temporal link, for the handler workflow's start and
/// callback: only workflow event links
/// (`temporal:///namespaces/<ns>/workflows/<id>/<run>/history?...`); others are left out.
pub fn temporal_link(l: &nexus::Link) -> Option<Link> {
    if l.r#type != WORKFLOW_EVENT_LINK_TYPE {
        return None;
    }
    let rest = l.url.strip_prefix("temporal:///namespaces/")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let [namespace, "workflows", workflow_id, run_id, "history"] = parts.as_slice() else {
        return None;
    };
    let params: HashMap<&str, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, decode(v)))
        .collect();
    let event_type = params
        .get("eventType")
        .and_then(|t| event_type_from_pascal(t))
        .map_or(EventType::Unspecified as i32, |t| t as i32);
    let reference = match params.get("referenceType").map(String::as_str) {
        Some("EventReference") => {
            link::workflow_event::Reference::EventRef(link::workflow_event::EventReference {
                event_id: params.get("eventID")?.parse().ok()?,
                event_type,
            })
        }
        Some("RequestIdReference") => link::workflow_event::Reference::RequestIdRef(
            link::workflow_event::RequestIdReference {
                request_id: params.get("requestID").cloned().unwrap_or_default(),
                event_type,
            },
        ),
        _ => return None,
    };
    Some(Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: decode(namespace),
            workflow_id: decode(workflow_id),
            run_id: decode(run_id),
            reference: Some(reference),
        })),
    })
}

/// A workflow event link as a Nexus link (the URL form the SDKs and servers use).
pub fn nexus_link(e: &link::WorkflowEvent) -> nexus::Link {
    let seg = |s: &str| utf8_percent_encode(s, PATH_SEGMENT).to_string();
    let query = match &e.reference {
        Some(link::workflow_event::Reference::EventRef(r)) => format!(
            "eventID={}&eventType={}&referenceType=EventReference",
            r.event_id,
            event_type_pascal(r.event_type)
        ),
        Some(link::workflow_event::Reference::RequestIdRef(r)) => format!(
            "referenceType=RequestIdReference&requestID={}&eventType={}",
            seg(&r.request_id),
            event_type_pascal(r.event_type)
        ),
        None => String::new(),
    };
    let mut url = format!(
        "temporal:///namespaces/{}/workflows/{}/{}/history",
        seg(&e.namespace),
        seg(&e.workflow_id),
        seg(&e.run_id)
    );
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    nexus::Link {
        url,
        r#type: WORKFLOW_EVENT_LINK_TYPE.to_string(),
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `EVENT_TYPE_WORKFLOW_EXECUTION_STARTED` -> `WorkflowExecutionStarted`.
fn event_type_pascal(t: i32) -> String {
    let name = EventType::try_from(t).unwrap_or(EventType::Unspecified);
    let upper = name.as_str_name();
    upper
        .strip_prefix("EVENT_TYPE_")
        .unwrap_or(upper)
        .split('_')
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map_or_else(String::new, |first| {
                first.to_string() + &cs.as_str().to_ascii_lowercase()
            })
        })
        .collect()
}

/// `WorkflowExecutionStarted` -> the event type.
fn event_type_from_pascal(pascal: &str) -> Option<EventType> {
    let mut upper = String::from("EVENT_TYPE_");
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            upper.push('_');
        }
        upper.push(c.to_ascii_uppercase());
    }
    EventType::from_str_name(&upper)
}
