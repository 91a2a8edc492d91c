//! Pause, unpause, reset and option updates on a pending activity, through the state machine.

use std::time::Duration;

use temper_proto::temporal::api::activity::v1::ActivityOptions;
use temper_proto::temporal::api::common::v1::RetryPolicy;
use temper_proto::temporal::api::enums::v1::TimeoutType;
use temper_proto::temporal::api::failure::v1::Failure;

use super::{ACTIVITY_NOT_FOUND, Reset, Target, pause, reset, unpause, update_options};
use crate::WorkflowError;
use crate::activity;
use crate::tests::{Harness, schedule_activity};
use crate::time::dur;

fn scheduled(max_attempts: i32) -> (Harness, i64) {
    let mut h = Harness::start();
    h.check_replay = false;
    let policy = RetryPolicy {
        maximum_attempts: max_attempts,
        initial_interval: dur(Duration::from_secs(1)),
        ..Default::default()
    };
    h.complete_wt(vec![schedule_activity("a1", Some(policy))]);
    let sched = *h.ms.activities.keys().next().expect("pending");
    (h, sched)
}

fn failure() -> Failure {
    Failure {
        message: "x".into(),
        ..Default::default()
    }
}

#[test]
fn a_paused_activity_is_not_started_until_unpaused() {
    let (mut h, sched) = scheduled(0);
    h.apply(|t| pause(t, Target::Id("a1"), "op", "why", ""))
        .expect("pauses");
    let ai = &h.ms.activities[&sched];
    assert!(ai.paused);
    assert_eq!(
        ai.pause_info.as_ref().map(|p| p.reason.as_str()),
        Some("why")
    );
    assert!(
        h.apply(|t| activity::record_started(t, sched, 1, "p", "w"))
            .is_err(),
        "a paused activity is not handed to a worker"
    );
    h.apply(|t| unpause(t, Target::Id("a1"), false, false, Duration::ZERO))
        .expect("unpauses");
    assert_eq!(h.last.transfer.len(), 1, "dispatched again");
    assert!(!h.ms.activities[&sched].paused);
    h.apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts once unpaused");
}

#[test]
fn pausing_twice_is_a_no_op_only_for_the_same_request() {
    let (mut h, _) = scheduled(0);
    h.apply(|t| pause(t, Target::Type("A"), "op", "", "r1"))
        .expect("pauses");
    h.apply(|t| pause(t, Target::Id("a1"), "op", "", "r1"))
        .expect("same request");
    let again = h.apply(|t| pause(t, Target::Id("a1"), "op", "", "r2"));
    assert!(
        matches!(again, Err(WorkflowError::FailedPrecondition(m)) if m == "activity is already paused")
    );
}

#[test]
fn an_unknown_activity_is_not_found() {
    let (mut h, _) = scheduled(0);
    for r in [
        h.apply(|t| pause(t, Target::Id("nope"), "", "", "")),
        h.apply(|t| pause(t, Target::Type("Nope"), "", "", "")),
        h.apply(|t| unpause(t, Target::Id("nope"), false, false, Duration::ZERO)),
        h.apply(|t| reset(t, Target::Id("nope"), Reset::default())),
    ] {
        assert!(matches!(r, Err(WorkflowError::NotFound(m)) if m == ACTIVITY_NOT_FOUND));
    }
}

#[test]
fn a_running_paused_activity_hears_it_and_its_failure_waits_for_the_unpause() {
    let (mut h, sched) = scheduled(1);
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts");
    h.apply(|t| pause(t, Target::Id("a1"), "op", "", ""))
        .expect("pauses");
    let answer = h.apply(|t| activity::heartbeat(t, &ai, None));
    assert!(answer.paused && !answer.reset && !answer.cancel_requested);
    h.apply(|t| activity::on_timeout(t, sched, 1, TimeoutType::StartToClose as i32));
    assert!(h.last.events.is_empty(), "no timeout while paused");
    let ai = h.ms.activities[&sched].clone();
    h.apply(|t| activity::fail(t, &ai, failure(), "w", None));
    assert!(
        h.last.events.is_empty(),
        "the failure counts an attempt, even past the maximum"
    );
    assert!(
        h.last.timers.is_empty(),
        "and schedules no retry while paused"
    );
    assert_eq!(h.ms.activities[&sched].attempt, 2);
    h.apply(|t| unpause(t, Target::All, false, false, Duration::ZERO))
        .expect("unpauses");
    assert_eq!(h.last.transfer.len(), 1, "attempt 2 is dispatched at once");
    h.apply(|t| activity::record_started(t, sched, 2, "p2", "w"))
        .expect("attempt 2 starts");
}

#[test]
fn reset_of_a_running_attempt_is_told_by_heartbeat_and_ends_with_it() {
    let (mut h, sched) = scheduled(3);
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts");
    h.apply(|t| activity::heartbeat(t, &ai, None));
    h.apply(|t| {
        reset(
            t,
            Target::Id("a1"),
            Reset {
                reset_heartbeat: true,
                ..Default::default()
            },
        )
    })
    .expect("resets");
    let answer = h.apply(|t| activity::heartbeat(t, &ai, None));
    assert!(answer.reset && !answer.paused);
    let ai = h.ms.activities[&sched].clone();
    h.apply(|t| activity::fail(t, &ai, failure(), "w", None));
    let after = &h.ms.activities[&sched];
    assert_eq!(after.attempt, 2);
    assert!(!after.activity_reset && after.last_heartbeat_time.is_none());
}

#[test]
fn reset_of_a_waiting_retry_starts_again_at_attempt_one() {
    let (mut h, sched) = scheduled(0);
    let ai = h
        .apply(|t| activity::record_started(t, sched, 1, "p", "w"))
        .expect("starts");
    h.apply(|t| activity::fail(t, &ai, failure(), "w", None));
    assert_eq!(h.ms.activities[&sched].attempt, 2);
    h.apply(|t| reset(t, Target::Id("a1"), Reset::default()))
        .expect("resets");
    assert_eq!(
        h.last.transfer.len(),
        1,
        "dispatched without waiting for the backoff"
    );
    h.apply(|t| activity::record_started(t, sched, 1, "p2", "w"))
        .expect("attempt 1 starts at once");
}

#[test]
fn reset_keep_paused_stays_paused() {
    let (mut h, sched) = scheduled(0);
    h.apply(|t| pause(t, Target::Id("a1"), "", "", ""))
        .expect("pauses");
    h.apply(|t| {
        reset(
            t,
            Target::Id("a1"),
            Reset {
                keep_paused: true,
                ..Default::default()
            },
        )
    })
    .expect("resets");
    assert!(h.ms.activities[&sched].paused);
    assert!(h.last.transfer.is_empty());
}

#[test]
fn update_options_merges_the_mask_and_restores_the_original() {
    let (mut h, sched) = scheduled(0);
    let options = ActivityOptions {
        heartbeat_timeout: dur(Duration::from_secs(5)),
        retry_policy: Some(RetryPolicy {
            maximum_attempts: 7,
            ..Default::default()
        }),
        ..Default::default()
    };
    let paths = vec![
        "heartbeat_timeout".to_string(),
        "retry_policy.maximum_attempts".to_string(),
    ];
    let got = h
        .apply(|t| update_options(t, Target::Id("a1"), Some(&options), Some(&paths), false))
        .expect("updates");
    assert_eq!(got.heartbeat_timeout, dur(Duration::from_secs(5)));
    assert_eq!(
        got.retry_policy.as_ref().map(|p| p.maximum_attempts),
        Some(7)
    );
    assert_eq!(
        got.start_to_close_timeout,
        dur(Duration::from_secs(10)),
        "untouched"
    );
    let ai = &h.ms.activities[&sched];
    assert_eq!(
        ai.retry_policy.as_ref().map(|p| p.maximum_attempts),
        Some(7)
    );
    let restored = h
        .apply(|t| update_options(t, Target::Id("a1"), None, None, true))
        .expect("restores");
    assert_eq!(
        restored.heartbeat_timeout,
        h.ms.activities[&sched].heartbeat_timeout
    );
    assert_eq!(
        restored.retry_policy.as_ref().map(|p| p.maximum_attempts),
        Some(0)
    );
    let bad = h.apply(|t| update_options(t, Target::Id("a1"), Some(&options), None, false));
    assert!(
        matches!(bad, Err(WorkflowError::InvalidArgument(m)) if m == "UpdateMask is not provided")
    );
}

#[test]
fn a_running_attempts_sub_second_timeout_fires_a_second_after_it_was_set() {
    let (mut h, sched) = scheduled(1);
    for (timeout, after) in [
        (Duration::from_millis(200), Duration::from_secs(1)),
        (Duration::from_secs(3), Duration::from_secs(3)),
    ] {
        if let Some(ai) = h.ms.activities.get_mut(&sched) {
            ai.start_to_close_timeout = dur(timeout);
            ai.started_time = None;
        }
        h.apply(|t| activity::record_started(t, sched, 1, "p", "w"))
            .expect("starts");
        let (at, _) = h
            .last
            .timers
            .iter()
            .find(|(_, t)| t.timeout_type == TimeoutType::StartToClose as i32)
            .expect("the start-to-close timer");
        assert_eq!(*at, h.now + after, "timeout {timeout:?}");
    }
}
