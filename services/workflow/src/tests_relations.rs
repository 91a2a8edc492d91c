//! Scenario tests for workflows that start children, act on other workflows, continue as
//! new, retry or run on a cron schedule, and upsert their properties.

#![allow(deprecated)]

use std::time::Duration;

use temper_proto::temporal::api::command::v1::{
    Command, ContinueAsNewWorkflowExecutionCommandAttributes,
    FailWorkflowExecutionCommandAttributes, ModifyWorkflowPropertiesCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
    UpsertWorkflowSearchAttributesCommandAttributes, command::Attributes as C,
};
use temper_proto::temporal::api::common::v1::{
    Memo, Payload, Payloads, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType,
};
use temper_proto::temporal::api::enums::v1::{
    ContinueAsNewInitiator, EventType as E, ParentClosePolicy, RetryState,
    StartChildWorkflowExecutionFailedCause, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::failure::v1::Failure;
use temper_proto::temporal::api::history::v1::{
    HistoryEvent, WorkflowExecutionCompletedEventAttributes, history_event::Attributes,
};

use crate::completion::Outcome;
use crate::tests::{Harness, complete_cmd};
use crate::time::{dur, from_ts};
use crate::{child, external, pb, start};

fn cmd(a: C) -> Command {
    Command {
        attributes: Some(a),
        ..Default::default()
    }
}

fn start_child_cmd(id: &str) -> Command {
    cmd(C::StartChildWorkflowExecutionCommandAttributes(
        StartChildWorkflowExecutionCommandAttributes {
            workflow_id: id.into(),
            workflow_type: Some(WorkflowType {
                name: "Child".into(),
            }),
            ..Default::default()
        },
    ))
}

fn payloads(s: &str) -> Option<Payloads> {
    Some(Payloads {
        payloads: vec![Payload {
            data: s.as_bytes().to_vec(),
            ..Default::default()
        }],
    })
}

fn completed_event(result: &str) -> HistoryEvent {
    HistoryEvent {
        event_type: E::WorkflowExecutionCompleted as i32,
        attributes: Some(Attributes::WorkflowExecutionCompletedEventAttributes(
            WorkflowExecutionCompletedEventAttributes {
                result: payloads(result),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn child_exec(id: &str) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: id.into(),
        run_id: "child-run".into(),
    }
}

#[test]
pub(crate) fn child_lifecycle_events_in_the_parent() {
    let mut h = Harness::start();
    h.complete_wt(vec![start_child_cmd("kid")]);
    let initiated = *h.ms.children.keys().next().expect("child pending");
    let ci = &h.ms.children[&initiated];
    assert_eq!(ci.parent_close_policy, ParentClosePolicy::Terminate as i32);
    assert_eq!(ci.started_event_id, 0);
    assert_eq!(
        h.last.transfer[0].kind,
        pb::TransferTaskKind::StartChild as i32
    );
    // Closing before the start is recorded must wait.
    let early =
        h.apply(|t| child::on_closed(t, initiated, child_exec("kid"), &completed_event("r")));
    assert!(matches!(early, Err(crate::WorkflowError::Unavailable(_))));
    h.apply(|t| child::on_started(t, initiated, "ns", "child-run", None))
        .expect("started");
    // A repeated start report is a no-op.
    h.apply(|t| child::on_started(t, initiated, "ns", "child-run", None))
        .expect("repeat");
    h.complete_wt(vec![]);
    h.apply(|t| child::on_closed(t, initiated, child_exec("kid"), &completed_event("r")))
        .expect("closed");
    assert!(h.ms.children.is_empty());
    h.complete_wt(vec![complete_cmd()]);
    assert_eq!(
        h.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::StartChildWorkflowExecutionInitiated,
            E::ChildWorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::ChildWorkflowExecutionCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
    h.check_ids();
    match &h.history[9].attributes {
        Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
            assert_eq!(a.initiated_event_id, 5);
            assert_eq!(a.started_event_id, 6);
            assert_eq!(a.result, payloads("r"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
pub(crate) fn child_started_and_closed_during_a_workflow_task_are_fixed_up_on_flush() {
    let mut h = Harness::start();
    h.complete_wt(vec![start_child_cmd("kid")]);
    let initiated = *h.ms.children.keys().next().expect("child pending");
    // Another workflow task is in flight (a signal arrived) while the child starts and ends.
    h.apply(|t| {
        crate::signal::signal(
            t,
            crate::signal::Signal {
                name: "s",
                input: None,
                identity: "c",
                header: None,
                request_id: "",
                external_execution: None,
                links: Vec::new(),
            },
        )
    })
    .expect("signal");
    let wt = h.start_wt();
    h.apply(|t| child::on_started(t, initiated, "ns", "child-run", None))
        .expect("started");
    h.apply(|t| child::on_closed(t, initiated, child_exec("kid"), &completed_event("r")))
        .expect("closed");
    assert_eq!(h.ms.buffered_events.len(), 2);
    let _ = wt;
    let wt = h.ms.workflow_task.clone().expect("in flight");
    h.apply(|t| {
        crate::commands::complete_workflow_task(
            t,
            &wt,
            crate::completion::Completion {
                worker: Default::default(),
                commands: &[],
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
    h.check_ids();
    let started_id = h
        .history
        .iter()
        .find(|e| e.event_type == E::ChildWorkflowExecutionStarted as i32)
        .expect("started written")
        .event_id;
    let completed = h
        .history
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => Some(a),
            _ => None,
        })
        .expect("completed written");
    assert_eq!(completed.started_event_id, started_id);
}

#[test]
pub(crate) fn child_start_failure_and_pending_child_limit() {
    let mut h = Harness::start();
    h.limits.max_pending_children = 1;
    h.complete_wt(vec![start_child_cmd("kid")]);
    let initiated = *h.ms.children.keys().next().expect("child pending");
    let Some(Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a)) =
        h.history[4].attributes.clone()
    else {
        panic!("initiated event expected");
    };
    h.apply(|t| {
        child::on_start_failed(
            t,
            initiated,
            &a,
            StartChildWorkflowExecutionFailedCause::WorkflowAlreadyExists,
        )
    })
    .expect("failed");
    assert!(h.ms.children.is_empty());
    assert_eq!(
        h.types().last(),
        Some(&E::WorkflowTaskScheduled),
        "the parent gets a workflow task"
    );
    assert_eq!(
        h.history[h.history.len() - 2].event_type,
        E::StartChildWorkflowExecutionFailed as i32
    );
    // Two children at once exceed a limit of one.
    let out = h.complete_wt(vec![start_child_cmd("a"), start_child_cmd("b")]);
    match out {
        Outcome::Rejected(bad) => assert_eq!(
            bad.cause,
            WorkflowTaskFailedCause::PendingChildWorkflowsLimitExceeded
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        h.ms.children.is_empty(),
        "a rejected completion keeps nothing"
    );
}

#[test]
pub(crate) fn external_signal_outcomes() {
    let mut h = Harness::start();
    let signal = |id: &str| {
        cmd(C::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                execution: Some(WorkflowExecution {
                    workflow_id: id.into(),
                    run_id: String::new(),
                }),
                signal_name: "go".into(),
                ..Default::default()
            },
        ))
    };
    h.complete_wt(vec![signal("t1"), signal("t2")]);
    assert_eq!(h.ms.signals.len(), 2);
    let ids: Vec<i64> = h.ms.signals.keys().copied().collect();
    let attrs = |h: &Harness, id: i64| match h.history[id as usize - 1].attributes.clone() {
        Some(Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a)) => a,
        other => panic!("unexpected {other:?}"),
    };
    let (a1, a2) = (attrs(&h, ids[0]), attrs(&h, ids[1]));
    h.apply(|t| external::on_signal_result(t, ids[0], &a1, "ns", true))
        .expect("ok");
    h.apply(|t| external::on_signal_result(t, ids[1], &a2, "ns", false))
        .expect("failed");
    // Repeats are no-ops.
    h.apply(|t| external::on_signal_result(t, ids[1], &a2, "ns", false))
        .expect("repeat");
    assert!(h.ms.signals.is_empty());
    let tail: Vec<E> = h.types().into_iter().skip(4).collect();
    assert_eq!(
        tail,
        vec![
            E::SignalExternalWorkflowExecutionInitiated,
            E::SignalExternalWorkflowExecutionInitiated,
            E::ExternalWorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
            E::SignalExternalWorkflowExecutionFailed,
        ]
    );
    h.check_ids();
}

fn can_cmd(input: &str) -> Command {
    cmd(C::ContinueAsNewWorkflowExecutionCommandAttributes(
        ContinueAsNewWorkflowExecutionCommandAttributes {
            input: payloads(input),
            ..Default::default()
        },
    ))
}

#[test]
pub(crate) fn continue_as_new_creates_the_next_run_in_the_same_mutation() {
    let mut h = Harness::start();
    h.complete_wt(vec![can_cmd("next")]);
    let info = h.ms.execution_info.clone().expect("info");
    assert_eq!(info.status, WorkflowExecutionStatus::ContinuedAsNew as i32);
    let new_run = h.last.new_run.clone().expect("a new run");
    let new_info = new_run.ms.execution_info.clone().expect("info");
    assert_ne!(new_info.run_id, info.run_id);
    assert_eq!(new_info.workflow_id, info.workflow_id);
    assert_eq!(new_info.first_run_id, info.first_run_id);
    match &h.history.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionContinuedAsNewEventAttributes(a)) => {
            assert_eq!(a.new_execution_run_id, new_info.run_id);
            assert_eq!(a.input, payloads("next"));
            // The command's initiator as given, as the Temporal server records it.
            assert_eq!(a.initiator, ContinueAsNewInitiator::Unspecified as i32);
        }
        other => panic!("unexpected {other:?}"),
    }
    match new_run
        .mutation
        .events
        .first()
        .and_then(|e| e.attributes.clone())
    {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
            assert_eq!(a.initiator, ContinueAsNewInitiator::Workflow as i32);
            assert_eq!(a.continued_execution_run_id, info.run_id);
        }
        other => panic!("unexpected {other:?}"),
    }
    let types: Vec<i32> = new_run
        .mutation
        .events
        .iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        vec![
            E::WorkflowExecutionStarted as i32,
            E::WorkflowTaskScheduled as i32
        ]
    );
    match &new_run.mutation.events[0].attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
            assert_eq!(a.continued_execution_run_id, info.run_id);
            assert_eq!(a.input, payloads("next"));
            assert_eq!(a.workflow_type.as_ref().map(|t| t.name.as_str()), Some("W"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
pub(crate) fn continue_as_new_is_refused_while_new_events_wait() {
    let mut h = Harness::start();
    h.start_wt();
    h.apply(|t| {
        crate::signal::signal(
            t,
            crate::signal::Signal {
                name: "s",
                input: None,
                identity: "c",
                header: None,
                request_id: "",
                external_execution: None,
                links: Vec::new(),
            },
        )
    })
    .expect("signal");
    let wt = h.ms.workflow_task.clone().expect("in flight");
    let out = h.apply(|t| {
        crate::commands::complete_workflow_task(
            t,
            &wt,
            crate::completion::Completion {
                worker: Default::default(),
                commands: &[can_cmd("x")],
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
    assert!(
        h.last.new_run.is_none(),
        "no new run from a rejected completion"
    );
    assert!(
        h.ms.execution_info
            .as_ref()
            .is_some_and(|i| i.status == WorkflowExecutionStatus::Running as i32)
    );
}

#[test]
pub(crate) fn workflow_retry_policy_starts_the_next_attempt_after_its_backoff() {
    let mut h = Harness::start();
    // Set on the state, not in the history: replay would not know it.
    h.check_replay = false;
    h.ms.execution_info.as_mut().expect("info").retry_policy =
        Some(crate::retry::with_defaults(RetryPolicy {
            initial_interval: dur(Duration::from_secs(2)),
            maximum_attempts: 2,
            ..Default::default()
        }));
    let fail = cmd(C::FailWorkflowExecutionCommandAttributes(
        FailWorkflowExecutionCommandAttributes {
            failure: Some(Failure {
                message: "boom".into(),
                ..Default::default()
            }),
        },
    ));
    h.complete_wt(vec![fail.clone()]);
    match &h.history.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
            assert_eq!(a.retry_state, RetryState::InProgress as i32);
            assert!(!a.new_execution_run_id.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    let next = h.last.new_run.clone().expect("retry run");
    let info = next.ms.execution_info.clone().expect("info");
    assert_eq!(info.attempt, 2);
    // The first workflow task waits for the backoff: no task yet, a backoff timer instead.
    assert!(next.ms.workflow_task.is_none());
    assert_eq!(
        next.mutation.events.len(),
        1,
        "only WorkflowExecutionStarted until the backoff ends"
    );
    let (at, timer) = &next.mutation.timers[0];
    assert_eq!(timer.kind, pb::TimerTaskKind::WorkflowBackoff as i32);
    assert_eq!(*at, h.now + Duration::from_secs(2));
    match &next.mutation.events[0].attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
            assert_eq!(a.attempt, 2);
            assert_eq!(a.initiator, ContinueAsNewInitiator::Retry as i32);
            assert_eq!(a.first_workflow_task_backoff, dur(Duration::from_secs(2)));
            assert_eq!(
                a.continued_failure.as_ref().map(|f| f.message.as_str()),
                Some("boom")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // The second attempt runs out of attempts: no further run.
    let mut h2 = Harness {
        ms: next.ms,
        history: next.mutation.events,
        now: h.now + Duration::from_secs(2),
        limits: h.limits.clone(),
        last: Default::default(),
        check_replay: true,
    };
    // A signal during the backoff does not schedule the first task early.
    h2.apply(|t| {
        crate::signal::signal(
            t,
            crate::signal::Signal {
                name: "s",
                input: None,
                identity: "c",
                header: None,
                request_id: "",
                external_execution: None,
                links: Vec::new(),
            },
        )
    })
    .expect("signal");
    assert!(h2.ms.workflow_task.is_none());
    h2.apply(start::on_backoff_timer);
    assert!(h2.ms.workflow_task.is_some());
    h2.complete_wt(vec![fail]);
    match &h2.history.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
            assert_eq!(a.retry_state, RetryState::MaximumAttemptsReached as i32);
            assert!(a.new_execution_run_id.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(h2.last.new_run.is_none());
}

#[test]
pub(crate) fn cron_runs_continue_after_completion_with_the_last_result() {
    let mut h = Harness::start();
    // Set on the state, not in the history: replay would not know it.
    h.check_replay = false;
    h.ms.execution_info.as_mut().expect("info").cron_schedule = "@every 10s".into();
    h.now += Duration::from_secs(3);
    let complete = cmd(C::CompleteWorkflowExecutionCommandAttributes(
        temper_proto::temporal::api::command::v1::CompleteWorkflowExecutionCommandAttributes {
            result: payloads("1"),
        },
    ));
    h.complete_wt(vec![complete]);
    let next = h.last.new_run.clone().expect("next cron run");
    let info = next.ms.execution_info.clone().expect("info");
    assert_eq!(info.last_completion_result, payloads("1"));
    assert_eq!(info.attempt, 1);
    let backoff_until = info
        .first_workflow_task_backoff_until
        .as_ref()
        .map(from_ts)
        .expect("waits");
    assert_eq!(
        backoff_until,
        h.now + Duration::from_secs(7),
        "the next 10 s boundary"
    );
    match &next.mutation.events[0].attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => {
            assert_eq!(a.initiator, ContinueAsNewInitiator::CronSchedule as i32);
            assert_eq!(a.last_completion_result, payloads("1"));
            assert_eq!(a.cron_schedule, "@every 10s");
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn payload_json(s: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[test]
pub(crate) fn search_attributes_and_memo_merge_and_remove() {
    let mut h = Harness::start();
    let upsert = |k: &str, v: &str| {
        cmd(C::UpsertWorkflowSearchAttributesCommandAttributes(
            UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: Some(SearchAttributes {
                    indexed_fields: [(k.to_string(), payload_json(v))].into(),
                }),
            },
        ))
    };
    let memo = |k: &str, v: &str| {
        cmd(C::ModifyWorkflowPropertiesCommandAttributes(
            ModifyWorkflowPropertiesCommandAttributes {
                upserted_memo: Some(Memo {
                    fields: [(k.to_string(), payload_json(v))].into(),
                }),
            },
        ))
    };
    h.complete_wt(vec![upsert("A", "1"), upsert("B", "2"), memo("m", "\"x\"")]);
    h.apply(|t| crate::workflow_task::schedule(t, 1));
    h.complete_wt(vec![upsert("A", "null")]);
    let info = h.ms.execution_info.clone().expect("info");
    let sa = info.search_attributes.expect("search attributes");
    // BuildIds: the unversioned worker's tasks (Temporal's reachability attribute).
    let mut keys = sa.indexed_fields.keys().collect::<Vec<_>>();
    keys.sort();
    assert_eq!(keys, vec!["B", "BuildIds"]);
    assert!(info.memo.expect("memo").fields.contains_key("m"));
    assert!(h.types().contains(&E::UpsertWorkflowSearchAttributes));
    assert!(h.types().contains(&E::WorkflowPropertiesModified));
    // An empty upsert is a bad command.
    h.apply(|t| crate::workflow_task::schedule(t, 1));
    let out = h.complete_wt(vec![cmd(
        C::UpsertWorkflowSearchAttributesCommandAttributes(
            UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: None,
            },
        ),
    )]);
    assert!(matches!(
        out,
        Outcome::Rejected(b) if b.cause == WorkflowTaskFailedCause::BadSearchAttributes
    ));
}

#[test]
pub(crate) fn workflow_tasks_suggest_continue_as_new_past_the_threshold() {
    let mut h = Harness::start();
    h.limits.suggest_continue_as_new_events = 100;
    h.start_wt();
    let suggested = |h: &Harness| match h.history.last().and_then(|e| e.attributes.clone()) {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => a.suggest_continue_as_new,
        other => panic!("unexpected {other:?}"),
    };
    assert!(!suggested(&h));
    let mut h = Harness::start();
    h.limits.suggest_continue_as_new_events = 2;
    h.start_wt();
    assert!(suggested(&h));
}

#[test]
pub(crate) fn pending_limits_fail_the_workflow_task_with_temporals_causes() {
    use temper_proto::temporal::api::command::v1::{
        RequestCancelExternalWorkflowExecutionCommandAttributes,
        ScheduleActivityTaskCommandAttributes,
    };
    use temper_proto::temporal::api::common::v1::ActivityType;
    let activity = |id: &str| {
        cmd(C::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: id.into(),
                activity_type: Some(ActivityType { name: "A".into() }),
                start_to_close_timeout: dur(Duration::from_secs(10)),
                ..Default::default()
            },
        ))
    };
    let signal = |id: &str| {
        cmd(C::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                execution: Some(WorkflowExecution {
                    workflow_id: id.into(),
                    run_id: String::new(),
                }),
                signal_name: "go".into(),
                ..Default::default()
            },
        ))
    };
    let cancel = |id: &str| {
        cmd(C::RequestCancelExternalWorkflowExecutionCommandAttributes(
            RequestCancelExternalWorkflowExecutionCommandAttributes {
                workflow_id: id.into(),
                ..Default::default()
            },
        ))
    };
    type Case = (
        Vec<Command>,
        WorkflowTaskFailedCause,
        fn(&mut crate::Limits),
    );
    let cases: Vec<Case> = vec![
        (
            vec![activity("a"), activity("b")],
            WorkflowTaskFailedCause::PendingActivitiesLimitExceeded,
            |l| l.max_pending_activities = 1,
        ),
        (
            vec![signal("a"), signal("b")],
            WorkflowTaskFailedCause::PendingSignalsLimitExceeded,
            |l| l.max_pending_signals = 1,
        ),
        (
            vec![cancel("a"), cancel("b")],
            WorkflowTaskFailedCause::PendingRequestCancelLimitExceeded,
            |l| l.max_pending_cancel_requests = 1,
        ),
    ];
    for (commands, cause, limit) in cases {
        let mut h = Harness::start();
        limit(&mut h.limits);
        match h.complete_wt(commands.clone()) {
            Outcome::Rejected(bad) => assert_eq!(bad.cause, cause),
            other => panic!("{cause:?}: unexpected {other:?}"),
        }
        assert!(h.ms.activities.is_empty() && h.ms.signals.is_empty());
        assert!(h.ms.request_cancels.is_empty());
        // One command alone is within the limit.
        let mut h = Harness::start();
        limit(&mut h.limits);
        assert!(matches!(
            h.complete_wt(commands[..1].to_vec()),
            Outcome::Completed { .. }
        ));
    }
}
