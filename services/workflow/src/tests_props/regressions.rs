//! Plain regression tests, one per finding of the property test, each with the input it
//! shrank to.

use temper_proto::temporal::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use temper_proto::temporal::api::history::v1::{HistoryEvent, history_event::Attributes};

use crate::rebuild::RebuildRun;
use crate::reset::{Reset, reset};
use crate::update;
use crate::workflow_task::StartRequest;

use super::world::check_reset_run;
use super::*;

/// The cause of the history's last WorkflowTaskFailed event.
fn last_failed_cause(history: &[HistoryEvent]) -> Option<i32> {
    history.iter().rev().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowTaskFailedEventAttributes(a)) => Some(a.cause),
        _ => None,
    })
}

fn round(commands: Vec<Cmd>) -> Input {
    Input::WorkflowTaskRound(Completed {
        commands,
        messages: Vec::new(),
        sticky: false,
        force_new: false,
    })
}

/// Found by the property test: timer t3 fires while a workflow task runs (its TimerFired is
/// buffered), and the workflow, which has not seen the fire, starts a timer t3 again. The
/// new timer was started, then the buffered TimerFired of the old one was written after it,
/// so replay took the fire for the new timer: the live state had t3 pending, the history
/// none. From the workflow's view t3 is still running: the start is a duplicate id.
#[test]
fn a_timer_id_whose_fire_is_buffered_cannot_be_started_again() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            round(vec![
                Cmd::StartChild { id: 0 },
                Cmd::StartTimer { id: 3, secs: 0 },
            ]),
            Input::ChildStartFailed {
                target: Target::Pending(Index(0)),
            },
            // The first workflow task's timeout: stale.
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
            Input::StartWorkflowTask {
                stale: false,
                poll: 0,
            },
            // Timer t3.
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
            Input::CompleteWorkflowTask {
                completed: Completed {
                    commands: vec![Cmd::StartTimer { id: 3, secs: 0 }],
                    messages: Vec::new(),
                    sticky: false,
                    force_new: false,
                },
                stale_token: false,
            },
        ],
    );
    assert_eq!(
        last_failed_cause(&w.run.history),
        Some(WorkflowTaskFailedCause::StartTimerDuplicateId as i32)
    );
}

fn completed(commands: Vec<Cmd>, sticky: bool) -> Completed {
    Completed {
        commands,
        messages: Vec::new(),
        sticky,
        force_new: false,
    }
}

const NO_LIMITS: SmallLimits = SmallLimits {
    pending: None,
    history_events: None,
    start: StartKind::Plain,
};

/// Found by the property test: ResetStickyTaskQueue on a closed run cleared its sticky
/// queue and wrote its state again; Temporal refuses it (NotFound "workflow execution
/// already completed") and a closed run's stored state does not change.
#[test]
fn reset_sticky_on_a_closed_run_is_refused() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            Input::WorkflowTaskRound(completed(Vec::new(), true)),
            Input::Terminate,
            Input::ResetSticky,
        ],
    );
    let info = w.run.stored.execution_info.as_ref().expect("info");
    assert_eq!(
        info.sticky_task_queue, "sticky",
        "left as it was at the close"
    );
}

/// Found by the property test: a workflow task scheduled on the sticky queue and moved to the
/// normal queue (its worker was gone) writes no event, as in Temporal, so replay gives the
/// sticky queue; the replay check accepts that one difference (see `assert_replays`).
#[test]
fn a_task_moved_to_the_normal_queue_still_replays() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            Input::WorkflowTaskRound(completed(Vec::new(), true)),
            Input::Signal {
                name: 0,
                request: 0,
            },
            Input::MoveToNormalQueue,
        ],
    );
    let wt = w.run.stored.workflow_task.as_ref().expect("scheduled");
    assert_eq!(wt.task_queue.as_ref().map(|q| q.name.as_str()), Some("tq"));
}

/// Found by the property test: a cron run terminated while it waited out its first workflow
/// task's backoff; the backoff timer then fired and cleared the backoff on the closed run
/// (its stored state changed after the close, and no event said so).
#[test]
fn the_backoff_timer_of_a_closed_run_changes_nothing() {
    run_inputs(
        SmallLimits {
            start: StartKind::Cron,
            ..NO_LIMITS
        },
        &[
            Input::Terminate,
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
        ],
    );
}

/// Found by the property test: an update admitted while the run waited out its first
/// workflow task's backoff got a speculative task; the backoff timer then found a task
/// pending, cleared the backoff without an event and scheduled nothing (replay kept the
/// backoff; a discarded speculative task would have left the run without a first task).
/// As for a signal, the update now waits for the first workflow task, which delivers it.
#[test]
fn an_update_during_the_first_task_backoff_rides_on_the_first_task() {
    let mut w = run_inputs(
        SmallLimits {
            start: StartKind::Delay,
            ..NO_LIMITS
        },
        &[
            Input::AdmitUpdate { id: 0, valid: true },
            Input::FireTimerTask {
                pick: Index(0),
                redeliver: false,
            },
        ],
    );
    let wt = w.run.ms.workflow_task.clone().expect("the first task");
    assert!(!wt.speculative);
    let scheduled = wt.scheduled_event_id;
    let (_, messages) = w
        .apply(|t| {
            update::record_workflow_task_started(
                t,
                StartRequest {
                    poller: Default::default(),
                    scheduled_event_id: scheduled,
                    request_id: "poll",
                    identity: "w",
                },
            )
        })
        .expect("starts");
    assert_eq!(messages.len(), 1, "the update is delivered with it");
}

/// Found by the property test (resetting every run it drives): a reset to a point between
/// an activity's ActivityTaskStarted and its end left the activity in flight in the new run,
/// waiting for a worker that reports to the old run, and its history said it had started.
/// As in Temporal, the reset now fails such an activity (ActivityTaskFailed, non-retryable,
/// with the reset's reason) right after failing the workflow task.
#[test]
fn a_reset_fails_the_activities_in_flight_at_its_point() {
    let w = run_inputs(
        NO_LIMITS,
        &[
            round(vec![Cmd::ScheduleActivity {
                id: 0,
                timeouts: 1,
                max_attempts: 0,
            }]),
            Input::ActivityStarted {
                target: Target::Pending(Index(0)),
                poll: 0,
            },
            Input::Signal {
                name: 0,
                request: 0,
            },
            Input::ActivityCompleted {
                target: Target::Pending(Index(0)),
                stale_attempt: false,
            },
        ],
    );
    let types: Vec<EventType> = w
        .run
        .history
        .iter()
        .map(|e| EventType::try_from(e.event_type).expect("known"))
        .collect();
    assert_eq!(
        types[4..],
        [
            EventType::ActivityTaskScheduled,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
        ]
    );
    let run = RebuildRun {
        namespace_id: "ns",
        namespace: "",
        workflow_id: "wf",
        run_id: "reset-run",
        request_id: "reset",
    };
    let new = reset(
        &w.run.history,
        &[],
        Reset {
            run,
            base_run_id: "run",
            reason: "try again",
            // Between the activity's started (8) and completed (9) events.
            workflow_task_finish_event_id: 9,
            reapply_signals: true,
            base_tail: &[],
            now: w.run.now,
        },
        &w.run.limits,
    )
    .expect("reset");
    assert!(new.ms.activities.is_empty(), "no activity left in flight");
    let failed = new
        .mutation
        .events
        .iter()
        .find_map(|e| match &e.attributes {
            Some(Attributes::ActivityTaskFailedEventAttributes(a)) => Some(a.clone()),
            _ => None,
        })
        .expect("the activity is failed");
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (5, 8));
    assert_eq!(
        failed.retry_state,
        temper_proto::temporal::api::enums::v1::RetryState::NonRetryableFailure as i32
    );
    check_reset_run(&new, run);
}

/// Found by the property test: an eagerly started run counted its started event in the
/// history size before `eager_execution_accepted` was set on it, so its history size was
/// short by the flag's bytes (replay counts the event as written).
#[test]
fn an_eager_start_counts_its_started_event_as_written() {
    let w = run_inputs(
        SmallLimits {
            start: StartKind::Eager,
            ..NO_LIMITS
        },
        &[],
    );
    use prost::Message as _;
    let written: i64 = w.run.history.iter().map(|e| e.encoded_len() as i64).sum();
    let info = w.run.stored.execution_info.as_ref().expect("info");
    assert_eq!(info.history_size_bytes, written);
}
