//! A standalone activity's run through the state machine: it has no workflow tasks, and it
//! closes with its one activity's outcome.

use std::time::Duration;

use temper_proto::temporal::api::common::v1::{ActivityType, Payloads};
use temper_proto::temporal::api::enums::v1::{
    ActivityExecutionStatus, EventType, RetryState, TimeoutType,
};
use temper_proto::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartActivityExecutionRequest;

use super::*;
use crate::start::{NewRun, Origin, new_system_run};
use crate::tests::Harness;
use crate::time::dur;
use crate::{Limits, WorkflowError, activity};

fn request(s2c: u64, st2c: u64) -> StartActivityExecutionRequest {
    StartActivityExecutionRequest {
        namespace: "default".into(),
        activity_id: "act".into(),
        activity_type: Some(ActivityType { name: "T".into() }),
        task_queue: Some(TaskQueue {
            name: "tq".into(),
            ..Default::default()
        }),
        schedule_to_close_timeout: dur(Duration::from_secs(s2c)),
        start_to_close_timeout: dur(Duration::from_secs(st2c)),
        request_id: "req".into(),
        ..Default::default()
    }
}

/// A run holding the activity of `r`, started as the history service starts it.
fn started(r: &StartActivityExecutionRequest) -> Harness {
    let limits = Limits::default();
    let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    validate(r).expect("a valid request");
    let (ms, out, started) = new_system_run(
        NewRun {
            namespace_id: "ns",
            run_id: "run",
            request_id: "req",
            now,
            origin: Origin::default(),
        },
        &run_request(r, "req"),
        &limits,
        |txn| start(txn, r),
    );
    started.expect("scheduled");
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

fn scheduled_id(h: &Harness) -> i64 {
    h.ms.standalone_activity
        .as_ref()
        .expect("a standalone run")
        .scheduled_event_id
}

#[test]
fn the_run_schedules_its_activity_and_no_workflow_task() {
    let h = started(&request(0, 10));
    assert_eq!(
        h.types(),
        vec![
            EventType::WorkflowExecutionStarted,
            EventType::ActivityTaskScheduled
        ]
    );
    assert!(h.ms.workflow_task.is_none());
    assert_eq!(
        h.last.transfer.len(),
        1,
        "the activity task goes to matching"
    );
    assert_eq!(
        h.last.transfer[0].kind,
        pb::TransferTaskKind::ActivityTask as i32
    );
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Running);
    assert_eq!(
        h.ms.execution_info
            .as_ref()
            .map(|i| i.state_transition_count),
        Some(1)
    );
}

#[test]
fn completing_the_activity_closes_the_run_with_its_result() {
    let mut h = started(&request(0, 10));
    let id = scheduled_id(&h);
    let ai = h
        .apply(|t| activity::record_started(t, id, 1, "poll", "w"))
        .expect("started");
    let result = Payloads::default();
    h.apply(|t| activity::complete(t, &ai, Some(result.clone()), "w"));
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Completed);
    assert_eq!(
        h.types().last(),
        Some(&EventType::WorkflowExecutionCompleted)
    );
    let sa = h.ms.standalone_activity.as_ref().expect("kept");
    assert_eq!(sa.result, Some(result));
    let last = sa.last.as_ref().expect("the activity as it closed");
    assert!(
        last.started_time.is_some(),
        "describe shows when it last started"
    );
    assert!(sa.last_attempt_complete_time.is_some());
    assert!(
        h.ms.workflow_task.is_none(),
        "no workflow task after the activity"
    );
}

#[test]
fn a_final_failure_closes_the_run_failed_and_a_retryable_one_retries() {
    let mut h = started(&request(0, 10));
    let id = scheduled_id(&h);
    let ai = h
        .apply(|t| activity::record_started(t, id, 1, "poll", "w"))
        .expect("started");
    let retryable = Failure {
        message: "again".into(),
        ..Default::default()
    };
    h.apply(|t| activity::fail(t, &ai, retryable, "w", None));
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Running, "retried");
    assert!(
        h.ms.standalone_activity
            .as_ref()
            .and_then(|s| s.last_attempt_complete_time)
            .is_some()
    );
    assert_eq!(h.ms.activities[&id].attempt, 2);
    h.now += Duration::from_secs(2);
    h.apply(|t| activity::on_retry_timer(t, id, 2));
    let ai = h
        .apply(|t| activity::record_started(t, id, 2, "poll-2", "w"))
        .expect("attempt 2 started");
    let final_failure = Failure {
        message: "no".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            temper_proto::temporal::api::failure::v1::ApplicationFailureInfo {
                non_retryable: true,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    h.apply(|t| activity::fail(t, &ai, final_failure.clone(), "w", None));
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Failed);
    let sa = h.ms.standalone_activity.as_ref().expect("kept");
    assert_eq!(sa.failure.as_ref(), Some(&final_failure));
    assert_eq!(sa.retry_state, RetryState::NonRetryableFailure as i32);
    assert_eq!(
        sa.last.as_ref().and_then(|l| l.last_failure.as_ref()),
        Some(&final_failure),
        "the failure that ended it is the last failure"
    );
}

#[test]
fn canceling_an_activity_no_worker_started_closes_it_with_the_reason() {
    let mut h = started(&request(0, 10));
    h.apply(|t| request_cancel(t, "because", "me", "c1"))
        .expect("canceled");
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Canceled);
    let sa = h.ms.standalone_activity.clone().expect("kept");
    assert_eq!(sa.canceled_reason, "because");
    let Some(FailureInfo::CanceledFailureInfo(info)) =
        sa.failure.as_ref().and_then(|f| f.failure_info.clone())
    else {
        panic!("a canceled failure: {:?}", sa.failure);
    };
    assert_eq!(info.identity, "me");
    let details = info.details.expect("the reason as details");
    assert_eq!(details.payloads[0].data, b"\"because\"");
    // The same request again is fine; another one is refused.
    h.apply(|t| request_cancel(t, "because", "me", "c1"))
        .expect("the same request");
    match h.apply(|t| request_cancel(t, "x", "me", "c2")) {
        Err(WorkflowError::FailedPrecondition(m)) => {
            assert_eq!(m, "activity is in terminal state Canceled")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_started_activity_is_only_asked_to_cancel() {
    let mut h = started(&request(0, 10));
    let id = scheduled_id(&h);
    let ai = h
        .apply(|t| activity::record_started(t, id, 1, "poll", "w"))
        .expect("started");
    assert!(
        check_cancelable(&ai).is_err(),
        "not before a cancel request"
    );
    h.apply(|t| request_cancel(t, "stop", "me", "c1"))
        .expect("requested");
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Running);
    let ai = h.ms.activities[&id].clone();
    assert!(ai.cancel_requested);
    check_cancelable(&ai).expect("after the request");
    h.apply(|t| activity::canceled(t, &ai, None, "w"));
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Canceled);
}

#[test]
fn termination_ends_it_and_answers_the_workers_heartbeat_with_cancel() {
    let mut h = started(&request(0, 10));
    let id = scheduled_id(&h);
    h.apply(|t| activity::record_started(t, id, 1, "poll", "w"))
        .expect("started");
    h.apply(|t| terminate(t, "enough", "op", "t1"))
        .expect("terminated");
    assert_eq!(status(&h.ms), ActivityExecutionStatus::Terminated);
    assert!(h.ms.activities.is_empty());
    let answer = heartbeat_after_termination(&h.ms, Some(id), Some(1)).expect("answered");
    assert!(answer.cancel_requested);
    assert!(heartbeat_after_termination(&h.ms, Some(id), Some(2)).is_none());
    h.apply(|t| terminate(t, "enough", "op", "t1"))
        .expect("the same request");
    match h.apply(|t| terminate(t, "again", "op", "t2")) {
        Err(WorkflowError::FailedPrecondition(m)) => {
            assert_eq!(m, "already terminated with request ID t1")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn its_schedule_to_close_timeout_without_a_worker_reads_as_schedule_to_start() {
    let mut h = started(&request(2, 0));
    let id = scheduled_id(&h);
    h.now += Duration::from_secs(2);
    h.apply(|t| activity::on_timeout(t, id, 0, TimeoutType::ScheduleToClose as i32));
    assert_eq!(status(&h.ms), ActivityExecutionStatus::TimedOut);
    let sa = h.ms.standalone_activity.as_ref().expect("kept");
    assert_eq!(sa.retry_state, RetryState::Timeout as i32);
    let f = sa.failure.as_ref().expect("a timeout failure");
    assert_eq!(f.message, "activity ScheduleToStart timeout");
}

#[test]
fn a_start_delay_holds_the_first_attempt_back() {
    let mut r = request(0, 10);
    r.start_delay = dur(Duration::from_secs(5));
    let mut h = started(&r);
    let id = scheduled_id(&h);
    assert!(h.last.transfer.is_empty(), "not dispatched yet");
    let (at, timer) = h.last.timers.first().cloned().expect("a timer");
    assert_eq!(timer.kind, pb::TimerTaskKind::ActivityRetry as i32);
    assert_eq!(at, h.now + Duration::from_secs(5));
    assert!(
        h.apply(|t| activity::record_started(t, id, 1, "poll", "w"))
            .is_err(),
        "no worker gets it early"
    );
    h.now = at;
    h.apply(|t| activity::on_retry_timer(t, id, 1));
    assert_eq!(
        h.last.transfer.len(),
        1,
        "dispatched once the delay is over"
    );
    assert_eq!(
        execution_time(&h.ms).map(|t| crate::time::from_ts(&t)),
        Some(at)
    );
}

#[test]
fn bad_starts_are_refused_with_temporals_words() {
    let mut no_timeouts = request(0, 0);
    no_timeouts.activity_id = "a".into();
    let cases = [
        (
            StartActivityExecutionRequest {
                activity_id: String::new(),
                ..request(0, 10)
            },
            "activityId is not set".to_owned(),
        ),
        (
            StartActivityExecutionRequest {
                activity_type: None,
                ..request(0, 10)
            },
            "activityType is not set".to_owned(),
        ),
        (
            StartActivityExecutionRequest {
                task_queue: None,
                ..request(0, 10)
            },
            "missing task queue name".to_owned(),
        ),
        (
            StartActivityExecutionRequest {
                start_delay: Some(temper_proto::wkt::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                ..request(0, 10)
            },
            "invalid StartDelay: negative duration".to_owned(),
        ),
        (
            StartActivityExecutionRequest {
                activity_id: "x".repeat(1001),
                ..request(0, 10)
            },
            "activityId exceeds length limit. Length=1001 Limit=1000".to_owned(),
        ),
        (
            no_timeouts,
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. \
             ActivityId=a ActivityType=T"
                .to_owned(),
        ),
    ];
    for (r, want) in cases {
        match validate(&r) {
            Err(WorkflowError::InvalidArgument(m)) => assert_eq!(m, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
}

#[test]
fn an_activity_started_with_callbacks_calls_them_when_it_closes() {
    use temper_proto::temporal::api::common::v1::{Callback, callback};
    let mut r = request(0, 10);
    r.completion_callbacks = vec![Callback {
        variant: Some(callback::Variant::Nexus(callback::Nexus {
            url: "temporal://system".into(),
            ..Default::default()
        })),
        ..Default::default()
    }];
    let mut h = started(&r);
    assert_eq!(h.ms.completion_callbacks, r.completion_callbacks);
    let id = scheduled_id(&h);
    let ai = h
        .apply(|t| activity::record_started(t, id, 1, "poll", "w"))
        .expect("started");
    h.apply(|t| activity::complete(t, &ai, None, "w"));
    assert!(
        h.last
            .transfer
            .iter()
            .any(|t| t.kind == pb::TransferTaskKind::CompletionCallbacks as i32),
        "the close calls the callbacks"
    );
}
