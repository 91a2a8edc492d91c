//! A standalone Nexus operation's run through the state machine: no workflow tasks, the
//! handler's answers, cancellation that waits for the start, termination, the timeouts, and
//! the run closing with the operation's outcome.

use std::time::Duration;

use temper_proto::temporal::api::common::v1::link;
use temper_proto::temporal::api::enums::v1::{EventType, TimeoutType};
use temper_proto::temporal::api::failure::v1::NexusHandlerFailureInfo;

use super::*;
use crate::nexus::{StartOutcome, on_cancel_answer, on_completion, on_start, on_timeout};
use crate::start::{NewRun, Origin, new_system_run};
use crate::tests::Harness;
use crate::time::dur;
use crate::{Limits, WorkflowError};

fn request(s2c: u64, s2s: u64) -> StartNexusOperationExecutionRequest {
    StartNexusOperationExecutionRequest {
        namespace: "default".into(),
        operation_id: "op-1".into(),
        endpoint: "ep".into(),
        service: "svc".into(),
        operation: "echo".into(),
        schedule_to_close_timeout: dur(Duration::from_secs(s2c)),
        schedule_to_start_timeout: dur(Duration::from_secs(s2s)),
        request_id: "req".into(),
        identity: "me".into(),
        ..Default::default()
    }
}

/// A run holding the operation of `r`, started as the history service starts it.
fn started(mut r: StartNexusOperationExecutionRequest) -> Harness {
    let limits = Limits::default();
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    validate(&mut r, limits.max_payload_bytes).expect("a valid request");
    let (ms, out, ()) = new_system_run(
        NewRun {
            namespace_id: "ns",
            run_id: "run",
            request_id: "req",
            now,
            origin: Origin::default(),
        },
        &run_request(&r, "req", "op-request"),
        &limits,
        |txn| start(txn, &r, "ep-id", "op-request"),
    );
    Harness {
        ms,
        history: out.events.clone(),
        now,
        limits,
        last: out,
        // A standalone run is never rebuilt from its history.
        check_replay: false,
    }
}

fn id(h: &Harness) -> i64 {
    h.ms.standalone_nexus_operation
        .as_ref()
        .expect("a standalone run")
        .scheduled_event_id
}

fn kinds(tasks: &[pb::TransferTask]) -> Vec<i32> {
    tasks.iter().map(|t| t.kind).collect()
}

fn started_async(h: &mut Harness) {
    let id = id(h);
    let handler_link = Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: "default".into(),
            workflow_id: "handler-wf".into(),
            run_id: "r".into(),
            reference: None,
        })),
    };
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Started {
                token: "tok".into(),
                links: vec![handler_link.clone()],
            },
        )
    });
}

#[test]
fn the_run_schedules_its_operation_and_no_workflow_task() {
    let h = started(request(30, 5));
    assert_eq!(
        h.types(),
        vec![
            EventType::WorkflowExecutionStarted,
            EventType::NexusOperationScheduled
        ]
    );
    assert!(h.ms.workflow_task.is_none());
    assert_eq!(
        kinds(&h.last.transfer),
        vec![pb::TransferTaskKind::NexusStart as i32]
    );
    let timeouts: Vec<i32> = h.last.timers.iter().map(|(_, t)| t.timeout_type).collect();
    assert_eq!(
        timeouts,
        vec![
            TimeoutType::ScheduleToClose as i32,
            TimeoutType::ScheduleToStart as i32
        ]
    );
    let op = current(&h.ms).expect("pending");
    assert_eq!(
        (op.request_id.as_str(), op.endpoint_id.as_str()),
        ("op-request", "ep-id")
    );
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Running);
    assert!(!reached(&h.ms, NexusOperationWaitStage::Started));
}

#[test]
fn a_synchronous_result_closes_the_run_completed() {
    let mut h = started(request(30, 0));
    let id = id(&h);
    let result = Payload {
        data: b"\"hi\"".to_vec(),
        ..Default::default()
    };
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Completed {
                result: Some(result.clone()),
                links: Vec::new(),
            },
        )
    });
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Completed);
    assert_eq!(outcome(&h.ms), Some(Ok(result)));
    assert_eq!(
        h.types().last(),
        Some(&EventType::WorkflowExecutionCompleted)
    );
    assert!(h.ms.workflow_task.is_none());
    assert!(reached(&h.ms, NexusOperationWaitStage::Started));
    assert!(current(&h.ms).is_some(), "kept as it closed");
}

#[test]
fn a_handler_failure_is_the_outcome_itself() {
    let mut h = started(request(30, 0));
    let id = id(&h);
    let cause = Failure {
        message: "boom".into(),
        failure_info: Some(FailureInfo::NexusHandlerFailureInfo(
            NexusHandlerFailureInfo {
                r#type: "INTERNAL".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Failed {
                cause: cause.clone(),
                canceled: false,
            },
        )
    });
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Failed);
    assert_eq!(outcome(&h.ms), Some(Err(cause)), "not wrapped");
    assert_eq!(h.types().last(), Some(&EventType::WorkflowExecutionFailed));
}

#[test]
fn an_async_start_keeps_the_handlers_links_and_the_callback_closes_it() {
    let mut h = started(request(30, 5));
    started_async(&mut h);
    assert!(reached(&h.ms, NexusOperationWaitStage::Started));
    assert!(!reached(&h.ms, NexusOperationWaitStage::Closed));
    let so = h.ms.standalone_nexus_operation.as_ref().expect("kept");
    assert_eq!(so.links.len(), 1);
    // The schedule-to-start timer that fires now finds it started.
    h.now += Duration::from_secs(5);
    let id = id(&h);
    h.apply(|t| on_timeout(t, id, TimeoutType::ScheduleToStart as i32));
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Running);
    let canceled = Failure {
        message: "operation canceled".into(),
        ..Default::default()
    };
    let op_request = current(&h.ms).expect("pending").request_id;
    h.apply(|t| on_completion(t, id, &op_request, None, Some(canceled.clone()), true));
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Canceled);
    assert_eq!(outcome(&h.ms), Some(Err(canceled)));
    assert_eq!(
        h.types().last(),
        Some(&EventType::WorkflowExecutionCanceled)
    );
}

#[test]
fn a_cancel_request_waits_for_the_start_then_reaches_the_handler() {
    let mut h = started(request(30, 0));
    h.apply(|t| request_cancel(t, "why", "me", "c1"))
        .expect("recorded");
    assert!(
        h.last.transfer.is_empty(),
        "nothing to cancel before the handler started it"
    );
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Running);
    // The same request again is fine; another is refused.
    h.apply(|t| request_cancel(t, "why", "me", "c1"))
        .expect("the same request");
    let again = h.apply(|t| request_cancel(t, "other", "me", "c2"));
    assert_eq!(
        again,
        Err(WorkflowError::FailedPrecondition(
            "cancellation already requested with request ID c1".into()
        ))
    );
    started_async(&mut h);
    assert!(
        kinds(&h.last.transfer).contains(&(pb::TransferTaskKind::NexusCancel as i32)),
        "the cancel request goes once it started"
    );
    let id = id(&h);
    h.apply(|t| on_cancel_answer(t, id, None));
    let c =
        h.ms.standalone_nexus_operation
            .as_ref()
            .and_then(|so| so.cancellation.clone())
            .expect("kept");
    assert_eq!(
        cancellation_state(&c),
        NexusOperationCancellationState::Succeeded
    );
    assert_eq!(c.reason, "why");
}

#[test]
fn termination_ends_it_at_once_and_only_once() {
    let mut h = started(request(30, 0));
    h.apply(|t| terminate(t, "enough", "me", "t1"))
        .expect("terminated");
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::Terminated);
    let Some(Err(f)) = outcome(&h.ms) else {
        panic!("a failure");
    };
    assert_eq!(f.message, "enough");
    assert!(matches!(
        f.failure_info,
        Some(FailureInfo::TerminatedFailureInfo(_))
    ));
    assert!(h.ms.nexus_operations.is_empty());
    h.apply(|t| terminate(t, "enough", "me", "t1"))
        .expect("the same request");
    assert_eq!(
        h.apply(|t| terminate(t, "x", "me", "t2")),
        Err(WorkflowError::FailedPrecondition(
            "already terminated with request ID t1".into()
        ))
    );
    assert_eq!(
        h.apply(|t| request_cancel(t, "x", "me", "c1")),
        Err(WorkflowError::FailedPrecondition(
            "operation already completed".into()
        ))
    );
}

#[test]
fn the_timeouts_close_it_timed_out_with_their_type() {
    let mut h = started(request(30, 5));
    let id = id(&h);
    h.now += Duration::from_secs(4);
    h.apply(|t| on_timeout(t, id, TimeoutType::ScheduleToStart as i32));
    assert_eq!(
        status(&h.ms),
        NexusOperationExecutionStatus::Running,
        "early"
    );
    h.now += Duration::from_secs(1);
    h.apply(|t| on_timeout(t, id, TimeoutType::ScheduleToStart as i32));
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::TimedOut);
    let Some(Err(f)) = outcome(&h.ms) else {
        panic!("a failure");
    };
    assert_eq!(f.message, "operation timed out");
    let Some(FailureInfo::TimeoutFailureInfo(t)) = f.failure_info else {
        panic!("a timeout failure");
    };
    assert_eq!(t.timeout_type, TimeoutType::ScheduleToStart as i32);
    assert_eq!(
        h.types().last(),
        Some(&EventType::WorkflowExecutionTimedOut)
    );
}

#[test]
fn start_to_close_counts_from_the_start() {
    let mut r = request(60, 0);
    r.start_to_close_timeout = dur(Duration::from_secs(10));
    let mut h = started(r);
    let id = id(&h);
    h.now += Duration::from_secs(20);
    started_async(&mut h);
    let timer = h
        .last
        .timers
        .iter()
        .find(|(_, t)| t.timeout_type == TimeoutType::StartToClose as i32)
        .expect("armed at the start");
    assert_eq!(timer.0, h.now + Duration::from_secs(10));
    h.now += Duration::from_secs(10);
    h.apply(|t| on_timeout(t, id, TimeoutType::StartToClose as i32));
    assert_eq!(status(&h.ms), NexusOperationExecutionStatus::TimedOut);
}

#[test]
fn requests_are_checked_and_normalized_as_temporal_does() {
    let limits = Limits::default();
    let check = |f: fn(&mut StartNexusOperationExecutionRequest)| {
        let mut r = request(30, 0);
        f(&mut r);
        validate(&mut r, limits.max_payload_bytes).map(|()| r)
    };
    let message = |r: Result<StartNexusOperationExecutionRequest, WorkflowError>| match r {
        Err(WorkflowError::InvalidArgument(m)) => m,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    assert_eq!(
        message(check(|r| r.operation_id.clear())),
        "operation_id is required"
    );
    assert_eq!(
        message(check(|r| r.endpoint.clear())),
        "endpoint is required"
    );
    assert_eq!(message(check(|r| r.service.clear())), "service is required");
    assert_eq!(
        message(check(|r| r.operation.clear())),
        "operation is required"
    );
    assert_eq!(
        message(check(|r| r.operation_id = "x".repeat(1001))),
        "operation_id exceeds length limit. Length=1001 Limit=1000"
    );
    assert_eq!(
        message(check(|r| {
            r.start_to_close_timeout = Some(temper_proto::wkt::Duration {
                seconds: -1,
                nanos: 0,
            })
        })),
        "start_to_close_timeout is invalid: negative duration"
    );
    assert_eq!(
        message(check(|r| {
            r.nexus_header.insert("Request-Timeout".into(), "1s".into());
        })),
        "nexus_header contains a disallowed key: \"Request-Timeout\""
    );
    let r = check(|r| {
        r.nexus_header.insert("X-Trace".into(), "t".into());
        r.schedule_to_start_timeout = dur(Duration::from_secs(90));
    })
    .expect("valid");
    assert_eq!(r.nexus_header.get("x-trace").map(String::as_str), Some("t"));
    assert_eq!(
        r.schedule_to_start_timeout, r.schedule_to_close_timeout,
        "capped"
    );
}

#[test]
fn the_run_carries_what_lists_show() {
    let r = request(30, 0);
    let req = run_request(&r, "req", "op-request");
    assert_eq!(
        req.workflow_id,
        temper_types::standalone_nexus_operation_workflow_id("op-1")
    );
    assert_eq!(req.workflow_type.map(|t| t.name).as_deref(), Some("echo"));
    assert_eq!(req.task_queue.map(|q| q.name).as_deref(), Some("ep"));
    let mut sa = req.search_attributes.expect("set");
    assert_eq!(sa.indexed_fields.len(), 3);
    assert_eq!(take_internal(&mut sa), "svc");
    assert!(sa.indexed_fields.is_empty(), "the user's only");
}
