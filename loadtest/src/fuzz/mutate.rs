//! "Mutated valid" requests: a request a client could really send (a start, a signal, a
//! workflow task completion with a real task token...), with one field somewhere inside it
//! replaced by a random value or cleared; and malformed bytes: an encoded request
//! truncated, bit-flipped or padded.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use rand::Rng;
use rand::seq::IndexedRandom;
use temporalio_protos::temporal::api::common::v1::{
    Payload, Payloads, WorkflowExecution, WorkflowType,
};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::query::v1::WorkflowQuery;
use temporalio_protos::temporal::api::schedule::v1::{
    IntervalSpec, Range, Schedule, ScheduleAction, ScheduleSpec, StructuredCalendarSpec,
    schedule_action::Action,
};
use temporalio_protos::temporal::api::update::v1::{Input, Request as UpdateRequest};
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DescribeWorkflowExecutionRequest, GetWorkflowExecutionHistoryRequest,
    ListScheduleMatchingTimesRequest, ListWorkflowExecutionsRequest, QueryWorkflowRequest,
    RespondActivityTaskFailedRequest, RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest, SignalWithStartWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest, UpdateWorkflowExecutionRequest,
};

use super::generate::Gen;
use crate::scenario::{normal_queue, proto_duration, schedule_activity, start_timer};

/// Methods with a valid request to start from.
#[cfg(test)]
const VALID_METHODS: &[&str] = &[
    "StartWorkflowExecution",
    "SignalWorkflowExecution",
    "SignalWithStartWorkflowExecution",
    "RespondWorkflowTaskCompleted",
    "RespondWorkflowTaskFailed",
    "RespondActivityTaskFailed",
    "QueryWorkflow",
    "UpdateWorkflowExecution",
    "DescribeWorkflowExecution",
    "GetWorkflowExecutionHistory",
    "ListWorkflowExecutions",
    "CreateSchedule",
    "ListScheduleMatchingTimes",
];

fn json(s: &str) -> Payloads {
    Payloads {
        payloads: vec![Payload {
            metadata: HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]),
            data: format!("\"{s}\"").into_bytes(),
            external_payloads: Vec::new(),
        }],
    }
}

/// A valid encoded request for `method` (one of [`VALID_METHODS`]).
pub fn valid(g: &mut Gen<'_>, method: &str) -> Option<Vec<u8>> {
    let ns = "default".to_string();
    let known = g.known;
    let wf = known
        .workflow_ids
        .choose(g.rng)
        .cloned()
        .unwrap_or_else(|| "fuzz-none".into());
    let execution = Some(WorkflowExecution {
        workflow_id: wf.clone(),
        run_id: String::new(),
    });
    let token = known.task_tokens.choose(g.rng).cloned().unwrap_or_default();
    let tq = known.task_queue.clone();
    let fresh_id = format!("fuzz-valid-{}", g.rng.random::<u32>());
    let request_id = format!("fuzz-{}", g.rng.random::<u64>());
    let failure = Failure {
        message: "fuzz".into(),
        cause: Some(Box::new(Failure {
            message: "inner".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let bytes = match method {
        "StartWorkflowExecution" => StartWorkflowExecutionRequest {
            namespace: ns,
            workflow_id: fresh_id,
            workflow_type: Some(WorkflowType {
                name: "fuzz".into(),
            }),
            task_queue: Some(normal_queue(&tq)),
            input: Some(json("x")),
            workflow_run_timeout: Some(proto_duration(Duration::from_secs(60))),
            identity: "fuzzer".into(),
            request_id,
            ..Default::default()
        }
        .encode_to_vec(),
        "SignalWorkflowExecution" => SignalWorkflowExecutionRequest {
            namespace: ns,
            workflow_execution: execution,
            signal_name: "fuzz-signal".into(),
            input: Some(json("s")),
            identity: "fuzzer".into(),
            request_id,
            ..Default::default()
        }
        .encode_to_vec(),
        "SignalWithStartWorkflowExecution" => SignalWithStartWorkflowExecutionRequest {
            namespace: ns,
            workflow_id: if g.rng.random_bool(0.5) { wf } else { fresh_id },
            workflow_type: Some(WorkflowType {
                name: "fuzz".into(),
            }),
            task_queue: Some(normal_queue(&tq)),
            input: Some(json("x")),
            signal_name: "fuzz-signal".into(),
            signal_input: Some(json("s")),
            identity: "fuzzer".into(),
            request_id,
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondWorkflowTaskCompleted" => RespondWorkflowTaskCompletedRequest {
            namespace: ns,
            task_token: token,
            commands: vec![
                start_timer("fuzz-timer".into(), Duration::from_secs(3600)),
                schedule_activity("fuzz-activity".into(), &tq),
            ],
            identity: "fuzzer".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondWorkflowTaskFailed" => RespondWorkflowTaskFailedRequest {
            namespace: ns,
            task_token: token,
            failure: Some(failure),
            identity: "fuzzer".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "RespondActivityTaskFailed" => RespondActivityTaskFailedRequest {
            namespace: ns,
            task_token: token,
            failure: Some(failure),
            identity: "fuzzer".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "QueryWorkflow" => QueryWorkflowRequest {
            namespace: ns,
            execution,
            query: Some(WorkflowQuery {
                query_type: "__stack_trace".into(),
                query_args: Some(json("q")),
                header: None,
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        "UpdateWorkflowExecution" => UpdateWorkflowExecutionRequest {
            namespace: ns,
            workflow_execution: execution,
            request: Some(UpdateRequest {
                meta: Some(temporalio_protos::temporal::api::update::v1::Meta {
                    update_id: request_id,
                    identity: "fuzzer".into(),
                }),
                input: Some(Input {
                    header: None,
                    name: "fuzz-update".into(),
                    args: Some(json("u")),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
        "DescribeWorkflowExecution" => DescribeWorkflowExecutionRequest {
            namespace: ns,
            execution,
        }
        .encode_to_vec(),
        "GetWorkflowExecutionHistory" => GetWorkflowExecutionHistoryRequest {
            namespace: ns,
            execution,
            maximum_page_size: 100,
            ..Default::default()
        }
        .encode_to_vec(),
        "ListWorkflowExecutions" => ListWorkflowExecutionsRequest {
            namespace: ns,
            page_size: 10,
            query: format!("WorkflowId = '{wf}'"),
            ..Default::default()
        }
        .encode_to_vec(),
        "CreateSchedule" => CreateScheduleRequest {
            namespace: ns,
            schedule_id: fresh_id.clone(),
            schedule: Some(Schedule {
                spec: Some(spec()),
                action: Some(ScheduleAction {
                    action: Some(Action::StartWorkflow(NewWorkflowExecutionInfo {
                        workflow_id: fresh_id,
                        workflow_type: Some(WorkflowType {
                            name: "fuzz".into(),
                        }),
                        task_queue: Some(normal_queue(&tq)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            identity: "fuzzer".into(),
            request_id,
            ..Default::default()
        }
        .encode_to_vec(),
        "ListScheduleMatchingTimes" => ListScheduleMatchingTimesRequest {
            namespace: ns,
            schedule_id: known.schedule_id.clone(),
            start_time: Some(prost_wkt_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            end_time: Some(prost_wkt_types::Timestamp {
                seconds: 1_700_086_400,
                nanos: 0,
            }),
        }
        .encode_to_vec(),
        _ => return None,
    };
    Some(bytes)
}

/// A schedule spec using every kind of spec: an interval, a cron string and a calendar.
pub fn spec() -> ScheduleSpec {
    let range = |start, end| Range {
        start,
        end,
        step: 1,
    };
    ScheduleSpec {
        interval: vec![IntervalSpec {
            interval: Some(proto_duration(Duration::from_secs(3600))),
            phase: Some(proto_duration(Duration::from_secs(60))),
        }],
        cron_string: vec!["0 12 * * MON-FRI".into()],
        structured_calendar: vec![StructuredCalendarSpec {
            second: vec![range(0, 0)],
            minute: vec![range(30, 30)],
            hour: vec![range(8, 18)],
            day_of_month: vec![range(1, 31)],
            month: vec![range(1, 12)],
            ..Default::default()
        }],
        timezone_name: "Europe/Paris".into(),
        jitter: Some(proto_duration(Duration::from_secs(5))),
        ..Default::default()
    }
}

/// `bytes` (a valid `desc`) with one field, at any depth, replaced by a random value or
/// cleared.
pub fn corrupt_one(g: &mut Gen<'_>, desc: &MessageDescriptor, bytes: &[u8]) -> Vec<u8> {
    match DynamicMessage::decode(desc.clone(), bytes) {
        Ok(mut msg) => {
            corrupt(g, &mut msg, 0);
            msg.encode_to_vec()
        }
        Err(_) => bytes.to_vec(),
    }
}

fn corrupt(g: &mut Gen<'_>, msg: &mut DynamicMessage, depth: u32) {
    let set: Vec<_> = msg.fields().map(|(f, _)| f).collect();
    if set.is_empty() || g.rng.random_bool(0.25) || depth > 8 {
        let all: Vec<_> = msg.descriptor().fields().collect();
        if let Some(f) = all.choose(g.rng) {
            if g.rng.random_bool(0.2) {
                msg.clear_field(f);
            } else {
                let v = g.field_value(f, depth);
                msg.set_field(f, v);
            }
        }
        return;
    }
    let Some(f) = set.choose(g.rng).cloned() else {
        return;
    };
    let descend = g.rng.random_bool(0.6);
    match msg.get_field_mut(&f) {
        Value::Message(inner) if descend => corrupt(g, inner, depth + 1),
        Value::List(items) if descend && !items.is_empty() => {
            let i = g.rng.random_range(0..items.len());
            if let Value::Message(inner) = &mut items[i] {
                corrupt(g, inner, depth + 1);
            } else if g.rng.random_bool(0.5) {
                items.remove(i);
            } else {
                let v = g.field_value(&f, depth);
                *items = match v {
                    Value::List(v) => v,
                    other => vec![other],
                };
            }
        }
        _ if g.rng.random_bool(0.15) => msg.clear_field(&f),
        slot => *slot = g.field_value(&f, depth),
    }
}

/// `bytes` broken at the wire level: truncated, bit-flipped, padded with garbage, a bogus
/// field appended, or replaced by random bytes.
pub fn break_bytes(g: &mut Gen<'_>, mut bytes: Vec<u8>) -> Vec<u8> {
    match g.rng.random_range(0..6) {
        0 if !bytes.is_empty() => {
            let n = g.rng.random_range(0..bytes.len());
            bytes.truncate(n);
        }
        1 if !bytes.is_empty() => {
            for _ in 0..g.rng.random_range(1..8) {
                let i = g.rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << g.rng.random_range(0..8);
            }
        }
        2 => bytes.extend((0..g.rng.random_range(1..64)).map(|_| g.rng.random::<u8>())),
        // A length-delimited field 1 (namespace in most requests) that is not UTF-8.
        3 => bytes.extend([0x0a, 0x03, 0xff, 0xfe, 0xfd]),
        // A field number past any the message knows, as a varint: valid, unknown.
        4 => bytes.extend([0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01]),
        _ => {
            let n = g.rng.random_range(0..256);
            bytes = (0..n).map(|_| g.rng.random::<u8>()).collect();
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::fuzz::generate::Known;
    use crate::fuzz::schema;

    #[test]
    fn every_valid_request_decodes_as_its_method_input() {
        let (_, methods, _) = schema::load().expect("descriptor set loads");
        let known = Known {
            workflow_ids: vec!["w".into()],
            task_queue: "q".into(),
            task_tokens: vec![vec![1, 2, 3]],
            schedule_id: "s".into(),
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut g = Gen::new(&mut rng, &known);
        for name in VALID_METHODS {
            let m = methods
                .iter()
                .find(|m| m.name == *name)
                .expect("method exists");
            let bytes = valid(&mut g, name).expect("a valid request");
            let msg = DynamicMessage::decode(m.input.clone(), bytes.as_slice()).expect("decodes");
            assert!(msg.has_field_by_name("namespace"), "{name}");
            let corrupted = corrupt_one(&mut g, &m.input, &bytes);
            DynamicMessage::decode(m.input.clone(), corrupted.as_slice())
                .expect("a corrupted request is still a message of its type");
        }
    }
}
