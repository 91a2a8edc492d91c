//! System Nexus through the state machine: the ScheduleNexusOperation command on the system
//! endpoint (accepted without a registered endpoint, or failing the workflow task with
//! Temporal's messages), the request the history service sends, and the synchronous answer.

use std::collections::HashMap;

use temper_proto::temporal::api::command::v1::{Command, command};
use temper_proto::temporal::api::common::v1::{Payloads, SearchAttributes, WorkflowType, link};
use temper_proto::temporal::api::enums::v1::{
    EventType, WorkflowIdConflictPolicy, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::history::v1::history_event::Attributes;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;

use super::*;
use crate::commands::complete_workflow_task;
use crate::completion::{Completion, Outcome};
use crate::nexus::{StartOutcome, on_start};
use crate::pb;
use crate::tests::Harness;

fn sws() -> SignalWithStartWorkflowExecutionRequest {
    SignalWithStartWorkflowExecutionRequest {
        workflow_id: "target".into(),
        workflow_type: Some(WorkflowType { name: "T".into() }),
        task_queue: Some(TaskQueue {
            name: "tq".into(),
            ..Default::default()
        }),
        signal_name: "sig".into(),
        signal_input: Some(Payloads::default()),
        ..Default::default()
    }
}

fn binary(req: &SignalWithStartWorkflowExecutionRequest) -> Payload {
    Payload {
        metadata: HashMap::from([
            ("encoding".to_owned(), b"binary/protobuf".to_vec()),
            (
                "messageType".to_owned(),
                b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest".to_vec(),
            ),
        ]),
        data: req.encode_to_vec(),
        ..Default::default()
    }
}

fn attrs(input: Payload) -> ScheduleNexusOperationCommandAttributes {
    ScheduleNexusOperationCommandAttributes {
        endpoint: ENDPOINT.into(),
        service: WORKFLOW_SERVICE.into(),
        operation: SIGNAL_WITH_START.into(),
        input: Some(input),
        ..Default::default()
    }
}

/// Complete a workflow task with one ScheduleNexusOperation command; no endpoint is
/// registered.
fn complete(
    h: &mut Harness,
    a: ScheduleNexusOperationCommandAttributes,
    names: Option<&[String]>,
) -> Outcome {
    let wt = h.start_wt();
    let commands = vec![Command {
        attributes: Some(command::Attributes::ScheduleNexusOperationCommandAttributes(a)),
        ..Default::default()
    }];
    h.apply(|t| {
        complete_workflow_task(
            t,
            &wt,
            Completion {
                worker: Default::default(),
                commands: &commands,
                identity: "w",
                binary_checksum: "",
                search_attribute_names: names,
                sticky: None,
                force_create_new_workflow_task: false,
                sdk_metadata: None,
                metering_metadata: None,
                messages: &[],
                discard_speculative_with_events: false,
            },
        )
    })
}

fn rejection(a: ScheduleNexusOperationCommandAttributes) -> String {
    let mut h = Harness::start();
    match complete(&mut h, a, None) {
        Outcome::Rejected(bad) => {
            assert_eq!(
                bad.cause,
                WorkflowTaskFailedCause::BadScheduleNexusOperationAttributes
            );
            assert!(h.ms.nexus_operations.is_empty());
            bad.message
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn the_system_endpoint_needs_no_registration() {
    let mut h = Harness::start();
    let outcome = complete(&mut h, attrs(binary(&sws())), None);
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let (&id, op) =
        h.ms.nexus_operations
            .iter()
            .next()
            .expect("pending operation");
    assert_eq!(
        (op.endpoint.as_str(), op.endpoint_id.as_str()),
        (ENDPOINT, "")
    );
    assert_eq!(h.types().last(), Some(&EventType::NexusOperationScheduled));
    let start = h
        .last
        .transfer
        .iter()
        .find(|t| t.kind == pb::TransferTaskKind::NexusStart as i32)
        .expect("a start request");
    assert_eq!((start.scheduled_event_id, start.attempt), (id, 1));
}

#[test]
fn a_bad_system_operation_fails_the_workflow_task_with_temporals_message() {
    let prefix = "BadScheduleNexusOperationAttributes: ";
    let cases: Vec<(ScheduleNexusOperationCommandAttributes, &str)> = vec![
        (
            ScheduleNexusOperationCommandAttributes {
                nexus_header: HashMap::from([("a".to_owned(), "b".to_owned())]),
                ..attrs(binary(&sws()))
            },
            "ScheduleNexusOperationCommandAttributes.NexusHeader must be empty when using __temporal_system endpoint",
        ),
        (
            ScheduleNexusOperationCommandAttributes {
                service: "Nope".into(),
                ..attrs(binary(&sws()))
            },
            "service \"Nope\" not found",
        ),
        (
            ScheduleNexusOperationCommandAttributes {
                operation: "Nope".into(),
                ..attrs(binary(&sws()))
            },
            "operation \"Nope\" not found",
        ),
        (
            ScheduleNexusOperationCommandAttributes {
                input: None,
                ..attrs(binary(&sws()))
            },
            "Request is empty",
        ),
        (
            attrs(binary(&SignalWithStartWorkflowExecutionRequest {
                namespace: "other".into(),
                ..sws()
            })),
            "Namespace in request \"other\" does not match namespace in context \"\"",
        ),
        (
            attrs(binary(&SignalWithStartWorkflowExecutionRequest {
                request_id: "r1".into(),
                ..sws()
            })),
            "RequestID should not be set on the request",
        ),
        (
            attrs(binary(&SignalWithStartWorkflowExecutionRequest {
                workflow_id_conflict_policy: WorkflowIdConflictPolicy::Fail as i32,
                ..sws()
            })),
            "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation.",
        ),
        (
            attrs(binary(&SignalWithStartWorkflowExecutionRequest {
                signal_name: String::new(),
                ..sws()
            })),
            "signal not set",
        ),
        (
            attrs(Payload {
                data: vec![0xff, 0xff, 0xff],
                ..binary(&sws())
            }),
            "failed to decode input payload: payload item 0: unable to decode: proto: cannot parse invalid wire-format data",
        ),
        (
            attrs(Payload {
                metadata: HashMap::from([("encoding".to_owned(), b"weird/enc".to_vec())]),
                data: vec![1],
                ..Default::default()
            }),
            "failed to decode input payload: payload item 0: encoding weird/enc: payload encoding is not supported",
        ),
    ];
    for (a, want) in cases {
        assert_eq!(rejection(a), format!("{prefix}{want}"));
    }
}

#[test]
fn search_attributes_must_be_ones_the_namespace_has() {
    let names = vec!["CustomKeywordField".to_owned()];
    let with = |name: &str| {
        attrs(binary(&SignalWithStartWorkflowExecutionRequest {
            search_attributes: Some(SearchAttributes {
                indexed_fields: HashMap::from([(name.to_owned(), Payload::default())]),
            }),
            ..sws()
        }))
    };
    let mut h = Harness::start();
    match complete(&mut h, with("Nope"), Some(&names)) {
        Outcome::Rejected(bad) => assert_eq!(
            bad.message,
            "BadScheduleNexusOperationAttributes: Namespace  has no mapping defined for search attribute Nope"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let mut h = Harness::start();
    let outcome = complete(&mut h, with("CustomKeywordField"), Some(&names));
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
}

#[test]
fn the_input_may_be_json() {
    let json = Payload {
        metadata: HashMap::from([("encoding".to_owned(), b"json/protobuf".to_vec())]),
        data: br#"{"workflowId":"target","workflowType":{"name":"T"},"taskQueue":{"name":"tq"},"signalName":"sig","workflowIdReusePolicy":"WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE","workflowRunTimeout":"5s"}"#.to_vec(),
        ..Default::default()
    };
    let req = request(
        WORKFLOW_SERVICE,
        SIGNAL_WITH_START,
        Some(&json),
        "default",
        "req-1",
        Vec::new(),
        &Limits::default(),
    )
    .expect("a valid request");
    assert_eq!(req.workflow_id, "target");
    assert_eq!(req.signal_name, "sig");
    assert_eq!(req.workflow_id_reuse_policy, 3);
    assert_eq!(req.workflow_run_timeout.map(|d| d.seconds), Some(5));
    let bad = Payload {
        data: b"{nope".to_vec(),
        ..json
    };
    let err = request(
        WORKFLOW_SERVICE,
        SIGNAL_WITH_START,
        Some(&bad),
        "default",
        "req-1",
        Vec::new(),
        &Limits::default(),
    )
    .expect_err("not JSON");
    assert!(
        err.0.starts_with(
            "failed to decode input payload: payload item 0: unable to decode: proto: "
        ),
        "{err}"
    );
}

#[test]
fn the_request_sent_is_in_the_callers_namespace_with_the_operations_request_id_and_link() {
    let caller = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".into(),
            workflow_id: "caller".into(),
            run_id: "run".into(),
            reference: Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: 5,
                    event_type: EventType::NexusOperationScheduled as i32,
                },
            )),
        })),
    };
    let req = request(
        WORKFLOW_SERVICE,
        SIGNAL_WITH_START,
        Some(&binary(&sws())),
        "default",
        "req-1",
        vec![caller.clone()],
        &Limits::default(),
    )
    .expect("a valid request");
    assert_eq!(
        (req.namespace.as_str(), req.request_id.as_str()),
        ("default", "req-1")
    );
    assert_eq!(req.links, vec![caller]);
}

#[test]
fn the_answer_completes_the_operation_with_the_signal_link() {
    let mut h = Harness::start();
    complete(&mut h, attrs(binary(&sws())), None);
    let id = *h
        .ms
        .nexus_operations
        .keys()
        .next()
        .expect("pending operation");
    let signal_link = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".into(),
            workflow_id: "target".into(),
            run_id: "target-run".into(),
            reference: Some(link::workflow_event::Reference::RequestIdRef(
                link::workflow_event::RequestIdReference {
                    request_id: "req-1".into(),
                    event_type: EventType::WorkflowExecutionSignaled as i32,
                },
            )),
        })),
    };
    let resp = SignalWithStartWorkflowExecutionResponse {
        run_id: "target-run".into(),
        started: true,
        signal_link: Some(signal_link.clone()),
        ..Default::default()
    };
    let payload = response_payload(&resp);
    assert_eq!(
        payload.metadata.get(PAYLOAD_MARKER).map(Vec::as_slice),
        Some(&b"true"[..])
    );
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Completed {
                result: Some(payload.clone()),
                links: vec![signal_link.clone()],
            },
        )
    });
    assert!(h.ms.nexus_operations.is_empty());
    let completed = h
        .last
        .events
        .iter()
        .find(|e| {
            matches!(
                e.attributes,
                Some(Attributes::NexusOperationCompletedEventAttributes(_))
            )
        })
        .expect("the completed event");
    assert_eq!(completed.links, vec![signal_link]);
    let Some(Attributes::NexusOperationCompletedEventAttributes(a)) = &completed.attributes else {
        unreachable!("matched above");
    };
    let result = a.result.as_ref().expect("a result");
    assert_eq!(
        SignalWithStartWorkflowExecutionResponse::decode(result.data.as_slice())
            .expect("the response"),
        resp
    );
}
