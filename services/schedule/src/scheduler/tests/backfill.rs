//! Trigger immediately and backfill.

use super::*;
use ScheduleOverlapPolicy::*;
use temporalio_protos::temporal::api::enums::v1::WorkflowIdReusePolicy;
use temporalio_protos::temporal::api::schedule::v1::{BackfillRequest, TriggerImmediatelyRequest};

fn backfill(start: &str, end: &str, policy: ScheduleOverlapPolicy) -> SchedulePatch {
    SchedulePatch {
        backfill_request: vec![BackfillRequest {
            start_time: Some(crate::timestamp_to_proto(ts(start))),
            end_time: Some(crate::timestamp_to_proto(ts(end))),
            overlap_policy: policy as i32,
        }],
        ..Default::default()
    }
}

fn trigger(policy: ScheduleOverlapPolicy, at: Option<&str>) -> SchedulePatch {
    SchedulePatch {
        trigger_immediately: Some(TriggerImmediatelyRequest {
            overlap_policy: policy as i32,
            scheduled_time: at.map(|t| crate::timestamp_to_proto(ts(t))),
        }),
        ..Default::default()
    }
}

#[test]
fn trigger_starts_now_with_the_trigger_time_as_nominal() {
    let (mut state, _) = minutely(Skip);
    let e = patch(
        &mut state,
        trigger(Unspecified, None),
        "2025-01-01T00:00:20.250Z",
    );
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:00:20Z"]);
    assert_eq!(e.starts[0].nominal_time, ts("2025-01-01T00:00:20.250Z"));
    assert_eq!(e.starts[0].actual_time, ts("2025-01-01T00:00:20.250Z"));
    assert_eq!(
        e.starts[0].request.workflow_id_reuse_policy,
        WorkflowIdReusePolicy::AllowDuplicate as i32
    );
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:01:00Z")));
    // A trigger does not change the conflict token (Temporal bumps it for pause/unpause only).
    assert_eq!(state.conflict_token, 1);
    // The scheduled_time the frontend stamps wins over the handling time.
    let (mut state, _) = minutely(AllowAll);
    let e = patch(
        &mut state,
        trigger(Unspecified, Some("2025-01-01T00:00:05Z")),
        "2025-01-01T00:00:07Z",
    );
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:00:05Z"]);
}

#[test]
fn trigger_uses_its_overlap_policy_or_the_schedules() {
    let (mut state, _) = minutely(Skip);
    let e = patch(
        &mut state,
        trigger(Unspecified, None),
        "2025-01-01T00:00:10Z",
    );
    start_all(&mut state, &e, "2025-01-01T00:00:10Z");
    // The schedule's SKIP: a second trigger while the first runs is skipped.
    let e = patch(
        &mut state,
        trigger(Unspecified, None),
        "2025-01-01T00:00:20Z",
    );
    assert!(e.starts.is_empty());
    assert_eq!(info(&state).overlap_skipped, 1);
    // Its own ALLOW_ALL: starts anyway.
    let e = patch(&mut state, trigger(AllowAll, None), "2025-01-01T00:00:30Z");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:00:30Z"]);
    // Triggers run while paused.
    patch(
        &mut state,
        SchedulePatch {
            pause: "p".into(),
            ..Default::default()
        },
        "2025-01-01T00:00:40Z",
    );
    let e = patch(&mut state, trigger(AllowAll, None), "2025-01-01T00:00:50Z");
    assert_eq!(e.starts.len(), 1);
}

#[test]
fn backfill_includes_both_ends_of_the_range() {
    let (mut state, _) = minutely(Skip);
    patch(
        &mut state,
        SchedulePatch {
            pause: "p".into(),
            ..Default::default()
        },
        "2025-01-01T00:00:01Z",
    );
    let e = patch(
        &mut state,
        backfill("2024-06-01T00:00:00Z", "2024-06-01T00:03:00Z", AllowAll),
        "2025-01-01T00:00:02Z",
    );
    assert_eq!(
        ids(&e),
        vec![
            "wf-2024-06-01T00:00:00Z",
            "wf-2024-06-01T00:01:00Z",
            "wf-2024-06-01T00:02:00Z",
            "wf-2024-06-01T00:03:00Z",
        ]
    );
    // Not subject to the catch-up window, the pause, or the update time.
    assert_eq!(info(&state).missed_catchup_window, 0);
    assert!(e.starts.iter().all(
        |s| s.request.workflow_id_reuse_policy == WorkflowIdReusePolicy::AllowDuplicate as i32
    ));
    assert!(state.ongoing_backfills.is_empty());
    assert_eq!(e.next_wake, None, "paused");
}

#[test]
fn long_allow_all_backfill_runs_ten_per_second() {
    let (mut state, _) = minutely(Skip);
    let e = patch(
        &mut state,
        backfill("2024-06-01T00:00:00Z", "2024-06-01T00:24:00Z", AllowAll),
        "2025-01-01T00:00:10Z",
    );
    assert_eq!(e.starts.len(), 10);
    assert_eq!(e.starts[9].request.workflow_id, "wf-2024-06-01T00:09:00Z");
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:00:11Z")));
    let e = wake(&mut state, "2025-01-01T00:00:11Z");
    assert_eq!(e.starts.len(), 10);
    assert_eq!(e.starts[0].request.workflow_id, "wf-2024-06-01T00:10:00Z");
    let e = wake(&mut state, "2025-01-01T00:00:12Z");
    assert_eq!(e.starts.len(), 5);
    assert!(state.ongoing_backfills.is_empty());
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:01:00Z")));
}

#[test]
fn backfill_with_buffer_all_queues_behind_the_running_run() {
    let (mut state, _) = minutely(Skip);
    let e = patch(
        &mut state,
        backfill("2024-06-01T00:00:00Z", "2024-06-01T00:02:00Z", BufferAll),
        "2025-01-01T00:00:10Z",
    );
    assert_eq!(ids(&e), vec!["wf-2024-06-01T00:00:00Z"]);
    assert_eq!(state.buffered_starts.len(), 2);
    assert!(state.buffered_starts.iter().all(|b| b.manual && b.backfill));
    start_all(&mut state, &e, "2025-01-01T00:00:10Z");
    let e = close(
        &mut state,
        "wf-2024-06-01T00:00:00Z",
        WorkflowExecutionStatus::Completed,
        "2025-01-01T00:00:20Z",
    );
    assert_eq!(ids(&e), vec!["wf-2024-06-01T00:01:00Z"]);
}

#[test]
fn initial_patch_applies_at_creation() {
    let (state, e) = create(
        "ns",
        "ns-id",
        "sched",
        schedule(every(60), Skip),
        Some(trigger(Unspecified, None)),
        ts("2025-01-01T00:00:30Z"),
    )
    .expect("create");
    assert_eq!(ids(&e), vec!["wf-2025-01-01T00:00:30Z"]);
    assert_eq!(state.pending_starts.len(), 1);
    assert_eq!(e.next_wake, Some(ts("2025-01-01T00:01:00Z")));
}
