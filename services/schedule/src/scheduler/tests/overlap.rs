//! The six overlap policies, with a run still open and after it closes.

use super::*;
use ScheduleOverlapPolicy::*;
use WorkflowExecutionStatus::Completed;

const W1: &str = "wf-2025-01-01T00:01:00Z";
const W2: &str = "wf-2025-01-01T00:02:00Z";
const W3: &str = "wf-2025-01-01T00:03:00Z";
const W4: &str = "wf-2025-01-01T00:04:00Z";

/// Created at T0, first run started at 00:01 and still open.
fn one_running(policy: ScheduleOverlapPolicy) -> SchedulerState {
    let (mut state, effects) = minutely(policy);
    assert!(effects.starts.is_empty());
    assert_eq!(effects.next_wake, Some(ts("2025-01-01T00:01:00Z")));
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(ids(&e), vec![W1]);
    start_all(&mut state, &e, "2025-01-01T00:01:00.100Z");
    assert_eq!(running(&state), vec![W1]);
    state
}

#[test]
fn skip_drops_times_while_running_and_starts_again_after_close() {
    let mut state = one_running(Skip);
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert!(e.starts.is_empty());
    assert_eq!(info(&state).overlap_skipped, 1);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:03:00Z")));
    // Closing releases nothing (nothing buffered); the next time starts.
    let e = close(&mut state, W1, Completed, "2025-01-01T00:02:30Z");
    assert!(e.starts.is_empty());
    assert!(running(&state).is_empty());
    let e = wake(&mut state, "2025-01-01T00:03:00Z");
    assert_eq!(ids(&e), vec![W3]);
}

#[test]
fn buffer_one_keeps_one_and_starts_it_when_the_run_closes() {
    let mut state = one_running(BufferOne);
    assert!(wake(&mut state, "2025-01-01T00:02:00Z").starts.is_empty());
    assert!(wake(&mut state, "2025-01-01T00:03:00Z").starts.is_empty());
    assert_eq!(info(&state).overlap_skipped, 1);
    assert_eq!(
        describe(&state, ts("2025-01-01T00:03:00Z"))
            .info
            .buffer_size,
        1
    );
    let e = close(&mut state, W1, Completed, "2025-01-01T00:03:10Z");
    assert_eq!(ids(&e), vec![W2]);
    assert_eq!(e.starts[0].nominal_time, ts("2025-01-01T00:02:00Z"));
    // Until it is reported started it counts as running.
    assert!(wake(&mut state, "2025-01-01T00:04:00Z").starts.is_empty());
    assert_eq!(info(&state).overlap_skipped, 1);
    assert_eq!(
        describe(&state, ts("2025-01-01T00:04:00Z"))
            .info
            .buffer_size,
        1
    );
}

#[test]
fn buffer_all_keeps_all_and_releases_them_one_by_one() {
    let mut state = one_running(BufferAll);
    wake(&mut state, "2025-01-01T00:02:00Z");
    wake(&mut state, "2025-01-01T00:03:00Z");
    assert_eq!(info(&state).overlap_skipped, 0);
    assert_eq!(state.buffered_starts.len(), 2);
    let e = close(&mut state, W1, Completed, "2025-01-01T00:03:10Z");
    assert_eq!(ids(&e), vec![W2]);
    start_all(&mut state, &e, "2025-01-01T00:03:11Z");
    let e = close(&mut state, W2, Completed, "2025-01-01T00:03:20Z");
    assert_eq!(ids(&e), vec![W3]);
    assert!(state.buffered_starts.is_empty());
}

#[test]
fn cancel_other_cancels_the_running_run_and_starts_after_it_closes() {
    let mut state = one_running(CancelOther);
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert!(e.starts.is_empty());
    assert_eq!(
        e.cancels,
        vec![WorkflowExecution {
            workflow_id: W1.into(),
            run_id: format!("run-{W1}"),
        }]
    );
    assert!(e.terminates.is_empty());
    let e = close(
        &mut state,
        W1,
        WorkflowExecutionStatus::Canceled,
        "2025-01-01T00:02:01Z",
    );
    assert_eq!(ids(&e), vec![W2]);
    assert!(e.cancels.is_empty());
}

#[test]
fn terminate_other_terminates_and_keeps_only_the_latest() {
    let mut state = one_running(TerminateOther);
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(e.terminates.len(), 1);
    assert_eq!(e.terminates[0].workflow_id, W1);
    // A second overlapping time while the terminate is under way: both wait.
    let e = wake(&mut state, "2025-01-01T00:03:00Z");
    assert_eq!(e.terminates.len(), 1);
    let e = close(
        &mut state,
        W1,
        WorkflowExecutionStatus::Terminated,
        "2025-01-01T00:03:01Z",
    );
    // With nothing running the later TERMINATE_OTHER start replaces the earlier one.
    assert_eq!(ids(&e), vec![W3]);
    assert!(state.buffered_starts.is_empty());
}

#[test]
fn allow_all_starts_everything_and_tracks_nothing() {
    let (mut state, _) = minutely(AllowAll);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    start_all(&mut state, &e, "2025-01-01T00:01:00Z");
    assert!(running(&state).is_empty(), "ALLOW_ALL runs are not tracked");
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert_eq!(ids(&e), vec![W2]);
    start_all(&mut state, &e, "2025-01-01T00:02:00Z");
    assert_eq!(info(&state).action_count, 2);
    assert!(running(&state).is_empty());
    assert_eq!(info(&state).overlap_skipped, 0);
}

#[test]
fn pending_start_blocks_like_a_running_one() {
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:01:00Z");
    assert_eq!(ids(&e), vec![W1]);
    // Not yet reported: the next time overlaps it.
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert!(e.starts.is_empty());
    assert_eq!(info(&state).overlap_skipped, 1);
}

#[test]
fn two_times_due_at_once_overlap_each_other() {
    // A wake four minutes late: 00:01..00:04 all due, SKIP starts the first only.
    let (mut state, _) = minutely(Skip);
    let e = wake(&mut state, "2025-01-01T00:04:00Z");
    assert_eq!(ids(&e), vec![W1]);
    assert_eq!(info(&state).overlap_skipped, 3);
    let (mut state, _) = minutely(BufferAll);
    let e = wake(&mut state, "2025-01-01T00:04:00Z");
    assert_eq!(ids(&e), vec![W1]);
    assert_eq!(state.buffered_starts.len(), 3);
    start_all(&mut state, &e, "2025-01-01T00:04:00Z");
    let e = close(&mut state, W1, Completed, "2025-01-01T00:04:01Z");
    assert_eq!(ids(&e), vec![W2]);
    let _ = W4;
}

#[test]
fn buffer_limit_drops_starts_beyond_a_thousand() {
    let (mut state, _) = create_at(schedule(every(1), BufferAll), T0);
    let e = wake(&mut state, "2025-01-01T00:00:01Z");
    start_all(&mut state, &e, "2025-01-01T00:00:01Z");
    // 1,100 more seconds come due while the first run is open.
    wake(&mut state, "2025-01-01T00:18:21Z");
    assert_eq!(state.buffered_starts.len(), limits::MAX_BUFFER_SIZE);
    assert_eq!(info(&state).buffer_dropped, 100);
    assert_eq!(
        describe(&state, ts("2025-01-01T00:18:21Z"))
            .info
            .buffer_size,
        1000
    );
}

#[test]
fn terminate_other_waits_for_a_pending_start_to_be_reported() {
    let (mut state, _) = minutely(TerminateOther);
    let first = wake(&mut state, "2025-01-01T00:01:00Z");
    // W1 is issued but not reported: there is no run to terminate yet.
    let e = wake(&mut state, "2025-01-01T00:02:00Z");
    assert!(e.starts.is_empty() && e.terminates.is_empty());
    assert_eq!(state.buffered_starts.len(), 1);
    // Once it is, the buffered start asks for it to be terminated.
    let e = start_all(&mut state, &first, "2025-01-01T00:02:01Z");
    assert_eq!(e.terminates.len(), 1);
    assert_eq!(e.terminates[0].workflow_id, W1);
    assert_eq!(e.terminates[0].run_id, format!("run-{W1}"));
}
