//! Scenario tests: whole workflow lifecycles through the state machine, checking the
//! event order the SDKs rely on.

use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes, command,
};
use temper_proto::temporal::api::common::v1::{ActivityType, RetryPolicy, WorkflowType};
use temper_proto::temporal::api::enums::v1::{
    EventType, RetryState, TimeoutType, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use crate::commands::complete_workflow_task;
use crate::completion::{Completion, Outcome};
use crate::start::{NewRun, new_execution};
use crate::time::dur;
use crate::workflow_task::{StartRequest, record_started};
use crate::{Limits, Txn, activity, pb, timer, workflow_task};

pub(crate) struct Harness {
    pub(crate) ms: pb::MutableState,
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) now: SystemTime,
    pub(crate) limits: Limits,
    pub(crate) last: crate::Mutation,
    /// Check after each transaction that replaying the history gives the state (off for a
    /// test that edits the state directly, which no history says).
    pub(crate) check_replay: bool,
}

impl Harness {
    pub(crate) fn start() -> Self {
        let limits = Limits::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let req = StartWorkflowExecutionRequest {
            workflow_id: "wf".into(),
            workflow_type: Some(WorkflowType { name: "W".into() }),
            task_queue: Some(TaskQueue {
                name: "tq".into(),
                ..Default::default()
            }),
            request_id: "r".into(),
            ..Default::default()
        };
        let (ms, out) = new_execution(
            NewRun {
                namespace_id: "ns",
                run_id: "run",
                request_id: "r",
                now,
                origin: Default::default(),
            },
            &req,
            &limits,
        );
        Self {
            ms,
            history: out.events.clone(),
            now,
            limits,
            last: out,
            check_replay: true,
        }
    }

    pub(crate) fn apply<R>(&mut self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut txn = Txn::new(&mut self.ms, self.now, &self.limits);
        let r = f(&mut txn);
        let out = txn.finish();
        self.history.extend(out.events.iter().cloned());
        if self.check_replay {
            crate::tests_rebuild::assert_replays(&self.ms, &self.history);
        }
        self.last = out;
        r
    }

    pub(crate) fn types(&self) -> Vec<EventType> {
        self.history
            .iter()
            .map(|e| EventType::try_from(e.event_type).expect("known event type"))
            .collect()
    }

    pub(crate) fn start_wt(&mut self) -> pb::WorkflowTaskInfo {
        let sched = self
            .ms
            .workflow_task
            .as_ref()
            .expect("a workflow task is scheduled")
            .scheduled_event_id;
        self.apply(|t| {
            record_started(
                t,
                StartRequest {
                    poller: Default::default(),
                    scheduled_event_id: sched,
                    request_id: "poll",
                    identity: "w",
                },
            )
        })
        .expect("starts");
        self.ms.workflow_task.clone().expect("started")
    }

    pub(crate) fn complete_wt(&mut self, commands: Vec<Command>) -> Outcome {
        let wt = self.start_wt();
        self.apply(|t| {
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

    pub(crate) fn check_ids(&self) {
        for (i, e) in self.history.iter().enumerate() {
            assert_eq!(e.event_id, i as i64 + 1, "event ids are consecutive");
        }
    }
}

pub(crate) fn schedule_activity(id: &str, policy: Option<RetryPolicy>) -> Command {
    Command {
        command_type: 0,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: id.into(),
                activity_type: Some(ActivityType { name: "A".into() }),
                start_to_close_timeout: dur(Duration::from_secs(10)),
                retry_policy: policy,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

pub(crate) fn complete_cmd() -> Command {
    Command {
        attributes: Some(
            command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                CompleteWorkflowExecutionCommandAttributes { result: None },
            ),
        ),
        ..Default::default()
    }
}

#[test]
pub(crate) fn activity_happy_path_event_order() {
    let mut h = Harness::start();
    h.complete_wt(vec![schedule_activity("a1", None)]);
    let sched = *h.ms.activities.keys().next().expect("activity pending");
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("activity starts");
    assert!(h.last.events.is_empty(), "activity start writes no event");
    h.apply(|t| activity::complete(t, &ai, None, "w"));
    h.complete_wt(vec![complete_cmd()]);
    use EventType as E;
    assert_eq!(
        h.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::ActivityTaskScheduled,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
    h.check_ids();
    assert_eq!(
        h.ms.execution_info.as_ref().map(|i| i.status),
        Some(WorkflowExecutionStatus::Completed as i32)
    );
    match &h.history[6].attributes {
        Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => {
            assert_eq!(a.scheduled_event_id, 5);
            assert_eq!(a.started_event_id, 6);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
pub(crate) fn events_during_a_workflow_task_are_buffered_after_its_commands() {
    let mut h = Harness::start();
    h.complete_wt(vec![schedule_activity("a1", None)]);
    let sched = *h.ms.activities.keys().next().expect("pending");
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts");
    // A timer-less workflow task is in flight when the activity completes.
    h.apply(|t| workflow_task::schedule(t, 1));
    let wt = h.start_wt();
    h.apply(|t| activity::complete(t, &ai, None, "w"));
    assert!(h.last.events.is_empty(), "buffered, not written");
    let timer = Command {
        attributes: Some(command::Attributes::StartTimerCommandAttributes(
            StartTimerCommandAttributes {
                timer_id: "t".into(),
                start_to_fire_timeout: dur(Duration::from_secs(1)),
            },
        )),
        ..Default::default()
    };
    let outcome = h.apply(|t| {
        complete_workflow_task(
            t,
            &wt,
            Completion {
                worker: Default::default(),
                commands: &[timer],
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
    });
    assert!(matches!(
        outcome,
        Outcome::Completed {
            new_workflow_task: Some(_),
            closed: false
        }
    ));
    use EventType as E;
    let tail: Vec<_> = h.types().into_iter().rev().take(6).rev().collect();
    assert_eq!(
        tail,
        vec![
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerStarted,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled
        ]
    );
    h.check_ids();
    let n = h.history.len();
    match &h.history[n - 2].attributes {
        Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => {
            assert_eq!(a.started_event_id, h.history[n - 3].event_id)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
pub(crate) fn close_with_unseen_events_is_rejected() {
    let mut h = Harness::start();
    h.complete_wt(
        vec![StartTimerCommandAttributes {
            timer_id: "t".into(),
            start_to_fire_timeout: dur(Duration::from_secs(1)),
        }]
        .into_iter()
        .map(|a| Command {
            attributes: Some(command::Attributes::StartTimerCommandAttributes(a)),
            ..Default::default()
        })
        .collect(),
    );
    h.apply(|t| workflow_task::schedule(t, 1));
    let wt = h.start_wt();
    let started = h.ms.timers.get("t").expect("timer").started_event_id;
    h.apply(|t| timer::on_fire(t, "t", started));
    let out = h.apply(|t| {
        complete_workflow_task(
            t,
            &wt,
            Completion {
                worker: Default::default(),
                commands: &[complete_cmd()],
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
    });
    assert!(matches!(out, Outcome::Rejected(_)));
    use EventType as E;
    let tail: Vec<_> = h.types().into_iter().rev().take(3).rev().collect();
    assert_eq!(
        tail,
        vec![
            E::WorkflowTaskFailed,
            E::TimerFired,
            E::WorkflowTaskScheduled
        ]
    );
    assert!(
        h.ms.execution_info
            .as_ref()
            .is_some_and(|i| i.status == WorkflowExecutionStatus::Running as i32)
    );
    h.check_ids();
}

#[test]
pub(crate) fn activity_retries_then_fails_with_max_attempts() {
    let mut h = Harness::start();
    let policy = RetryPolicy {
        maximum_attempts: 2,
        initial_interval: dur(Duration::from_millis(100)),
        ..Default::default()
    };
    h.complete_wt(vec![schedule_activity("a1", Some(policy))]);
    let sched = *h.ms.activities.keys().next().expect("pending");
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p1", "w"))
        .expect("starts");
    h.apply(|t| {
        activity::fail(
            t,
            &ai,
            Failure {
                message: "x".into(),
                ..Default::default()
            },
            "w",
            None,
        )
    });
    assert!(
        h.last.events.is_empty(),
        "a retried failure writes no event"
    );
    assert_eq!(h.last.timers.len(), 1);
    assert_eq!(h.ms.activities[&sched].attempt, 2);
    assert!(
        h.apply(|t| activity::record_started(t, sched, 2, "p2", "w"))
            .is_err(),
        "not before the backoff"
    );
    h.now += Duration::from_millis(100);
    h.apply(|t| activity::on_retry_timer(t, sched, 2));
    assert_eq!(h.last.transfer.len(), 1, "dispatched again");
    let ai = h
        .apply(|t| activity::record_started(t, sched, 2, "p2", "w"))
        .expect("attempt 2 starts");
    h.apply(|t| {
        activity::fail(
            t,
            &ai,
            Failure {
                message: "x".into(),
                ..Default::default()
            },
            "w",
            None,
        )
    });
    let last = h.history.last().expect("events");
    match &last.attributes {
        Some(Attributes::WorkflowTaskScheduledEventAttributes(_)) => {}
        other => panic!("expected a new workflow task, got {other:?}"),
    }
    let failed = &h.history[h.history.len() - 2];
    match &failed.attributes {
        Some(Attributes::ActivityTaskFailedEventAttributes(a)) => {
            assert_eq!(a.retry_state, RetryState::MaximumAttemptsReached as i32)
        }
        other => panic!("unexpected {other:?}"),
    }
    h.check_ids();
}

#[test]
pub(crate) fn an_activity_asked_to_cancel_is_not_retried() {
    let mut h = Harness::start();
    h.complete_wt(vec![schedule_activity("a1", None)]);
    let sched = *h.ms.activities.keys().next().expect("pending");
    let started_at = h.now;
    h.apply(|t| activity::record_started(t, sched, 1, "p1", "w"))
        .expect("starts");
    h.now += Duration::from_secs(3);
    h.apply(|t| {
        workflow_task::schedule(t, 1);
    });
    h.complete_wt(vec![Command {
        attributes: Some(
            command::Attributes::RequestCancelActivityTaskCommandAttributes(
                temper_proto::temporal::api::command::v1::RequestCancelActivityTaskCommandAttributes {
                    scheduled_event_id: sched,
                },
            ),
        ),
        ..Default::default()
    }]);
    assert!(h.ms.activities[&sched].cancel_requested);
    let ai = h.ms.activities[&sched].clone();
    h.now += Duration::from_secs(1);
    // The default policy would retry this failure; the cancel request makes it final.
    h.apply(|t| {
        activity::fail(
            t,
            &ai,
            Failure {
                message: "x".into(),
                ..Default::default()
            },
            "w",
            None,
        )
    });
    assert!(h.ms.activities.is_empty(), "closed, not retried");
    let started = h
        .history
        .iter()
        .find(|e| e.event_type == EventType::ActivityTaskStarted as i32)
        .expect("started event");
    // Written when the attempt ended, stamped with the time it started (as Temporal does).
    assert_eq!(
        started.event_time.as_ref().map(crate::time::from_ts),
        Some(started_at)
    );
    let failed = h
        .history
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskFailedEventAttributes(a)) => Some(a),
            _ => None,
        })
        .expect("failed event");
    assert_eq!(failed.retry_state, RetryState::CancelRequested as i32);
    h.check_ids();
}

#[test]
pub(crate) fn heartbeat_timeout_waits_for_the_latest_heartbeat() {
    let mut h = Harness::start();
    let mut cmd = schedule_activity(
        "a1",
        Some(RetryPolicy {
            maximum_attempts: 1,
            ..Default::default()
        }),
    );
    if let Some(command::Attributes::ScheduleActivityTaskCommandAttributes(a)) =
        cmd.attributes.as_mut()
    {
        a.heartbeat_timeout = dur(Duration::from_secs(2));
    }
    h.complete_wt(vec![cmd]);
    let sched = *h.ms.activities.keys().next().expect("pending");
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts");
    h.now += Duration::from_secs(1);
    h.apply(|t| activity::heartbeat(t, &ai, None));
    h.now += Duration::from_secs(1);
    h.apply(|t| activity::on_timeout(t, sched, 1, TimeoutType::Heartbeat as i32));
    assert!(
        h.last.events.is_empty(),
        "heartbeat 1 s ago: not timed out yet"
    );
    assert_eq!(h.last.timers.len(), 1, "re-armed");
    h.now += Duration::from_secs(1);
    h.apply(|t| activity::on_timeout(t, sched, 1, TimeoutType::Heartbeat as i32));
    assert!(h.types().contains(&EventType::ActivityTaskTimedOut));
    h.check_ids();
}

#[test]
pub(crate) fn bad_command_fails_the_workflow_task_and_keeps_nothing() {
    let mut h = Harness::start();
    let before = h.history.len();
    let bad = Command {
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes::default(),
        )),
        ..Default::default()
    };
    let out = h.complete_wt(vec![schedule_activity("ok", None), bad]);
    assert!(matches!(out, Outcome::Rejected(_)));
    assert!(h.ms.activities.is_empty());
    use EventType as E;
    assert_eq!(
        &h.types()[before..],
        &[
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowTaskScheduled
        ]
    );
    assert_eq!(h.ms.workflow_task.as_ref().map(|w| w.attempt), Some(2));
    h.check_ids();
}

#[test]
pub(crate) fn repeated_workflow_task_failures_lengthen_the_timeout() {
    use temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause;
    let mut h = Harness::start();
    let task_timeout = Duration::from_secs(10);
    for attempt in 1..=4 {
        // Each next attempt is scheduled at once, as in Temporal.
        let wt = h.start_wt();
        assert_eq!(wt.attempt, attempt);
        let timeout = crate::time::from_dur(&wt.start_to_close_timeout);
        if attempt <= 3 {
            assert_eq!(timeout, task_timeout, "attempt {attempt}");
        } else {
            // The fourth attempt may run 5 s longer, less Temporal's jitter.
            assert!(
                timeout >= task_timeout + Duration::from_secs(4)
                    && timeout < task_timeout + Duration::from_secs(5),
                "{timeout:?}"
            );
            // Its timeout timer is armed from that timeout.
            let (at, _) = h
                .last
                .timers
                .iter()
                .find(|(_, t)| t.kind == pb::TimerTaskKind::WorkflowTaskTimeout as i32)
                .cloned()
                .expect("start-to-close timer");
            assert_eq!(at, h.now + timeout);
        }
        h.apply(|t| {
            workflow_task::fail(
                t,
                &wt,
                WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                None,
                "w",
            )
        });
        assert!(
            h.last
                .timers
                .iter()
                .all(|(_, t)| t.kind != pb::TimerTaskKind::WorkflowTaskRetry as i32)
        );
    }
    assert_eq!(h.ms.workflow_task.as_ref().map(|w| w.attempt), Some(5));
    h.check_ids();
}

#[test]
pub(crate) fn a_history_past_its_limit_terminates_the_run() {
    let mut h = Harness::start();
    h.limits.max_history_events = 12;
    let marker = || Command {
        attributes: Some(command::Attributes::RecordMarkerCommandAttributes(
            temper_proto::temporal::api::command::v1::RecordMarkerCommandAttributes {
                marker_name: "m".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    h.complete_wt(vec![
        marker(),
        marker(),
        marker(),
        marker(),
        marker(),
        marker(),
        marker(),
        marker(),
    ]);
    assert_eq!(
        h.history.last().map(|e| e.event_type),
        Some(EventType::WorkflowExecutionTerminated as i32)
    );
    assert_eq!(
        h.ms.execution_info.as_ref().map(|i| i.status),
        Some(WorkflowExecutionStatus::Terminated as i32)
    );
    h.check_ids();
}

fn start_timer(
    timer_id: &str,
    start_to_fire_timeout: Option<temper_proto::wkt::Duration>,
) -> Command {
    Command {
        attributes: Some(command::Attributes::StartTimerCommandAttributes(
            StartTimerCommandAttributes {
                timer_id: timer_id.into(),
                start_to_fire_timeout,
            },
        )),
        ..Default::default()
    }
}

#[test]
pub(crate) fn a_zero_or_absent_timer_starts_and_is_due_at_once() {
    let mut h = Harness::start();
    let zero = Some(temper_proto::wkt::Duration::default());
    let out = h.complete_wt(vec![start_timer("zero", zero), start_timer("absent", None)]);
    assert!(matches!(out, Outcome::Completed { closed: false, .. }));
    let started: Vec<_> = h
        .last
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::TimerStartedEventAttributes(a)) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 2);
    assert_eq!(started[0].start_to_fire_timeout, zero, "recorded as sent");
    assert_eq!(started[1].start_to_fire_timeout, None);
    let due: Vec<_> = h.last.timers.iter().map(|(at, _)| *at).collect();
    assert_eq!(due, vec![h.now, h.now]);
    assert_eq!(h.ms.timers.len(), 2);
    let started_id = h.ms.timers["zero"].started_event_id;
    h.apply(|t| timer::on_fire(t, "zero", started_id));
    assert_eq!(h.types().last(), Some(&EventType::WorkflowTaskScheduled));
    assert!(!h.ms.timers.contains_key("zero"));
}

#[test]
pub(crate) fn a_negative_timer_fails_the_workflow_task_and_a_huge_one_is_capped() {
    let mut h = Harness::start();
    let neg = Some(temper_proto::wkt::Duration {
        seconds: -1,
        nanos: 0,
    });
    match h.complete_wt(vec![start_timer("t", neg)]) {
        Outcome::Rejected(bad) => {
            assert_eq!(
                bad.cause,
                temper_proto::temporal::api::enums::v1::WorkflowTaskFailedCause::BadStartTimerAttributes
            );
            assert_eq!(
                bad.message,
                "An invalid StartToFireTimeout is set on StartTimerCommand: negative duration. TimerId=t"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut h = Harness::start();
    let huge = Some(temper_proto::wkt::Duration {
        seconds: i64::MAX / 2,
        nanos: 0,
    });
    h.complete_wt(vec![start_timer("t", huge)]);
    let recorded = h.last.events.iter().find_map(|e| match &e.attributes {
        Some(Attributes::TimerStartedEventAttributes(a)) => a.start_to_fire_timeout,
        _ => None,
    });
    assert_eq!(
        recorded.map(|d| d.seconds),
        Some(crate::time::MAX_DURATION_SECS)
    );
}

#[test]
pub(crate) fn a_commands_user_metadata_is_on_its_first_event_and_counted() {
    use temper_proto::temporal::api::common::v1::Payload;
    use temper_proto::temporal::api::sdk::v1::UserMetadata;
    let mut h = Harness::start();
    let metadata = UserMetadata {
        summary: Some(Payload {
            data: b"\"a nap\"".to_vec(),
            ..Default::default()
        }),
        details: None,
    };
    let mut with_metadata = start_timer("t1", dur(Duration::from_secs(1)));
    with_metadata.user_metadata = Some(metadata.clone());
    // The replay check (Harness::apply) also compares the history size it counts.
    h.complete_wt(vec![
        with_metadata,
        start_timer("t2", dur(Duration::from_secs(1))),
    ]);
    let timers: Vec<_> = h
        .last
        .events
        .iter()
        .filter(|e| e.event_type == EventType::TimerStarted as i32)
        .collect();
    assert_eq!(timers.len(), 2);
    assert_eq!(timers[0].user_metadata, Some(metadata));
    assert_eq!(timers[1].user_metadata, None);
    use prost::Message;
    let written: i64 = h.history.iter().map(|e| e.encoded_len() as i64).sum();
    let counted =
        h.ms.execution_info
            .as_ref()
            .expect("info")
            .history_size_bytes;
    assert_eq!(counted, written, "the metadata counts in the history size");
}
