//! Rebuilding mutable state from history and resetting: a run driven through the live state
//! machine, then replayed from its history, must hold the same pending state; a reset run's
//! history and state follow Temporal's.

#![allow(deprecated)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::command::v1::{
    Command, ModifyWorkflowPropertiesCommandAttributes,
    RequestCancelExternalWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes, StartChildWorkflowExecutionCommandAttributes,
    StartTimerCommandAttributes, UpsertWorkflowSearchAttributesCommandAttributes,
    command::Attributes as C,
};
use temper_proto::temporal::api::common::v1::{
    ActivityType, Memo, Payload, Payloads, SearchAttributes, WorkflowExecution, WorkflowType,
};
use temper_proto::temporal::api::enums::v1::{
    EventType as E, ResetReapplyExcludeType, ResetReapplyType, TaskQueueKind, TimeoutType,
    WorkflowExecutionStatus, WorkflowTaskFailedCause,
};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

use crate::rebuild::{RebuildRun, rebuild, resume, resume_workflow_task};
use crate::reset::{Reset, reapplies_signals, reset};
use crate::start::{NewRun, new_execution};
use crate::tests::Harness;
use crate::time::{dur, from_ts, ts};
use crate::{
    Limits, Txn, WorkflowError, activity, child, close, external, pb, signal, speculative, timer,
};

fn cmd(a: C) -> Command {
    Command {
        attributes: Some(a),
        ..Default::default()
    }
}

fn activity_cmd(id: &str, schedule_to_close: Duration) -> Command {
    cmd(C::ScheduleActivityTaskCommandAttributes(
        ScheduleActivityTaskCommandAttributes {
            activity_id: id.into(),
            activity_type: Some(ActivityType { name: "A".into() }),
            start_to_close_timeout: dur(Duration::from_secs(10)),
            schedule_to_close_timeout: dur(schedule_to_close),
            heartbeat_timeout: dur(Duration::from_secs(3)),
            input: payloads(id),
            ..Default::default()
        },
    ))
}

fn timer_cmd(id: &str, after: Duration) -> Command {
    cmd(C::StartTimerCommandAttributes(
        StartTimerCommandAttributes {
            timer_id: id.into(),
            start_to_fire_timeout: dur(after),
        },
    ))
}

fn child_cmd(id: &str) -> Command {
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
        payloads: vec![payload(s)],
    })
}

fn payload(s: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: format!("\"{s}\"").into_bytes(),
        ..Default::default()
    }
}

fn send_signal(h: &mut Harness, name: &str, request_id: &str) {
    h.apply(|t| {
        signal::signal(
            t,
            signal::Signal {
                name,
                input: payloads(name),
                identity: "client",
                header: None,
                request_id,
                external_execution: None,
                links: Vec::new(),
            },
        )
    })
    .expect("signal");
}

/// The run the harness drives.
fn run() -> RebuildRun<'static> {
    RebuildRun {
        namespace_id: "ns",
        namespace: "",
        workflow_id: "wf",
        run_id: "run",
        request_id: "r",
    }
}

/// What the history cannot tell: cleared on the live state before comparing.
fn normalised(mut ms: pb::MutableState) -> pb::MutableState {
    let info = ms.execution_info.as_mut().expect("info");
    info.state_transition_count = 0;
    info.cancel_request_id.clear();
    info.sticky_task_queue.clear();
    info.sticky_schedule_to_start_timeout = None;
    info.sticky_worker_identity.clear();
    info.sticky_last_updated = None;
    // A continue-as-new sets when the closing run's reset points expire (the namespace's
    // retention); no event says so.
    for p in info
        .auto_reset_points
        .iter_mut()
        .flat_map(|r| r.points.iter_mut())
    {
        p.expire_time = None;
    }
    for ai in ms.activities.values_mut() {
        // An attempt in flight writes its started event only when it ends.
        ai.started_time = None;
        ai.started_identity.clear();
        ai.start_request_id.clear();
        ai.last_worker_identity.clear();
        ai.last_heartbeat_time = None;
        ai.heartbeat_details = None;
        ai.heartbeat_timer_pending = false;
        // Retries write no event (as in Temporal): the history knows the first attempt.
        ai.attempt = 1;
        ai.retry_time = None;
        ai.last_failure = None;
        ai.scheduled_time = ai.first_scheduled_time;
        // An operator's pause and reset write no event (as in Temporal).
        ai.paused = false;
        ai.pause_info = None;
        ai.activity_reset = false;
        ai.reset_heartbeats = false;
    }
    ms
}

thread_local! {
    /// The event types of every history [`assert_replays`] checked on this thread.
    static CHECKED: RefCell<BTreeSet<i32>> = const { RefCell::new(BTreeSet::new()) };
}

/// Replaying `history` gives the live state `live` (as stored, less what the history cannot
/// tell). The test harnesses check this after every transaction, so a change to the live
/// path that replay does not make (or the other way round) fails the tests that drive it.
pub(crate) fn assert_replays(live: &pb::MutableState, history: &[HistoryEvent]) {
    if !live.buffered_events.is_empty() {
        // Applied already, written when the workflow task ends: checked then.
        return;
    }
    let live = normalised(speculative::persisted_view(live).into_owned());
    let info = live.execution_info.as_ref().expect("info");
    let run = RebuildRun {
        namespace_id: &info.namespace_id,
        namespace: &info.namespace,
        workflow_id: &info.workflow_id,
        run_id: &info.run_id,
        request_id: &info.create_request_id,
    };
    let mut rebuilt = rebuild(history, run).expect("rebuild");
    let continued = matches!(
        history.first().and_then(|e| e.attributes.as_ref()),
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a))
            if !a.continued_execution_run_id.is_empty()
    );
    if let (true, Some(i)) = (continued, rebuilt.execution_info.as_mut()) {
        // Known gap: a continued run keeps its chain's root, which its started event does
        // not name unless it is a child (as from the Temporal server).
        i.root_execution = info.root_execution.clone();
    }
    if let (Some(r), Some(l)) = (rebuilt.workflow_task.as_mut(), live.workflow_task.as_ref())
        && let (Some(rq), Some(lq)) = (r.task_queue.as_ref(), l.task_queue.as_ref())
        && rq.kind == TaskQueueKind::Sticky as i32
        && lq.kind != TaskQueueKind::Sticky as i32
        && rq.normal_name == lq.name
    {
        // A task scheduled on the sticky queue whose worker was gone moved to the normal
        // queue without an event (workflow_task::move_to_normal_queue, as in Temporal): the
        // history still names the sticky queue.
        r.task_queue = l.task_queue.clone();
    }
    assert_eq!(
        rebuilt,
        live,
        "replaying the history gives the live state; history: {:?}",
        history
            .iter()
            .map(|e| E::try_from(e.event_type).map(|t| t.as_str_name()))
            .collect::<Vec<_>>()
    );
    CHECKED.with(|c| c.borrow_mut().extend(history.iter().map(|e| e.event_type)));
}

/// A workflow with activities (pending, in flight, completed), timers (pending, fired,
/// canceled), signals, children (started, not started), an external signal and cancel,
/// search attributes, memo and a cancel request, left with a workflow task in flight.
fn busy_workflow() -> Harness {
    let mut h = Harness::start();
    h.complete_wt(vec![
        activity_cmd("pending", Duration::from_secs(600)),
        activity_cmd("in-flight", Duration::ZERO),
        activity_cmd("done", Duration::ZERO),
        timer_cmd("long", Duration::from_secs(3600)),
        timer_cmd("short", Duration::from_secs(5)),
        timer_cmd("dropped", Duration::from_secs(50)),
        child_cmd("kid-started"),
        child_cmd("kid-pending"),
        cmd(C::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                execution: Some(WorkflowExecution {
                    workflow_id: "other".into(),
                    run_id: String::new(),
                }),
                signal_name: "poke".into(),
                ..Default::default()
            },
        )),
        cmd(C::RequestCancelExternalWorkflowExecutionCommandAttributes(
            RequestCancelExternalWorkflowExecutionCommandAttributes {
                workflow_id: "other".into(),
                ..Default::default()
            },
        )),
        cmd(C::UpsertWorkflowSearchAttributesCommandAttributes(
            UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: Some(SearchAttributes {
                    indexed_fields: [("CustomKeywordField".to_string(), payload("v1"))].into(),
                }),
            },
        )),
        cmd(C::ModifyWorkflowPropertiesCommandAttributes(
            ModifyWorkflowPropertiesCommandAttributes {
                upserted_memo: Some(Memo {
                    fields: [("note".to_string(), payload("hello"))].into(),
                }),
            },
        )),
    ]);
    let by_id = |h: &Harness, id: &str| {
        h.ms.activities
            .values()
            .find(|a| a.activity_id == id)
            .expect("activity")
            .scheduled_event_id
    };
    h.now += Duration::from_secs(1);
    let done = by_id(&h, "done");
    let ai = h
        .apply(|t| activity::record_started(t, done, 1, "p1", "w"))
        .expect("started");
    h.apply(|t| activity::complete(t, &ai, payloads("ok"), "w"));
    let in_flight = by_id(&h, "in-flight");
    h.apply(|t| activity::record_started(t, in_flight, 1, "p2", "w"))
        .expect("started");
    let started_kid = *h
        .ms
        .children
        .iter()
        .find(|(_, c)| c.workflow_id == "kid-started")
        .expect("child")
        .0;
    h.apply(|t| child::on_started(t, started_kid, "ns", "kid-run", None))
        .expect("child started");
    h.now += Duration::from_secs(5);
    let short = h.ms.timers["short"].started_event_id;
    h.apply(|t| timer::on_fire(t, "short", short));
    send_signal(&mut h, "first", "sig-1");
    let signal_initiated = *h.ms.signals.keys().next().expect("pending signal");
    let initiated = match h.history[signal_initiated as usize - 1].attributes.clone() {
        Some(Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a)) => a,
        other => panic!("unexpected {other:?}"),
    };
    h.apply(|t| external::on_signal_result(t, signal_initiated, &initiated, "ns", true))
        .expect("signal delivered");
    h.complete_wt(vec![
        cmd(C::CancelTimerCommandAttributes(
            temper_proto::temporal::api::command::v1::CancelTimerCommandAttributes {
                timer_id: "dropped".into(),
            },
        )),
        activity_cmd("later", Duration::ZERO),
        cmd(C::UpsertWorkflowSearchAttributesCommandAttributes(
            UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: Some(SearchAttributes {
                    indexed_fields: [("CustomIntField".to_string(), payload("7"))].into(),
                }),
            },
        )),
    ]);
    h.now += Duration::from_secs(2);
    h.apply(|t| close::request_cancel(t, "stop", "client", "cancel-1"))
        .expect("cancel requested");
    send_signal(&mut h, "second", "sig-2");
    h.start_wt();
    h
}

#[test]
fn replaying_a_busy_history_gives_the_live_pending_state() {
    let h = busy_workflow();
    h.check_ids();
    let rebuilt = rebuild(&h.history, run()).expect("rebuild");
    let live = normalised(h.ms.clone());
    // Spot checks first, so a failure says what differs before the full comparison.
    assert_eq!(rebuilt.next_event_id, live.next_event_id);
    let mut ids: Vec<&String> = rebuilt
        .activities
        .values()
        .map(|a| &a.activity_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["in-flight", "later", "pending"]);
    let mut timers: Vec<&String> = rebuilt.timers.keys().collect();
    timers.sort();
    assert_eq!(timers, ["long"]);
    assert_eq!(rebuilt.children.len(), 2);
    assert!(
        rebuilt.signals.is_empty(),
        "the external signal was delivered"
    );
    assert_eq!(rebuilt.request_cancels.len(), 1);
    let info = rebuilt.execution_info.as_ref().expect("info");
    assert!(info.cancel_requested);
    assert_eq!(info.signal_count, 2);
    assert_eq!(info.child_count, 2);
    // Two upserted, and BuildIds of the workflow tasks' unversioned worker.
    assert_eq!(
        info.search_attributes
            .as_ref()
            .map(|s| s.indexed_fields.len()),
        Some(3)
    );
    assert_eq!(
        rebuilt
            .workflow_task
            .as_ref()
            .map(|w| w.started_event_id > 0),
        Some(true),
        "the workflow task in flight"
    );
    assert_eq!(rebuilt.activities, live.activities);
    assert_eq!(rebuilt.timers, live.timers);
    assert_eq!(rebuilt.children, live.children);
    assert_eq!(rebuilt.request_cancels, live.request_cancels);
    assert_eq!(rebuilt.workflow_task, live.workflow_task);
    assert_eq!(rebuilt.execution_info, live.execution_info);
    assert_eq!(rebuilt, live);
}

#[test]
fn replaying_a_closed_history_gives_a_closed_run() {
    let mut h = Harness::start();
    h.complete_wt(vec![activity_cmd("a", Duration::ZERO)]);
    h.apply(|t| close::terminate(t, "enough", None, "client"))
        .expect("terminate");
    let rebuilt = rebuild(&h.history, run()).expect("rebuild");
    assert_eq!(rebuilt, normalised(h.ms.clone()));
    let info = rebuilt.execution_info.expect("info");
    assert_eq!(info.status, WorkflowExecutionStatus::Terminated as i32);
    assert_eq!(info.completion_event_id, h.history.len() as i64);
}

#[test]
fn rebuild_refuses_a_history_that_does_not_start_or_has_gaps() {
    let h = busy_workflow();
    assert!(matches!(
        rebuild(&h.history[1..], run()),
        Err(WorkflowError::Internal(_))
    ));
    let mut gap = h.history.clone();
    gap.remove(3);
    assert!(matches!(
        rebuild(&gap, run()),
        Err(WorkflowError::Internal(_))
    ));
    assert!(matches!(
        rebuild(&[], run()),
        Err(WorkflowError::Internal(_))
    ));
}

/// A run with a run timeout, so resuming it arms one.
fn harness_with_run_timeout(timeout: Duration) -> Harness {
    let limits = Limits::default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let req = StartWorkflowExecutionRequest {
        workflow_id: "wf".into(),
        workflow_type: Some(WorkflowType { name: "W".into() }),
        task_queue: Some(TaskQueue {
            name: "tq".into(),
            ..Default::default()
        }),
        workflow_run_timeout: dur(timeout),
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
    Harness {
        ms,
        history: out.events.clone(),
        now,
        limits,
        last: out,
        check_replay: true,
    }
}

#[test]
fn resuming_a_rebuilt_run_dispatches_and_arms_what_is_pending() {
    let mut h = harness_with_run_timeout(Duration::from_secs(3600));
    let started = h.now;
    h.complete_wt(vec![
        activity_cmd("a", Duration::from_secs(600)),
        timer_cmd("t", Duration::from_secs(30)),
        child_cmd("kid"),
    ]);
    let mut ms = rebuild(&h.history, run()).expect("rebuild");
    let limits = Limits::default();
    let now = h.now + Duration::from_secs(3);
    let mut txn = Txn::new(&mut ms, now, &limits);
    resume(&mut txn);
    resume_workflow_task(&mut txn);
    let out = txn.finish();
    assert!(out.events.is_empty(), "resuming writes no event");
    let kinds: Vec<i32> = out.transfer.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        vec![
            pb::TransferTaskKind::ActivityTask as i32,
            pb::TransferTaskKind::StartChild as i32
        ],
        "no workflow task is pending"
    );
    let timer = |kind: pb::TimerTaskKind| {
        out.timers
            .iter()
            .filter(|(_, t)| t.kind == kind as i32)
            .cloned()
            .collect::<Vec<_>>()
    };
    let user = timer(pb::TimerTaskKind::UserTimer);
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].0, h.now + Duration::from_secs(30));
    assert_eq!(user[0].1.timer_id, "t");
    let activity_timeouts = timer(pb::TimerTaskKind::ActivityTimeout);
    assert!(
        activity_timeouts
            .iter()
            .any(|(at, t)| *at == h.now + Duration::from_secs(600)
                && t.timeout_type == TimeoutType::ScheduleToClose as i32),
        "{activity_timeouts:?}"
    );
    let run_timeout = timer(pb::TimerTaskKind::WorkflowRunTimeout);
    assert_eq!(run_timeout.len(), 1);
    assert_eq!(run_timeout[0].0, started + Duration::from_secs(3600));
}

#[test]
fn resuming_a_scheduled_workflow_task_hands_it_to_matching() {
    let h = Harness::start();
    let mut ms = rebuild(&h.history, run()).expect("rebuild");
    let limits = Limits::default();
    let mut txn = Txn::new(&mut ms, h.now, &limits);
    resume(&mut txn);
    resume_workflow_task(&mut txn);
    let out = txn.finish();
    assert_eq!(out.transfer.len(), 1);
    assert_eq!(
        out.transfer[0].kind,
        pb::TransferTaskKind::WorkflowTask as i32
    );
    assert_eq!(out.transfer[0].scheduled_event_id, 2);
}

// ---------------------------------------------------------------------------- reset

fn reset_args<'a>(finish: i64, now: SystemTime) -> Reset<'a> {
    Reset {
        run: RebuildRun {
            namespace_id: "ns",
            namespace: "default",
            workflow_id: "wf",
            run_id: "new-run",
            request_id: "reset-1",
        },
        base_run_id: "run",
        reason: "try again",
        workflow_task_finish_event_id: finish,
        reapply_signals: true,
        base_tail: &[],
        now,
    }
}

/// Started, first workflow task completed (4), a signal, and a second task completed.
fn waiting_for_signals() -> Harness {
    let mut h = Harness::start();
    h.complete_wt(vec![]);
    h.now += Duration::from_secs(1);
    send_signal(&mut h, "late", "sig-late");
    h.complete_wt(vec![]);
    h
}

fn types_of(events: &[HistoryEvent]) -> Vec<E> {
    events
        .iter()
        .map(|e| E::try_from(e.event_type).expect("known type"))
        .collect()
}

#[test]
fn reset_copies_the_prefix_fails_the_task_and_reapplies_later_signals() {
    let h = waiting_for_signals();
    assert_eq!(h.history[3].event_type, E::WorkflowTaskCompleted as i32);
    let now = h.now + Duration::from_secs(10);
    let new = reset(&h.history, &[], reset_args(4, now), &Limits::default()).expect("reset");
    let events = &new.mutation.events;
    assert_eq!(
        types_of(events),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(
        &events[..3],
        &h.history[..3],
        "the prefix is copied as it was"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.event_id, i as i64 + 1);
    }
    match &events[3].attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => {
            assert_eq!(a.cause, WorkflowTaskFailedCause::ResetWorkflow as i32);
            assert_eq!(a.scheduled_event_id, 2);
            assert_eq!(a.started_event_id, 3);
            assert_eq!(a.base_run_id, "run");
            assert_eq!(a.new_run_id, "new-run");
            assert_eq!(a.identity, "history-service");
            assert_eq!(
                a.failure.as_ref().map(|f| f.message.as_str()),
                Some("try again")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match &events[4].attributes {
        Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => {
            assert_eq!(a.signal_name, "late");
            assert_eq!(a.request_id, "sig-late");
            assert_eq!(a.identity, "client");
        }
        other => panic!("unexpected {other:?}"),
    }
    match &events[5].attributes {
        Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => assert_eq!(a.attempt, 1),
        other => panic!("unexpected {other:?}"),
    }
    let ms = &new.ms;
    assert_eq!(ms.next_event_id, 7);
    let info = ms.execution_info.as_ref().expect("info");
    assert_eq!(info.run_id, "new-run");
    assert_eq!(info.first_run_id, "run");
    assert_eq!(info.create_request_id, "reset-1");
    assert_eq!(info.status, WorkflowExecutionStatus::Running as i32);
    assert_eq!(info.start_time, Some(ts(now)), "the new run starts now");
    assert_eq!(info.signal_count, 1);
    assert_eq!(
        info.root_execution.as_ref().map(|r| r.run_id.as_str()),
        Some("new-run")
    );
    assert_eq!(
        ms.workflow_task.as_ref().map(|w| w.scheduled_event_id),
        Some(6)
    );
    let wt_tasks: Vec<_> = new
        .mutation
        .transfer
        .iter()
        .filter(|t| t.kind == pb::TransferTaskKind::WorkflowTask as i32)
        .collect();
    assert_eq!(wt_tasks.len(), 1);
    assert_eq!(wt_tasks[0].scheduled_event_id, 6);
    assert_eq!(wt_tasks[0].run_id, "new-run");
    let expected_size: i64 = events
        .iter()
        .map(|e| prost::Message::encoded_len(e) as i64)
        .sum();
    assert_eq!(info.history_size_bytes, expected_size);
}

#[test]
fn reset_without_reapply_drops_later_signals() {
    let h = waiting_for_signals();
    let mut args = reset_args(4, h.now);
    args.reapply_signals = false;
    let new = reset(&h.history, &[], args, &Limits::default()).expect("reset");
    assert_eq!(
        types_of(&new.mutation.events)[3..],
        [E::WorkflowTaskFailed, E::WorkflowTaskScheduled]
    );
    assert!(!reapplies_signals(ResetReapplyType::None as i32, &[]));
    assert!(!reapplies_signals(
        ResetReapplyType::Unspecified as i32,
        &[ResetReapplyExcludeType::Signal as i32]
    ));
    assert!(reapplies_signals(ResetReapplyType::Unspecified as i32, &[]));
    assert!(reapplies_signals(
        ResetReapplyType::Signal as i32,
        &[ResetReapplyExcludeType::Update as i32]
    ));
}

#[test]
fn reset_reapplies_signals_of_later_runs_too() {
    let h = waiting_for_signals();
    let mut next = Harness::start();
    send_signal(&mut next, "from-next-run", "sig-next");
    let new = reset(
        &h.history,
        &next.history,
        reset_args(4, h.now),
        &Limits::default(),
    )
    .expect("reset");
    let names: Vec<String> = new
        .mutation
        .events
        .iter()
        .filter_map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => {
                Some(a.signal_name.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(names, ["late", "from-next-run"]);
}

#[test]
fn reset_to_a_started_task_starts_and_fails_it_itself() {
    let h = waiting_for_signals();
    // Event 3 is the first WorkflowTaskStarted: the prefix ends at its scheduled event.
    let new = reset(&h.history, &[], reset_args(3, h.now), &Limits::default()).expect("reset");
    let events = &new.mutation.events;
    assert_eq!(
        types_of(events),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ],
        "the old started event is past the reset point: a new one is written"
    );
    match &events[2].attributes {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
            assert_eq!(a.identity, "history-service");
            assert_eq!(a.scheduled_event_id, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn reset_refuses_event_ids_that_are_not_a_workflow_task_end() {
    let h = waiting_for_signals();
    let limits = Limits::default();
    let last = h.history.len() as i64;
    for bad in [0, 1, last + 1, 999] {
        let e = reset(&h.history, &[], reset_args(bad, h.now), &limits).expect_err("bad id");
        assert_eq!(
            e,
            WorkflowError::InvalidArgument(
                "Workflow task finish ID must be > 1 && <= workflow last event ID.".into()
            ),
            "{bad}"
        );
    }
    // 5 is the signal after the first completed task: no workflow task is pending at 4.
    for bad in [2, 5] {
        let e = reset(&h.history, &[], reset_args(bad, h.now), &limits).expect_err("bad id");
        assert!(
            matches!(&e, WorkflowError::InvalidArgument(m) if m.starts_with("Can only reset workflow to event ID in range")),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn reset_redispatches_pending_activities_and_rearms_timers_from_now() {
    let mut h = Harness::start();
    h.complete_wt(vec![
        activity_cmd("a", Duration::from_secs(600)),
        timer_cmd("t", Duration::from_secs(30)),
    ]);
    send_signal(&mut h, "wake", "sig-w");
    h.complete_wt(vec![]);
    let now = h.now + Duration::from_secs(100);
    let new = reset(&h.history, &[], reset_args(4, now), &Limits::default()).expect("reset");
    // Reset to the first task: nothing it scheduled exists in the new run.
    assert!(new.ms.activities.is_empty() && new.ms.timers.is_empty());

    let completed_second = h
        .history
        .iter()
        .rev()
        .find(|e| e.event_type == E::WorkflowTaskCompleted as i32)
        .expect("second task")
        .event_id;
    let new = reset(
        &h.history,
        &[],
        reset_args(completed_second, now),
        &Limits::default(),
    )
    .expect("reset");
    let ai = new.ms.activities.values().next().expect("pending activity");
    assert_eq!(ai.scheduled_time, Some(ts(now)));
    assert_eq!(ai.expiration_time, Some(ts(now + Duration::from_secs(600))));
    assert!(
        new.mutation
            .transfer
            .iter()
            .any(|t| t.kind == pb::TransferTaskKind::ActivityTask as i32
                && t.scheduled_event_id == ai.scheduled_event_id
                && t.run_id == "new-run")
    );
    let timer = new
        .mutation
        .timers
        .iter()
        .find(|(_, t)| t.kind == pb::TimerTaskKind::UserTimer as i32)
        .expect("user timer re-armed");
    let ti = &new.ms.timers["t"];
    assert_eq!(Some(timer.0), ti.expiry_time.as_ref().map(from_ts));
}

#[test]
fn reset_applies_again_what_the_children_did_after_the_reset_point() {
    let mut h = Harness::start();
    h.complete_wt(vec![child_cmd("kid")]); // 5: initiated
    send_signal(&mut h, "s", "sig-s"); // 6, and a workflow task at 7
    h.apply(|t| child::on_started(t, 5, "ns", "kid-run", None))
        .expect("started"); // 8
    h.complete_wt(vec![]); // 9, 10
    h.apply(|t| {
        child::on_closed(
            t,
            5,
            WorkflowExecution {
                workflow_id: "kid".into(),
                run_id: "kid-run".into(),
            },
            &HistoryEvent {
                event_type: E::WorkflowExecutionCompleted as i32,
                attributes: Some(Attributes::WorkflowExecutionCompletedEventAttributes(
                    Default::default(),
                )),
                ..Default::default()
            },
        )
    })
    .expect("closed"); // 11, and a workflow task at 12
    h.complete_wt(vec![]);
    assert_eq!(
        h.history[7].event_type,
        E::ChildWorkflowExecutionStarted as i32
    );
    assert_eq!(
        h.history[10].event_type,
        E::ChildWorkflowExecutionCompleted as i32
    );

    // Reset to the task scheduled at 7: the child's start (8) and close (11) come after.
    let new = reset(&h.history, &[], reset_args(8, h.now), &Limits::default()).expect("reset");
    let events = &new.mutation.events;
    assert_eq!(
        types_of(&events[7..]),
        vec![
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::ChildWorkflowExecutionStarted,
            E::ChildWorkflowExecutionCompleted,
            E::WorkflowTaskScheduled,
        ]
    );
    match &events[10].attributes {
        Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
            assert_eq!(a.initiated_event_id, 5);
            assert_eq!(a.started_event_id, 10, "the started event of the new run");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(new.ms.children.is_empty());

    // Reset to the second completed task (10): the child started before, closed after.
    let new = reset(&h.history, &[], reset_args(10, h.now), &Limits::default()).expect("reset");
    let events = &new.mutation.events;
    assert_eq!(
        types_of(&events[9..]),
        vec![
            E::WorkflowTaskFailed,
            E::ChildWorkflowExecutionCompleted,
            E::WorkflowTaskScheduled,
        ]
    );
    match &events[10].attributes {
        Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(a)) => {
            assert_eq!(a.started_event_id, 8);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Without what came after, the child would still be pending in the new run.
    let prefix_only = rebuild(
        &h.history[..9],
        RebuildRun {
            run_id: "x",
            ..run()
        },
    )
    .expect("rebuild");
    assert_eq!(prefix_only.children.len(), 1);
}

// ------------------------------------------------------------- one apply path per event

/// Event types this crate never writes (other servers' features), so no test can replay them.
const NOT_WRITTEN: &[E] = &[
    E::Unspecified,
    E::WorkflowExecutionUpdateRejected,
    E::WorkflowExecutionUpdateAdmitted,
    E::WorkflowPropertiesModifiedExternally,
    E::ActivityPropertiesModifiedExternally,
    E::NexusOperationScheduled,
    E::NexusOperationStarted,
    E::NexusOperationCompleted,
    E::NexusOperationFailed,
    E::NexusOperationCanceled,
    E::NexusOperationTimedOut,
    E::NexusOperationCancelRequested,
    E::NexusOperationCancelRequestCompleted,
    E::NexusOperationCancelRequestFailed,
    E::WorkflowExecutionOptionsUpdated,
    E::WorkflowExecutionPaused,
    E::WorkflowExecutionUnpaused,
    E::WorkflowExecutionTimeSkippingTransitioned,
];

fn close_event(a: Attributes) -> HistoryEvent {
    HistoryEvent {
        attributes: Some(a),
        ..Default::default()
    }
}

/// What the other scenarios leave out: a workflow task timing out, an activity canceled
/// before it started, children that fail, are canceled, time out or are terminated, cancel
/// requests to other workflows (delivered or not), and the run canceled, failed and timed
/// out.
fn timeouts_cancellations_and_closes() {
    let mut h = Harness::start();
    let wt = h.start_wt();
    h.apply(|t| {
        crate::workflow_task::on_timeout(
            t,
            wt.scheduled_event_id,
            wt.attempt,
            TimeoutType::StartToClose as i32,
        )
    });
    let cancel_external = |id: &str| {
        cmd(C::RequestCancelExternalWorkflowExecutionCommandAttributes(
            RequestCancelExternalWorkflowExecutionCommandAttributes {
                workflow_id: id.into(),
                ..Default::default()
            },
        ))
    };
    h.complete_wt(vec![
        activity_cmd("a", Duration::ZERO),
        child_cmd("k-failed"),
        child_cmd("k-canceled"),
        child_cmd("k-timed-out"),
        child_cmd("k-terminated"),
        cancel_external("there"),
        cancel_external("missing"),
    ]);
    let scheduled = *h.ms.activities.keys().next().expect("activity");
    send_signal(&mut h, "wake", "sig-wake");
    h.complete_wt(vec![cmd(C::RequestCancelActivityTaskCommandAttributes(
        temper_proto::temporal::api::command::v1::RequestCancelActivityTaskCommandAttributes {
            scheduled_event_id: scheduled,
        },
    ))]);
    let kids: Vec<(i64, String)> =
        h.ms.children
            .values()
            .map(|c| (c.initiated_event_id, c.workflow_id.clone()))
            .collect();
    for (initiated, id) in kids {
        h.apply(|t| child::on_started(t, initiated, "ns", &format!("{id}-run"), None))
            .expect("started");
        let closed = match id.as_str() {
            "k-failed" => Attributes::WorkflowExecutionFailedEventAttributes(Default::default()),
            "k-canceled" => {
                Attributes::WorkflowExecutionCanceledEventAttributes(Default::default())
            }
            "k-timed-out" => {
                Attributes::WorkflowExecutionTimedOutEventAttributes(Default::default())
            }
            _ => Attributes::WorkflowExecutionTerminatedEventAttributes(Default::default()),
        };
        let execution = WorkflowExecution {
            workflow_id: id.clone(),
            run_id: format!("{id}-run"),
        };
        h.apply(|t| {
            child::on_closed(
                t,
                initiated,
                execution.clone(),
                &close_event(closed.clone()),
            )
        })
        .expect("closed");
    }
    let mut cancels: Vec<i64> = h.ms.request_cancels.keys().copied().collect();
    cancels.sort_unstable();
    for (i, initiated) in cancels.into_iter().enumerate() {
        let attrs = match h.history[initiated as usize - 1].attributes.clone() {
            Some(Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a)) => {
                a
            }
            other => panic!("unexpected {other:?}"),
        };
        h.apply(|t| external::on_cancel_result(t, initiated, &attrs, "ns", i == 0))
            .expect("cancel result");
    }
    h.complete_wt(vec![cmd(C::CancelWorkflowExecutionCommandAttributes(
        Default::default(),
    ))]);
    assert_eq!(
        h.ms.execution_info.as_ref().map(|i| i.status),
        Some(WorkflowExecutionStatus::Canceled as i32)
    );

    let mut h = Harness::start();
    h.complete_wt(vec![cmd(C::FailWorkflowExecutionCommandAttributes(
        Default::default(),
    ))]);
    let mut h = Harness::start();
    h.apply(close::on_run_timeout);
    assert_eq!(
        h.ms.execution_info.as_ref().map(|i| i.status),
        Some(WorkflowExecutionStatus::TimedOut as i32)
    );
}

/// Every event type the crate writes appears in a history the scenario tests check against
/// replay after every transaction (see [`assert_replays`]), so a type whose live path and
/// replay differ fails a test, and a new type is not forgotten.
#[test]
fn every_event_type_the_crate_writes_is_checked_against_replay() {
    CHECKED.with(|c| c.borrow_mut().clear());
    busy_workflow();
    timeouts_cancellations_and_closes();
    crate::tests::activity_happy_path_event_order();
    crate::tests::events_during_a_workflow_task_are_buffered_after_its_commands();
    crate::tests::activity_retries_then_fails_with_max_attempts();
    crate::tests::heartbeat_timeout_waits_for_the_latest_heartbeat();
    crate::tests::bad_command_fails_the_workflow_task_and_keeps_nothing();
    crate::tests::repeated_workflow_task_failures_lengthen_the_timeout();
    crate::tests::an_activity_asked_to_cancel_is_not_retried();
    crate::tests::a_history_past_its_limit_terminates_the_run();
    crate::tests_relations::child_lifecycle_events_in_the_parent();
    crate::tests_relations::child_started_and_closed_during_a_workflow_task_are_fixed_up_on_flush();
    crate::tests_relations::child_start_failure_and_pending_child_limit();
    crate::tests_relations::external_signal_outcomes();
    crate::tests_relations::continue_as_new_creates_the_next_run_in_the_same_mutation();
    crate::tests_relations::search_attributes_and_memo_merge_and_remove();
    crate::update_tests::accepted_update_writes_the_task_then_its_events_in_command_order();
    let checked = CHECKED.with(|c| c.borrow().clone());
    let missing: Vec<&str> = (0..200)
        .filter_map(|t| E::try_from(t).ok())
        .filter(|t| !checked.contains(&(*t as i32)) && !NOT_WRITTEN.contains(t))
        .map(|t| t.as_str_name())
        .collect();
    assert!(
        missing.is_empty(),
        "never checked against replay: {missing:?}"
    );
}
