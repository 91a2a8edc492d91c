//! Nexus operations through the state machine: the commands, the handler's answers, the
//! backoff between start requests, the timeout and the completion callback.

use std::collections::HashMap;
use std::time::Duration;

use temper_proto::temporal::api::command::v1::{Command, command};
use temper_proto::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use temper_proto::temporal::api::failure::v1::Failure;

use super::*;
use crate::commands::complete_workflow_task;
use crate::completion::{Completion, Outcome};
use crate::tests::Harness;
use crate::time::dur;

fn schedule_cmd(endpoint: &str, s2c: u64) -> Command {
    Command {
        attributes: Some(
            command::Attributes::ScheduleNexusOperationCommandAttributes(
                ScheduleNexusOperationCommandAttributes {
                    endpoint: endpoint.into(),
                    service: "svc".into(),
                    operation: "op".into(),
                    schedule_to_close_timeout: dur(Duration::from_secs(s2c)),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    }
}

fn cancel_cmd(scheduled_event_id: i64) -> Command {
    Command {
        attributes: Some(
            command::Attributes::RequestCancelNexusOperationCommandAttributes(
                RequestCancelNexusOperationCommandAttributes { scheduled_event_id },
            ),
        ),
        ..Default::default()
    }
}

/// Complete a workflow task with `commands`, the endpoint "ep" being registered.
fn complete(h: &mut Harness, commands: Vec<Command>) -> Outcome {
    let wt = h.start_wt();
    h.apply(|t| {
        t.nexus_endpoints = HashMap::from([("ep".to_owned(), "ep-id".to_owned())]);
        complete_workflow_task(
            t,
            &wt,
            Completion {
                worker: Default::default(),
                commands: &commands,
                identity: "w",
                binary_checksum: "",
                search_attribute_names: None,
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

fn scheduled(h: &mut Harness) -> i64 {
    scheduled_with(h, schedule_cmd("ep", 30))
}

fn scheduled_with(h: &mut Harness, cmd: Command) -> i64 {
    complete(h, vec![cmd]);
    *h.ms
        .nexus_operations
        .keys()
        .next()
        .expect("pending operation")
}

#[test]
fn scheduling_writes_the_event_and_sends_the_first_start_request() {
    let mut h = Harness::start();
    let id = scheduled(&mut h);
    let op = &h.ms.nexus_operations[&id];
    assert_eq!(
        (op.endpoint.as_str(), op.endpoint_id.as_str()),
        ("ep", "ep-id")
    );
    assert!(!op.request_id.is_empty());
    assert_eq!(h.types().last(), Some(&EventType::NexusOperationScheduled));
    let start = h
        .last
        .transfer
        .iter()
        .find(|t| t.kind == pb::TransferTaskKind::NexusStart as i32)
        .expect("a start request");
    assert_eq!((start.scheduled_event_id, start.attempt), (id, 1));
    assert!(
        h.last
            .timers
            .iter()
            .any(|(_, t)| t.kind == pb::TimerTaskKind::NexusTimeout as i32),
        "the schedule-to-close timer"
    );
}

#[test]
fn an_unknown_endpoint_fails_the_workflow_task() {
    let mut h = Harness::start();
    match complete(&mut h, vec![schedule_cmd("nope", 30)]) {
        Outcome::Rejected(bad) => {
            assert_eq!(
                bad.cause,
                WorkflowTaskFailedCause::BadScheduleNexusOperationAttributes
            );
            assert_eq!(
                bad.message,
                "BadScheduleNexusOperationAttributes: endpoint \"nope\" not found"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(h.ms.nexus_operations.is_empty());
}

#[test]
fn a_sync_result_completes_the_operation_and_wakes_the_workflow() {
    let mut h = Harness::start();
    let id = scheduled(&mut h);
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Completed {
                result: None,
                links: Vec::new(),
            },
        )
    });
    assert!(h.ms.nexus_operations.is_empty());
    let types = h.types();
    assert_eq!(
        &types[types.len() - 2..],
        &[
            EventType::NexusOperationCompleted,
            EventType::WorkflowTaskScheduled
        ]
    );
    // A stale answer (another attempt) changes nothing.
    let before = h.history.len();
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Completed {
                result: None,
                links: Vec::new(),
            },
        )
    });
    assert_eq!(h.history.len(), before);
}

#[test]
fn an_async_start_then_its_callback_complete_the_operation() {
    let mut h = Harness::start();
    // The attempt bookkeeping is the server's, not the history's (as for activities).
    h.check_replay = false;
    let id = scheduled(&mut h);
    h.apply(|t| {
        on_start(
            t,
            id,
            1,
            StartOutcome::Started {
                token: "tok".into(),
                links: Vec::new(),
            },
        )
    });
    assert_eq!(h.ms.nexus_operations[&id].operation_token, "tok");
    assert!(h.types().contains(&EventType::NexusOperationStarted));
    let request_id = h.ms.nexus_operations[&id].request_id.clone();
    assert!(
        !h.apply(|t| on_completion(t, id, "another", None, None, false)),
        "a callback for another request is not this operation's"
    );
    assert!(h.apply(|t| on_completion(t, id, &request_id, None, None, false)));
    assert!(h.ms.nexus_operations.is_empty());
    assert!(h.types().contains(&EventType::NexusOperationCompleted));
}

#[test]
fn a_retryable_failure_backs_off_then_sends_the_request_again() {
    let mut h = Harness::start();
    // The attempt bookkeeping is the server's, not the history's (as for activities).
    h.check_replay = false;
    let id = scheduled(&mut h);
    let failure = Failure {
        message: "upstream timeout".into(),
        ..Default::default()
    };
    h.apply(|t| on_start(t, id, 1, StartOutcome::Retry(failure.clone())));
    let op = &h.ms.nexus_operations[&id];
    assert_eq!(op.attempt, 1);
    assert_eq!(op.last_attempt_failure.as_ref(), Some(&failure));
    assert!(op.next_attempt_schedule_time.is_some(), "backing off");
    let (_, retry) = h
        .last
        .timers
        .iter()
        .find(|(_, t)| t.kind == pb::TimerTaskKind::NexusRetry as i32)
        .cloned()
        .expect("a retry timer");
    assert_eq!(retry.attempt, 2);
    h.now += Duration::from_secs(1);
    h.apply(|t| on_retry_timer(t, id, 2));
    assert!(
        h.ms.nexus_operations[&id]
            .next_attempt_schedule_time
            .is_none()
    );
    assert!(
        h.last
            .transfer
            .iter()
            .any(|t| t.kind == pb::TransferTaskKind::NexusStart as i32 && t.attempt == 2)
    );
}

#[test]
fn the_timeout_ends_it_with_temporals_failure() {
    let mut h = Harness::start();
    let id = scheduled(&mut h);
    h.now += Duration::from_secs(30);
    h.apply(|t| on_timeout(t, id, 0));
    assert!(h.ms.nexus_operations.is_empty());
    let ev = h
        .history
        .iter()
        .rev()
        .find(|e| e.event_type == EventType::NexusOperationTimedOut as i32);
    let Some(temper_proto::temporal::api::history::v1::history_event::Attributes::NexusOperationTimedOutEventAttributes(a)) =
        ev.and_then(|e| e.attributes.clone())
    else {
        panic!("a timed-out event");
    };
    let f = a.failure.expect("failure");
    assert_eq!(f.message, "nexus operation completed unsuccessfully");
    assert_eq!(
        f.cause.map(|c| c.message).as_deref(),
        Some("operation timed out")
    );
}

#[test]
fn a_timeout_timer_that_fires_early_waits_for_the_deadline() {
    let mut h = Harness::start();
    let id = scheduled(&mut h);
    // The schedule-to-close deadline is 30 s after scheduling; the timer comes a little early.
    h.now += Duration::from_secs(30) - Duration::from_micros(300);
    h.apply(|t| on_timeout(t, id, 0));
    assert!(
        h.ms.nexus_operations.contains_key(&id),
        "not timed out early"
    );
    assert_eq!(h.last.timers.len(), 1, "re-armed");
    let (at, timer) = h.last.timers[0].clone();
    assert_eq!(at, h.now + Duration::from_micros(300), "for the deadline");
    assert_eq!(timer.kind, pb::TimerTaskKind::NexusTimeout as i32);
    h.now += Duration::from_micros(300);
    h.apply(|t| on_timeout(t, id, timer.timeout_type));
    assert!(
        h.ms.nexus_operations.is_empty(),
        "timed out at the deadline"
    );
}

#[test]
fn canceling_an_operation_not_started_cancels_it_at_once() {
    let mut h = Harness::start();
    let id = scheduled(&mut h);
    // Something else wakes the workflow (a signal, say), which then cancels the operation.
    h.apply(crate::workflow_task::schedule_if_needed);
    complete(&mut h, vec![cancel_cmd(id)]);
    assert!(h.ms.nexus_operations.is_empty());
    let types = h.types();
    assert!(types.contains(&EventType::NexusOperationCancelRequested));
    assert!(types.contains(&EventType::NexusOperationCanceled));
    // Canceling it again is a bad command: it is gone.
    assert!(matches!(
        complete(&mut h, vec![cancel_cmd(id)]),
        Outcome::Rejected(_)
    ));
}

#[test]
fn a_second_caller_attaches_its_callback_to_the_running_handler() {
    use temper_proto::temporal::api::common::v1::{Callback, callback};
    use temper_proto::temporal::api::workflow::v1::OnConflictOptions;
    use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
    let mut h = Harness::start();
    let cb = |token: &str| Callback {
        variant: Some(callback::Variant::Nexus(callback::Nexus {
            url: "temporal://system".into(),
            header: HashMap::from([("temporal-callback-token".to_owned(), token.to_owned())]),
        })),
        ..Default::default()
    };
    let req = StartWorkflowExecutionRequest {
        request_id: "second".into(),
        completion_callbacks: vec![cb("t2")],
        on_conflict_options: Some(OnConflictOptions {
            attach_request_id: true,
            attach_completion_callbacks: true,
            attach_links: true,
        }),
        ..Default::default()
    };
    h.apply(|t| crate::start::attach_on_conflict(t, &req))
        .expect("attached");
    assert_eq!(h.ms.completion_callbacks, vec![cb("t2")]);
    assert_eq!(
        h.types().last(),
        Some(&EventType::WorkflowExecutionOptionsUpdated)
    );
    // The same request again attaches nothing more.
    let before = h.history.len();
    h.apply(|t| crate::start::attach_on_conflict(t, &req))
        .expect("a repeat");
    assert_eq!(h.history.len(), before);
    assert_eq!(h.ms.completion_callbacks.len(), 1);
}

#[test]
fn a_handler_that_continues_as_new_passes_its_callbacks_to_the_next_run() {
    use temper_proto::temporal::api::command::v1::ContinueAsNewWorkflowExecutionCommandAttributes;
    use temper_proto::temporal::api::common::v1::{Callback, callback};
    let mut h = Harness::start();
    let cb = Callback {
        variant: Some(callback::Variant::Nexus(callback::Nexus {
            url: "temporal://system".into(),
            header: HashMap::from([("temporal-callback-token".to_owned(), "t".to_owned())]),
        })),
        ..Default::default()
    };
    // As if the run had been started with it (its history does not say so).
    h.ms.completion_callbacks = vec![cb.clone()];
    h.check_replay = false;
    h.complete_wt(vec![Command {
        attributes: Some(
            command::Attributes::ContinueAsNewWorkflowExecutionCommandAttributes(
                ContinueAsNewWorkflowExecutionCommandAttributes::default(),
            ),
        ),
        ..Default::default()
    }]);
    let next = h.last.new_run.clone().expect("a new run");
    assert_eq!(next.ms.completion_callbacks, vec![cb.clone()]);
    let Some(temper_proto::temporal::api::history::v1::history_event::Attributes::WorkflowExecutionStartedEventAttributes(a)) =
        next.mutation.events.first().and_then(|e| e.attributes.clone())
    else {
        panic!("a started event");
    };
    assert_eq!(
        a.completion_callbacks,
        vec![cb],
        "the started event carries them"
    );
}

#[test]
fn the_schedule_to_close_timeout_is_no_longer_than_the_run_timeout() {
    for (asked, want) in [(0, 20), (30, 20), (10, 10)] {
        let mut h = Harness::start();
        // A run timeout the started event does not say: the state only.
        h.check_replay = false;
        h.ms.execution_info
            .as_mut()
            .expect("execution info")
            .workflow_run_timeout = dur(Duration::from_secs(20));
        let id = scheduled_with(&mut h, schedule_cmd("ep", asked));
        let op = &h.ms.nexus_operations[&id];
        assert_eq!(
            op.schedule_to_close_timeout.map(|d| d.seconds),
            Some(want),
            "asked {asked}"
        );
    }
}
