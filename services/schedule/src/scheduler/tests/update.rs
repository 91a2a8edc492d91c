//! UpdateSchedule, conflict tokens and validation.

use super::*;
use ScheduleOverlapPolicy::*;

fn update(
    state: &mut SchedulerState,
    s: Schedule,
    token: Option<Vec<u8>>,
    at: &str,
) -> Result<Effects, SchedulerError> {
    handle(
        state,
        Input::Update {
            schedule: s,
            conflict_token: token,
        },
        ts(at),
    )
}

#[test]
fn update_with_the_current_token_applies_and_bumps_it() {
    let (mut state, _) = minutely(Skip);
    let token = describe(&state, ts(T0)).conflict_token;
    assert_eq!(token, vec![0, 0, 0, 0, 0, 0, 0, 1]);
    let e = update(
        &mut state,
        schedule(every(300), Skip),
        Some(token),
        "2025-01-01T00:00:30Z",
    )
    .expect("update");
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:05:00Z")));
    assert_eq!(state.conflict_token, 2);
    assert_eq!(
        info(&state).update_time.map(|t| timestamp_from_proto(&t)),
        Some(ts("2025-01-01T00:00:30Z"))
    );
}

#[test]
fn stale_token_is_refused_and_changes_nothing() {
    let (mut state, _) = minutely(Skip);
    patch(
        &mut state,
        SchedulePatch {
            pause: "p".into(),
            ..Default::default()
        },
        "2025-01-01T00:00:10Z",
    );
    let before = state.clone();
    let err = update(
        &mut state,
        schedule(every(300), Skip),
        Some(conflict_token_bytes(1)),
        "2025-01-01T00:00:30Z",
    )
    .expect_err("stale");
    assert_eq!(err, SchedulerError::ConflictTokenMismatch);
    assert_eq!(err.to_string(), "mismatched conflict token");
    assert_eq!(state, before);
    // No token, a short one or 0: unconditional, as in Temporal.
    for token in [None, Some(vec![1, 2]), Some(conflict_token_bytes(0))] {
        update(
            &mut state,
            schedule(every(300), Skip),
            token,
            "2025-01-01T00:00:40Z",
        )
        .expect("unconditional");
    }
}

#[test]
fn elapsed_times_are_processed_with_the_old_schedule_first() {
    let (mut state, _) = minutely(AllowAll);
    // The wake at 00:01 did not happen; the update at 00:03:30 comes first. The 00:01..00:03
    // times are processed with the old spec before the update is applied.
    let e = update(
        &mut state,
        schedule(every(60), AllowAll),
        None,
        "2025-01-01T00:03:30Z",
    )
    .expect("update");
    assert_eq!(e.starts.len(), 3);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:04:00Z")));
}

#[test]
fn the_new_spec_takes_no_time_due_before_the_update() {
    let (mut state, _) = create_at(schedule(every(3600), AllowAll), T0);
    // Every minute from 00:30:00: the new spec's 00:01..00:29 are before the update and
    // dropped (not missed); 00:30 is not before it and starts.
    let e = update(
        &mut state,
        schedule(every(60), AllowAll),
        None,
        "2025-01-01T00:30:00Z",
    )
    .expect("update");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:30:00Z"]);
    assert_eq!(info(&state).missed_catchup_window, 0);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:31:00Z")));
    let e = wake(&mut state, "2025-01-01T00:31:00Z");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:31:00Z"]);
    let d = describe(&state, ts("2025-01-01T00:31:00Z"));
    assert_eq!(
        d.info.future_action_times.first().map(timestamp_from_proto),
        Some(ts("2025-01-01T00:32:00Z"))
    );
}

#[test]
fn update_replaces_state_and_keeps_info() {
    let (mut state, _) = minutely(AllowAll);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    let mut s = schedule(every(60), Skip);
    s.state = Some(ScheduleState {
        paused: true,
        notes: "updated".into(),
        ..Default::default()
    });
    let e = update(&mut state, s, None, "2025-01-01T00:01:30Z").expect("update");
    assert_eq!(e.next_wake, None);
    assert_eq!(info(&state).action_count, 1);
}

#[test]
fn validation_says_what_is_wrong() {
    let check = |s: Schedule, field: &str| {
        let err = create("ns", "id", "s", s, None, ts(T0)).expect_err("invalid");
        let SchedulerError::InvalidArgument(message) = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains(field), "{message}");
    };
    let with_action = |f: &dyn Fn(
        &mut temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo,
    )| {
        let mut s = schedule(every(60), Skip);
        if let Some(schedule_action::Action::StartWorkflow(a)) =
            s.action.as_mut().and_then(|a| a.action.as_mut())
        {
            f(a);
        }
        s
    };
    let mut no_action = schedule(every(60), Skip);
    no_action.action = None;
    check(no_action, "Only StartWorkflow action is supported");
    check(
        with_action(&|a| a.workflow_id.clear()),
        "WorkflowId is not set",
    );
    check(
        with_action(&|a| a.workflow_id = "x".repeat(990)),
        "WorkflowId exceeds maximum allowed length",
    );
    check(
        with_action(&|a| a.workflow_type = None),
        "WorkflowType is not set",
    );
    check(
        with_action(&|a| a.task_queue = None),
        "taskQueue is not set",
    );
    check(
        with_action(&|a| a.cron_schedule = "* * * * *".into()),
        "must not contain CronSchedule",
    );
    check(
        with_action(&|a| a.workflow_id_reuse_policy = 2),
        "must not contain WorkflowIDReusePolicy",
    );
    check(
        with_action(&|a| a.workflow_run_timeout = Some(secs(-1))),
        "An invalid WorkflowRunTimeoutSeconds",
    );
    let mut bad_policy = schedule(every(60), Skip);
    bad_policy
        .policies
        .as_mut()
        .expect("policies")
        .overlap_policy = 42;
    check(bad_policy, "schedule.policies.overlap_policy");
    let mut bad_spec = schedule(every(60), Skip);
    bad_spec.spec = Some(ScheduleSpec {
        cron_string: vec!["nope".into()],
        ..Default::default()
    });
    check(bad_spec, "Invalid schedule spec: cron_string[0]");
    let mut negative = schedule(every(60), Skip);
    negative.state = Some(ScheduleState {
        limited_actions: true,
        remaining_actions: -1,
        ..Default::default()
    });
    check(negative, "schedule.state.remaining_actions");

    let (mut state, _) = minutely(Skip);
    let err = handle(
        &mut state,
        Input::Patch(SchedulePatch {
            pause: "x".repeat(1001),
            ..Default::default()
        }),
        ts(T0),
    )
    .expect_err("too long");
    assert_eq!(
        err,
        SchedulerError::InvalidArgument("Schedule notes exceeds limit.".into())
    );
}

#[test]
fn defaults_are_stored_and_the_spec_canonical() {
    let s = Schedule {
        spec: Some(ScheduleSpec {
            cron_string: vec!["0 12 * * *".into()],
            ..Default::default()
        }),
        policies: None,
        state: None,
        ..schedule(ScheduleSpec::default(), Unspecified)
    };
    let (state, _) = create_at(s, T0);
    let stored = state.schedule.as_ref().expect("schedule");
    let policies = stored.policies.as_ref().expect("policies");
    assert_eq!(policies.overlap_policy, Skip as i32);
    assert!(
        stored
            .spec
            .as_ref()
            .is_some_and(|s| s.cron_string.is_empty() && s.structured_calendar.len() == 1)
    );
}
