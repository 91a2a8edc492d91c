//! Started / StartFailed / Closed, and what the start request carries.

use super::*;
use ScheduleOverlapPolicy::*;
use WorkflowExecutionStatus::*;
use temporalio_protos::temporal::api::common::v1::Payload;
use temporalio_protos::temporal::api::enums::v1::WorkflowIdReusePolicy;

const W1: &str = "wf-2025-01-01T00:01:00Z";

fn payloads(data: &str) -> Payloads {
    Payloads {
        payloads: vec![Payload {
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }],
    }
}

fn failure(message: &str) -> Failure {
    Failure {
        message: message.into(),
        ..Default::default()
    }
}

fn close_with(
    state: &mut SchedulerState,
    wf: &str,
    status: WorkflowExecutionStatus,
    result: Option<Payloads>,
    failure: Option<Failure>,
    at: &str,
) -> Effects {
    handle(
        state,
        Input::Closed {
            workflow_id: wf.into(),
            run_id: format!("run-{wf}"),
            status,
            result,
            failure,
        },
        ts(at),
    )
    .expect("closed")
}

#[test]
fn started_records_the_action() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(info(&state).action_count, 0, "counted once started");
    start_all(&mut state, &e, "2025-01-01T00:01:00.200Z");
    let i = info(&state);
    assert_eq!(i.action_count, 1);
    let action = &i.recent_actions[0];
    assert_eq!(
        action.schedule_time.map(|t| timestamp_from_proto(&t)),
        Some(ts("2025-01-01T00:01:00Z"))
    );
    assert_eq!(
        action.actual_time.map(|t| timestamp_from_proto(&t)),
        Some(ts("2025-01-01T00:01:00.200Z"))
    );
    assert_eq!(
        action.start_workflow_result,
        Some(WorkflowExecution {
            workflow_id: W1.into(),
            run_id: format!("run-{W1}"),
        })
    );
    assert_eq!(action.start_workflow_status, Running as i32);
    assert!(state.pending_starts.is_empty());
}

#[test]
fn duplicate_or_unknown_outcomes_change_nothing() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    let before = state.clone();
    start_all(&mut state, &e, "2025-01-01T00:01:01Z");
    handle(
        &mut state,
        Input::StartFailed {
            request_id: "nope".into(),
            already_started: false,
            message: "x".into(),
        },
        ts("2025-01-01T00:01:01Z"),
    )
    .expect("ignored");
    close(&mut state, "other", Completed, "2025-01-01T00:01:01Z");
    assert_eq!(state, before);
    close(&mut state, W1, Completed, "2025-01-01T00:01:30Z");
    let after_close = state.clone();
    close(&mut state, W1, Completed, "2025-01-01T00:01:31Z");
    assert_eq!(state, after_close);
    assert_eq!(
        info(&state).recent_actions[0].start_workflow_status,
        Completed as i32
    );
}

#[test]
fn failed_start_is_dropped_and_frees_the_slot() {
    let (mut state, _) = minutely(BufferOne);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(state.buffered_starts.len(), 1);
    let e = handle(
        &mut state,
        Input::StartFailed {
            request_id: e.starts[0].request.request_id.clone(),
            already_started: true,
            message: "already started".into(),
        },
        ts("2025-01-01T00:02:01Z"),
    )
    .expect("failed");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:02:00Z"]);
    assert_eq!(info(&state).action_count, 0);
}

#[test]
fn pause_on_failure_pauses_with_temporals_note() {
    let mut s = schedule(every(60), Skip);
    s.policies.as_mut().expect("policies").pause_on_failure = true;
    let (mut state, _) = create_at(s.clone(), T0);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    let e = close_with(
        &mut state,
        W1,
        Failed,
        None,
        Some(failure("boom")),
        "2025-01-01T00:01:10Z",
    );
    let st = state
        .schedule
        .as_ref()
        .and_then(|s| s.state.clone())
        .expect("state");
    assert!(st.paused);
    assert_eq!(
        st.notes,
        format!("paused due to workflow failure: {W1}: boom")
    );
    assert_eq!(state.conflict_token, 2);
    assert_eq!(e.next_wake, None);
    assert_eq!(state.continued_failure, Some(failure("boom")));

    let (mut state, _) = create_at(s.clone(), T0);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    close(&mut state, W1, TimedOut, "2025-01-01T00:01:10Z");
    let st = state
        .schedule
        .as_ref()
        .and_then(|s| s.state.clone())
        .expect("state");
    assert!(st.paused);
    assert_eq!(st.notes, format!("paused due to workflow timeout: {W1}"));

    // Cancelled and terminated runs do not count as failures.
    let (mut state, _) = create_at(s, T0);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    close(&mut state, W1, Canceled, "2025-01-01T00:01:10Z");
    let st = state
        .schedule
        .as_ref()
        .and_then(|s| s.state.clone())
        .expect("state");
    assert!(!st.paused);
}

#[test]
fn failure_without_pause_on_failure_keeps_running() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    let e = close_with(
        &mut state,
        W1,
        Failed,
        None,
        Some(failure("x")),
        "2025-01-01T00:01:10Z",
    );
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:02:00Z")));
}

#[test]
fn last_completion_result_and_continued_failure_ride_on_the_next_start() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(e.starts[0].request.last_completion_result, None);
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    close_with(
        &mut state,
        W1,
        Completed,
        Some(payloads("r1")),
        None,
        "2025-01-01T00:01:30Z",
    );
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(
        e.starts[0].request.last_completion_result,
        Some(payloads("r1"))
    );
    assert_eq!(e.starts[0].request.continued_failure, None);
    start_all(&mut state, &e, "2025-01-01T00:02:00Z");
    close_with(
        &mut state,
        "wf-2025-01-01T00:02:00Z",
        Failed,
        None,
        Some(failure("f2")),
        "2025-01-01T00:02:30Z",
    );
    // A failure keeps the last result and adds the failure.
    let e = wake(&mut state, "2025-01-01T00:03:00Z");
    assert_eq!(
        e.starts[0].request.last_completion_result,
        Some(payloads("r1"))
    );
    assert_eq!(e.starts[0].request.continued_failure, Some(failure("f2")));
    start_all(&mut state, &e, "2025-01-01T00:03:00Z");
    close_with(
        &mut state,
        "wf-2025-01-01T00:03:00Z",
        Completed,
        Some(payloads("r3")),
        None,
        "2025-01-01T00:03:30Z",
    );
    // A success clears the failure.
    let e = wake(&mut state, "2025-01-01T00:04:00Z");
    assert_eq!(
        e.starts[0].request.last_completion_result,
        Some(payloads("r3"))
    );
    assert_eq!(e.starts[0].request.continued_failure, None);
}

#[test]
fn allow_all_starts_carry_no_last_completion_result() {
    let (mut state, _) = minutely(Skip);
    state.last_completion_result = Some(payloads("r"));
    let e = patch(
        &mut state,
        SchedulePatch {
            trigger_immediately: Some(
                temporalio_protos::temporal::api::schedule::v1::TriggerImmediatelyRequest {
                    overlap_policy: AllowAll as i32,
                    scheduled_time: None,
                },
            ),
            ..Default::default()
        },
        "2025-01-01T00:00:10Z",
    );
    assert_eq!(e.starts[0].request.last_completion_result, None);
}

#[test]
fn recent_actions_keep_the_last_ten() {
    let (mut state, _) = minutely(AllowAll);
    for minute in 1..=12 {
        let at = format!("2025-01-01T00:{minute:02}:00Z");
        let e = wake(&mut state, &at);
        start_all(&mut state, &e, &at);
    }
    let i = info(&state);
    assert_eq!(i.action_count, 12);
    assert_eq!(i.recent_actions.len(), 10);
    assert_eq!(
        i.recent_actions[0]
            .start_workflow_result
            .as_ref()
            .map(|w| w.workflow_id.as_str()),
        Some("wf-2025-01-01T00:03:00Z")
    );
}

#[test]
fn start_request_is_complete() {
    let mut s = schedule(every(60), Skip);
    if let Some(schedule_action::Action::StartWorkflow(a)) =
        s.action.as_mut().and_then(|a| a.action.as_mut())
    {
        a.input = Some(payloads("in"));
        a.workflow_run_timeout = Some(secs(30));
        a.search_attributes = Some(
            temporalio_protos::temporal::api::common::v1::SearchAttributes {
                indexed_fields: [("Custom".to_owned(), Payload::default())].into(),
            },
        );
    }
    let (mut state, _) = create_at(s, T0);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    let r = &e.starts[0].request;
    assert_eq!(r.namespace, "ns");
    assert_eq!(r.workflow_id, W1);
    assert_eq!(r.workflow_type.as_ref().map(|t| t.name.as_str()), Some("T"));
    assert_eq!(r.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
    assert_eq!(r.input, Some(payloads("in")));
    assert_eq!(r.workflow_run_timeout, Some(secs(30)));
    assert_eq!(r.identity, "temporal-scheduler-ns-sched");
    assert_eq!(
        r.workflow_id_reuse_policy,
        WorkflowIdReusePolicy::RejectDuplicate as i32
    );
    assert_eq!(r.workflow_id_conflict_policy, 0);
    let sa = &r
        .search_attributes
        .as_ref()
        .expect("search attributes")
        .indexed_fields;
    assert!(sa.contains_key("Custom"));
    let start_time = &sa["TemporalScheduledStartTime"];
    assert_eq!(start_time.data, br#""2025-01-01T00:01:00Z""#);
    assert_eq!(start_time.metadata["encoding"], b"json/plain");
    let by = &sa["TemporalScheduledById"];
    assert_eq!(by.data, br#""sched""#);
    assert_eq!(by.metadata["encoding"], b"json/plain");
    assert_eq!(r.request_id.len(), 36);
}

#[test]
fn request_ids_are_deterministic_and_unique() {
    let (mut a, _) = minutely(AllowAll);
    let mut b = a.clone();
    let ea = wake(&mut a, "2025-01-01T00:03:00Z");
    let eb = wake(&mut b, "2025-01-01T00:03:00Z");
    assert_eq!(ea, eb);
    let mut ids: Vec<_> = ea
        .starts
        .iter()
        .map(|s| s.request.request_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn keep_original_workflow_id_uses_the_action_id() {
    let mut s = schedule(every(60), Skip);
    s.policies
        .as_mut()
        .expect("policies")
        .keep_original_workflow_id = true;
    let (mut state, _) = create_at(s, T0);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(ids(&e), vec!["wf"]);
}
