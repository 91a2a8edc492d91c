//! The Nexus worker's answers, without a server: for each kind of request, what it answers
//! or which workflow it starts; the names, tokens and links it uses.

use base64::Engine as _;
use temporalio_protos::temporal::api::common::v1::{Link, Payload, callback, link};
use temporalio_protos::temporal::api::enums::v1::EventType;
use temporalio_protos::temporal::api::nexus::v1::{
    self as pb, CancelOperationRequest, Request, StartOperationRequest, request, response,
    start_operation_response,
};

use super::WorkflowKind;
use super::nexus::*;

const CALLER_LINK: &str = "temporal:///namespaces/default/workflows/wf%201/run-1/history?referenceType=EventReference&eventID=5&eventType=NexusOperationScheduled";

fn start(operation: &str, input: Option<Payload>) -> Request {
    Request {
        variant: Some(request::Variant::StartOperation(StartOperationRequest {
            service: SERVICE.to_string(),
            operation: operation.to_string(),
            request_id: "req-1".to_string(),
            callback: "temporal://system".to_string(),
            payload: input,
            callback_header: [("temporal-callback-token".to_string(), "cb".to_string())].into(),
            links: vec![
                pb::Link {
                    url: CALLER_LINK.to_string(),
                    r#type: "temporal.api.common.v1.Link.WorkflowEvent".to_string(),
                },
                pb::Link {
                    url: "https://example.invalid/other".to_string(),
                    r#type: "something.Else".to_string(),
                },
            ],
        })),
        ..Default::default()
    }
}

fn failure(a: Answer) -> HandlerFailure {
    match a {
        Answer::Fail(f) => f,
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn the_sync_operation_echoes_its_input() {
    let input = operation_input("wf-1");
    let a = answer(
        "default",
        "tq",
        "me",
        Some(&start(SYNC_OPERATION, Some(input.clone()))),
    );
    let Answer::Respond(r) = a else {
        panic!("{a:?}")
    };
    match r.variant {
        Some(response::Variant::StartOperation(s)) => match s.variant {
            Some(start_operation_response::Variant::SyncSuccess(ok)) => {
                assert_eq!(ok.payload, Some(input));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_async_operation_starts_a_handler_workflow_with_the_callers_callback() {
    let a = answer(
        "default",
        "tq",
        "me",
        Some(&start(ASYNC_OPERATION, Some(operation_input("wf-1")))),
    );
    let Answer::StartWorkflow(s) = a else {
        panic!("{a:?}")
    };
    assert_eq!(s.namespace, "default");
    assert_eq!(s.workflow_id, "wf-1-handler");
    assert_eq!(s.workflow_id, handler_workflow_id("wf-1"));
    assert_eq!(
        s.workflow_type.as_ref().map(|t| t.name.as_str()),
        Some(WorkflowKind::NexusHandler.type_name())
    );
    assert_eq!(s.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
    assert_eq!(s.request_id, "req-1");
    assert_eq!(s.identity, "me");
    let caller = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".to_string(),
            workflow_id: "wf 1".to_string(),
            run_id: "run-1".to_string(),
            reference: Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: 5,
                    event_type: EventType::NexusOperationScheduled as i32,
                },
            )),
        })),
    };
    // The caller's workflow event link, not the foreign one.
    assert_eq!(s.links, vec![caller.clone()]);
    assert_eq!(s.completion_callbacks.len(), 1);
    let cb = &s.completion_callbacks[0];
    assert_eq!(cb.links, vec![caller]);
    match &cb.variant {
        Some(callback::Variant::Nexus(n)) => {
            assert_eq!(n.url, "temporal://system");
            assert_eq!(
                n.header.get("temporal-callback-token").map(String::as_str),
                Some("cb")
            );
            assert_eq!(
                n.header.get(OPERATION_TOKEN_HEADER),
                Some(&operation_token("default", "wf-1-handler"))
            );
        }
        other => panic!("{other:?}"),
    }

    // Once started: the asynchronous answer names the workflow and links to its start.
    let r = async_started(&s, "run-9", None);
    let Some(response::Variant::StartOperation(so)) = r.variant else {
        panic!("{r:?}")
    };
    let Some(start_operation_response::Variant::AsyncSuccess(ok)) = so.variant else {
        panic!("{so:?}")
    };
    assert_eq!(
        ok.operation_token,
        operation_token("default", "wf-1-handler")
    );
    assert_eq!(ok.links.len(), 1);
    assert_eq!(
        ok.links[0].url,
        "temporal:///namespaces/default/workflows/wf-1-handler/run-9/history?referenceType=RequestIdReference&requestID=req-1&eventType=WorkflowExecutionStarted"
    );
    // A link the server returned wins.
    let server_link = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".to_string(),
            workflow_id: "wf-1-handler".to_string(),
            run_id: "run-9".to_string(),
            reference: Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: 1,
                    event_type: EventType::WorkflowExecutionStarted as i32,
                },
            )),
        })),
    };
    let r = async_started(&s, "run-9", Some(&server_link));
    let Some(response::Variant::StartOperation(so)) = r.variant else {
        panic!("{r:?}")
    };
    let Some(start_operation_response::Variant::AsyncSuccess(ok)) = so.variant else {
        panic!("{so:?}")
    };
    assert!(
        ok.links[0].url.ends_with(
            "?eventID=1&eventType=WorkflowExecutionStarted&referenceType=EventReference"
        ),
        "{:?}",
        ok.links
    );
}

#[test]
fn bad_requests_are_handler_errors_not_panics() {
    let f = failure(answer("default", "tq", "me", None));
    assert_eq!((f.error_type, f.retryable), ("BAD_REQUEST", false));
    let f = failure(answer("default", "tq", "me", Some(&Request::default())));
    assert_eq!(f.error_type, "BAD_REQUEST");
    let f = failure(answer(
        "default",
        "tq",
        "me",
        Some(&start(SYNC_OPERATION, None)),
    ));
    assert!(f.message.contains("no input"), "{f:?}");
    let garbage = Payload {
        data: b"{not json".to_vec(),
        ..Default::default()
    };
    let f = failure(answer(
        "default",
        "tq",
        "me",
        Some(&start(ASYNC_OPERATION, Some(garbage))),
    ));
    assert_eq!(f.error_type, "BAD_REQUEST");
    let f = failure(answer(
        "default",
        "tq",
        "me",
        Some(&start("launch-rockets", Some(operation_input("wf-1")))),
    ));
    assert_eq!((f.error_type, f.retryable), ("NOT_FOUND", false));
    let mut other_service = start(SYNC_OPERATION, Some(operation_input("wf-1")));
    if let Some(request::Variant::StartOperation(s)) = &mut other_service.variant {
        s.service = "billing".to_string();
    }
    let f = failure(answer("default", "tq", "me", Some(&other_service)));
    assert!(f.message.contains("billing"), "{f:?}");
    let mut no_callback = start(ASYNC_OPERATION, Some(operation_input("wf-1")));
    if let Some(request::Variant::StartOperation(s)) = &mut no_callback.variant {
        s.callback.clear();
    }
    let f = failure(answer("default", "tq", "me", Some(&no_callback)));
    assert!(f.message.contains("callback"), "{f:?}");
}

#[test]
fn a_cancel_request_is_acknowledged() {
    let cancel = Request {
        variant: Some(request::Variant::CancelOperation(CancelOperationRequest {
            service: SERVICE.to_string(),
            operation: ASYNC_OPERATION.to_string(),
            operation_token: operation_token("default", "wf-1-handler"),
            ..Default::default()
        })),
        ..Default::default()
    };
    match answer("default", "tq", "me", Some(&cancel)) {
        Answer::Respond(r) => assert!(matches!(
            r.variant,
            Some(response::Variant::CancelOperation(_))
        )),
        other => panic!("{other:?}"),
    }
}

#[test]
fn operation_tokens_are_the_sdks_workflow_tokens() {
    let t = operation_token("default", "wf-1-handler");
    assert!(!t.contains('='), "unpadded: {t}");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&t)
        .expect("base64url");
    assert_eq!(
        String::from_utf8_lossy(&json),
        r#"{"t":1,"ns":"default","wid":"wf-1-handler"}"#
    );
    let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"t": 1, "ns": "default", "wid": "wf-1-handler"})
    );
}

#[test]
fn links_survive_the_round_trip_through_their_url_form() {
    for reference in [
        link::workflow_event::Reference::EventRef(link::workflow_event::EventReference {
            event_id: 42,
            event_type: EventType::NexusOperationScheduled as i32,
        }),
        link::workflow_event::Reference::RequestIdRef(link::workflow_event::RequestIdReference {
            request_id: "r/1 &x".to_string(),
            event_type: EventType::WorkflowExecutionStarted as i32,
        }),
    ] {
        let e = link::WorkflowEvent {
            namespace: "my ns".to_string(),
            workflow_id: "a/b?c".to_string(),
            run_id: "run-1".to_string(),
            reference: Some(reference),
        };
        let url = nexus_link(&e);
        assert_eq!(
            temporal_link(&url),
            Some(Link {
                variant: Some(link::Variant::WorkflowEvent(e))
            }),
            "{url:?}"
        );
    }
    for bad in [
        "temporal:///namespaces/default/workflows/wf/run",
        "temporal:///namespaces/default/activities/a/run/details",
        "temporal:///namespaces/default/workflows/wf/run/history?referenceType=EventReference",
        "temporal:///namespaces/default/workflows/wf/run/history?referenceType=EventReference&eventID=x",
        "temporal:///namespaces/default/workflows/wf/run/history?referenceType=Nope",
        "http://elsewhere/",
        "",
    ] {
        let l = pb::Link {
            url: bad.to_string(),
            r#type: "temporal.api.common.v1.Link.WorkflowEvent".to_string(),
        };
        assert_eq!(temporal_link(&l), None, "{bad}");
    }
}

fn valid_endpoint_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 200
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

#[test]
fn endpoint_names_are_valid_for_any_task_queue_and_namespace() {
    assert_eq!(
        endpoint_name("loadtest-1a2b3c4d", "default"),
        "loadtest-1a2b3c4d-default-nexus"
    );
    let long = "q".repeat(500);
    for (tq, ns) in [
        ("loadtest-1a2b3c4d", "default"),
        ("1-starts-with-a-digit", "ns"),
        ("my_queue.v2 ünïcode", "team/ns"),
        (long.as_str(), "ns"),
        ("", ""),
    ] {
        let n = endpoint_name(tq, ns);
        assert!(valid_endpoint_name(&n), "{tq:?} {ns:?} -> {n:?}");
    }
    // Long names that differ only past the cut still differ.
    let a = endpoint_name(&format!("{long}a"), "ns");
    let b = endpoint_name(&format!("{long}b"), "ns");
    assert_ne!(a, b);
    assert_eq!(task_queue("loadtest-1a2b3c4d"), "loadtest-1a2b3c4d-nexus");
}

#[test]
fn handler_workflow_ids_name_their_caller() {
    assert_eq!(
        caller_of_handler(&handler_workflow_id("loadtest-ab-7")),
        Some("loadtest-ab-7")
    );
    assert_eq!(caller_of_handler("loadtest-ab-7"), None);
    assert_eq!(caller_of_handler("-handler"), None);
}
