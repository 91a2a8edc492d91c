//! Waking up: next wake, late wakes and the catch-up window, idempotence, jitter, pause,
//! limited actions.

use super::*;
use ScheduleOverlapPolicy::*;

fn with_catchup(spec: ScheduleSpec, policy: ScheduleOverlapPolicy, window: i64) -> Schedule {
    let mut s = schedule(spec, policy);
    s.policies.as_mut().expect("policies").catchup_window = Some(secs(window));
    s
}

#[test]
fn create_schedules_the_first_wake_and_starts_nothing() {
    let (state, e) = minutely(Skip);
    assert!(e.starts.is_empty());
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:01:00Z")));
    assert_eq!(state.conflict_token, 1);
    assert_eq!(
        state.last_processed_time.map(|t| timestamp_from_proto(&t)),
        Some(ts(T0))
    );
}

#[test]
fn wake_starts_the_due_time_and_schedules_the_next() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:01:00Z"]);
    assert_eq!(e.starts[0].nominal_time, ts("2025-01-01T00:01:00Z"));
    assert_eq!(e.starts[0].actual_time, ts("2025-01-01T00:01:00Z"));
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:02:00Z")));
}

#[test]
fn early_wake_does_nothing_and_keeps_the_wake() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:00:30Z");
    assert!(e.starts.is_empty());
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:01:00Z")));
}

#[test]
fn duplicate_wake_at_the_same_instant_starts_nothing_twice() {
    let (mut state, _) = minutely(AllowAll);
    let first = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(first.starts.len(), 1);
    let again = wake(&mut state, "2025-01-01T00:01:00Z");
    assert!(again.starts.is_empty());
    assert_eq!(again.next_wake, first.next_wake);
    let later = wake(&mut state, "2025-01-01T00:01:30Z");
    assert!(later.starts.is_empty());
}

#[test]
fn late_wake_skips_times_outside_the_catchup_window() {
    let (mut state, _) = create_at(with_catchup(every(60), AllowAll, 60), T0);
    let e = wake(&mut state, "2025-01-01T00:10:00Z");
    // 00:01..00:08 are more than 60 s old; 00:09 is exactly 60 s old and still starts.
    assert_eq!(
        ids(&e),
        vec!["wf-2025-01-01T00:09:00Z", "wf-2025-01-01T00:10:00Z"]
    );
    assert_eq!(info(&state).missed_catchup_window, 8);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:11:00Z")));
    // Missed times are not counted again by a later wake.
    wake(&mut state, "2025-01-01T00:10:30Z");
    assert_eq!(info(&state).missed_catchup_window, 8);
}

#[test]
fn catchup_window_below_ten_seconds_is_ten_seconds() {
    let (mut state, _) = create_at(with_catchup(every(5), AllowAll, 1), T0);
    let window = state
        .schedule
        .as_ref()
        .and_then(|s| s.policies.as_ref())
        .and_then(|p| p.catchup_window);
    assert_eq!(window, Some(secs(10)));
    let e = wake(&mut state, "2025-01-01T00:00:30Z");
    // 00:05..00:15 are more than 10 s old, 00:20..00:30 start.
    assert_eq!(e.starts.len(), 3);
    assert_eq!(info(&state).missed_catchup_window, 3);
}

#[test]
fn default_catchup_window_is_a_year() {
    let (state, _) = minutely(Skip);
    let window = state
        .schedule
        .as_ref()
        .and_then(|s| s.policies.as_ref())
        .and_then(|p| p.catchup_window);
    assert_eq!(window, Some(secs(365 * 24 * 3600)));
    let (mut state, _) = create_at(schedule(every(86_400), AllowAll), T0);
    // Down for 300 days: every day still starts.
    let e = wake(&mut state, "2025-10-28T00:00:00Z");
    assert_eq!(e.starts.len(), 300);
    assert_eq!(info(&state).missed_catchup_window, 0);
}

#[test]
fn jittered_time_waits_for_its_actual_time() {
    let mut spec = every(3600);
    spec.jitter = Some(secs(600));
    let (mut state, e) = create_at(schedule(spec.clone(), Skip), T0);
    let compiled = crate::CompiledSpec::compile(&spec)
        .expect("spec")
        .with_jitter_seed(crate::jitter_seed("ns-id", "sched"));
    let first = compiled.next_time(ts(T0)).expect("search").expect("a time");
    assert!(
        first.actual > first.nominal,
        "this seed jitters the first hour"
    );
    assert_eq!(e.next_wake, Some(first.actual));
    // After the nominal time but before the jittered one: nothing yet, and not lost.
    let between = first.nominal + jiff::SignedDuration::from_millis(1);
    let e = handle(&mut state, Input::Wake, between).expect("wake");
    assert!(e.starts.is_empty());
    assert_eq!(e.next_wake, Some(first.actual));
    let e = handle(&mut state, Input::Wake, first.actual).expect("wake");
    assert_eq!(e.starts.len(), 1);
    assert_eq!(e.starts[0].nominal_time, first.nominal);
    assert_eq!(e.starts[0].actual_time, first.actual);
    assert_eq!(e.starts[0].request.workflow_id, "wf-2025-01-01T01:00:00Z");
}

#[test]
fn paused_schedule_sleeps_and_skips_the_paused_time() {
    let (mut state, _) = minutely(AllowAll);
    let e = patch(
        &mut state,
        SchedulePatch {
            pause: "maintenance".into(),
            ..Default::default()
        },
        "2025-01-01T00:00:10Z",
    );
    assert_eq!(e.next_wake, None);
    let sched_state = state.schedule.as_ref().and_then(|s| s.state.clone());
    assert_eq!(sched_state.as_ref().map(|s| s.paused), Some(true));
    assert_eq!(sched_state.map(|s| s.notes), Some("maintenance".into()));
    assert_eq!(state.conflict_token, 2);
    // Unpaused ten minutes later: the paused minutes are neither started nor missed.
    let e = patch(
        &mut state,
        SchedulePatch {
            unpause: "done".into(),
            ..Default::default()
        },
        "2025-01-01T00:10:30Z",
    );
    assert!(e.starts.is_empty());
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:11:00Z")));
    assert_eq!(info(&state).missed_catchup_window, 0);
    assert_eq!(state.conflict_token, 3);
}

#[test]
fn limited_actions_count_down_and_stop_at_zero() {
    let mut s = schedule(every(60), AllowAll);
    s.state = Some(ScheduleState {
        limited_actions: true,
        remaining_actions: 2,
        ..Default::default()
    });
    let (mut state, _) = create_at(s, T0);
    let remaining = |s: &SchedulerState| {
        s.schedule
            .as_ref()
            .and_then(|s| s.state.as_ref())
            .map(|s| s.remaining_actions)
    };
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(e.starts.len(), 1);
    assert_eq!(remaining(&state), Some(1));
    assert_eq!(
        state.conflict_token, 2,
        "each use bumps the token, as in Temporal"
    );
    assert_eq!(
        describe(&state, ts("2025-01-01T00:01:00Z"))
            .info
            .future_action_times
            .len(),
        1
    );
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(e.starts.len(), 1);
    assert_eq!(remaining(&state), Some(0));
    assert_eq!(e.next_wake, None);
    assert!(
        describe(&state, ts("2025-01-01T00:02:00Z"))
            .info
            .future_action_times
            .is_empty()
    );
    // Manual actions still run and do not count.
    let e = patch(
        &mut state,
        SchedulePatch {
            trigger_immediately: Some(Default::default()),
            ..Default::default()
        },
        "2025-01-01T00:05:00Z",
    );
    assert_eq!(e.starts.len(), 1);
    assert_eq!(remaining(&state), Some(0));
    assert!(wake(&mut state, "2025-01-01T00:06:00Z").starts.is_empty());
}

#[test]
fn spec_without_more_times_needs_no_wake() {
    let mut spec = every(60);
    spec.end_time = Some(crate::timestamp_to_proto(ts("2025-01-01T00:02:00Z")));
    let (mut state, _) = create_at(schedule(spec, AllowAll), T0);
    assert_eq!(
        wake(&mut state, "2025-01-01T00:01:00Z").next_wake,
        Some(ts("2025-01-01T00:02:00Z"))
    );
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(e.starts.len(), 1);
    assert_eq!(e.next_wake, None);
}

#[test]
fn retry_deadline_follows_the_catchup_window() {
    let (mut state, _) = create_at(with_catchup(every(60), AllowAll, 120), T0);
    let e = wake(&mut state, "2025-01-01T00:01:30Z");
    // Due at 00:01:00 with a 2 min window: retry until 00:03:00.
    assert_eq!(e.starts[0].retry_deadline, ts("2025-01-01T00:03:00Z"));
    let (mut state, _) = minutely(AllowAll);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    // A year's window is capped at an hour.
    assert_eq!(e.starts[0].retry_deadline, ts("2025-01-01T01:01:00Z"));
    let e = patch(
        &mut state,
        SchedulePatch {
            trigger_immediately: Some(Default::default()),
            ..Default::default()
        },
        "2025-01-01T00:01:10Z",
    );
    assert_eq!(e.starts[0].retry_deadline, ts("2025-01-01T00:02:10Z"));
}

#[test]
fn late_wake_matches_the_reference_server() {
    // Recorded from `temporal server start-dev` (1.32.0), its process stopped for 32 s:
    // every 5 s, catch-up window 10 s, last run at :10, woken at :45.288 -> :15..:35 missed
    // (5), :40 and :45 started.
    let (mut state, _) = create_at(with_catchup(every(5), AllowAll, 10), "2025-01-01T00:00:07Z");
    let e = wake(&mut state, "2025-01-01T00:00:10Z");
    assert_eq!(e.starts.len(), 1);
    let e = wake(&mut state, "2025-01-01T00:00:45.288Z");
    assert_eq!(
        ids(&e),
        vec!["wf-2025-01-01T00:00:40Z", "wf-2025-01-01T00:00:45Z"]
    );
    assert_eq!(info(&state).missed_catchup_window, 5);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:00:50Z")));
}
