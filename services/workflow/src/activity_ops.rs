//! What an operator does to pending activities: PauseActivity, UnpauseActivity,
//! ResetActivity and UpdateActivityOptions, applied as the Temporal server applies them.
//!
//! A paused activity gets no new attempt and no timeout; an attempt already running goes on
//! until the worker, told by its heartbeat response, gives up (its failure counts an attempt
//! that waits for the unpause). A reset sets the attempt back to 1 and, for a running
//! attempt, tells the worker through the heartbeat response.

use std::time::{Duration, SystemTime};

use temper_proto::temporal::api::activity::v1::ActivityOptions;
use temper_proto::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes;
use temper_proto::temporal::api::common::v1::{Priority, RetryPolicy};
use temper_proto::temporal::api::enums::v1::TimeoutType;
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;

use crate::activity::{arm_heartbeat_timer, dispatch, normalise_timeouts};
use crate::time::{dur_or_zero, from_dur, from_ts, ts};
use crate::{Txn, WorkflowError, pb, retry};

/// Temporal's answer when no pending activity matches.
pub const ACTIVITY_NOT_FOUND: &str =
    "Can't find pending activity with such ID. Invalid activityID or activity already completed";

/// Which pending activities a request names.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Id(&'a str),
    Type(&'a str),
    All,
}

/// The activity ids a target names; an id is named whether or not it is pending (as in
/// Temporal, whose later look-up then answers not found).
fn named(ms: &pb::MutableState, target: Target<'_>) -> Result<Vec<String>, WorkflowError> {
    let mut ids: Vec<(i64, String)> = match target {
        Target::Id(id) => vec![(0, id.to_string())],
        Target::Type(name) => ms
            .activities
            .values()
            .filter(|ai| ai.activity_type.as_ref().is_some_and(|t| t.name == name))
            .map(|ai| (ai.scheduled_event_id, ai.activity_id.clone()))
            .collect(),
        Target::All => ms
            .activities
            .values()
            .map(|ai| (ai.scheduled_event_id, ai.activity_id.clone()))
            .collect(),
    };
    if ids.is_empty() {
        return Err(WorkflowError::NotFound(ACTIVITY_NOT_FOUND.into()));
    }
    ids.sort();
    Ok(ids.into_iter().map(|(_, id)| id).collect())
}

/// The scheduled event id of the pending activity with this id.
fn find(ms: &pb::MutableState, activity_id: &str) -> Result<i64, WorkflowError> {
    ms.activities
        .values()
        .find(|ai| ai.activity_id == activity_id)
        .map(|ai| ai.scheduled_event_id)
        .ok_or_else(|| WorkflowError::NotFound(ACTIVITY_NOT_FOUND.into()))
}

fn running(txn: &Txn<'_>) -> Result<(), WorkflowError> {
    if txn.is_running() {
        Ok(())
    } else {
        Err(WorkflowError::AlreadyCompleted)
    }
}

fn activity<'t>(txn: &'t mut Txn<'_>, id: i64) -> &'t mut pb::ActivityInfo {
    txn.ms
        .activities
        .get_mut(&id)
        .expect("found in this transaction just before")
}

/// PauseActivity. Pausing again with the same request id (or none) is a no-op.
pub fn pause(
    txn: &mut Txn<'_>,
    target: Target<'_>,
    identity: &str,
    reason: &str,
    request_id: &str,
) -> Result<(), WorkflowError> {
    let now_ts = txn.now_ts;
    for activity_id in named(txn.ms, target)? {
        running(txn)?;
        let id = find(txn.ms, &activity_id)?;
        let ai = activity(txn, id);
        if ai.paused {
            if ai
                .pause_info
                .as_ref()
                .map(|p| p.request_id.as_str())
                .unwrap_or("")
                == request_id
            {
                continue;
            }
            return Err(WorkflowError::FailedPrecondition(
                "activity is already paused".into(),
            ));
        }
        ai.paused = true;
        ai.pause_info = Some(pb::ActivityPauseInfo {
            pause_time: Some(now_ts),
            identity: identity.to_string(),
            reason: reason.to_string(),
            request_id: request_id.to_string(),
        });
    }
    Ok(())
}

/// UnpauseActivity: a waiting activity is dispatched now (or within `jitter`); a running
/// one gets its timeouts back.
pub fn unpause(
    txn: &mut Txn<'_>,
    target: Target<'_>,
    reset_attempts: bool,
    reset_heartbeat: bool,
    jitter: Duration,
) -> Result<(), WorkflowError> {
    running(txn)?;
    for activity_id in named(txn.ms, target)? {
        let id = find(txn.ms, &activity_id)?;
        let ai = activity(txn, id);
        if !ai.paused {
            continue;
        }
        ai.paused = false;
        ai.pause_info = None;
        if reset_attempts {
            ai.attempt = 1;
        }
        if reset_heartbeat {
            ai.heartbeat_details = None;
            ai.last_heartbeat_time = None;
        }
        if is_waiting(ai) {
            reschedule(txn, id, jitter);
        } else {
            rearm_timers(txn, id);
        }
    }
    Ok(())
}

/// What ResetActivity asks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reset {
    pub reset_heartbeat: bool,
    pub keep_paused: bool,
    pub restore_original_options: bool,
    pub jitter: Duration,
}

/// ResetActivity: back to attempt 1. A waiting activity is dispatched anew; a running
/// attempt goes on, and its heartbeats answer `activity_reset` until it ends.
pub fn reset(txn: &mut Txn<'_>, target: Target<'_>, r: Reset) -> Result<(), WorkflowError> {
    for activity_id in named(txn.ms, target)? {
        running(txn)?;
        let id = find(txn.ms, &activity_id)?;
        let ai = activity(txn, id);
        let was_paused = ai.paused;
        ai.attempt = 1;
        ai.activity_reset = true;
        if r.reset_heartbeat {
            ai.reset_heartbeats = true;
        }
        if r.restore_original_options {
            let original = original_options(ai);
            set_options(ai, &original);
        }
        if was_paused && !r.keep_paused {
            ai.paused = false;
            ai.pause_info = None;
        }
        if ai.paused {
            continue;
        }
        if !is_waiting(ai) {
            if was_paused {
                rearm_timers(txn, id);
            }
            continue;
        }
        if r.reset_heartbeat {
            ai.heartbeat_details = None;
            ai.last_heartbeat_time = None;
        }
        reschedule(txn, id, r.jitter);
    }
    Ok(())
}

/// UpdateActivityOptions: `paths` are the update mask's (either spelling, as the Temporal
/// server parses them); returns the options of the last activity updated.
pub fn update_options(
    txn: &mut Txn<'_>,
    target: Target<'_>,
    options: Option<&ActivityOptions>,
    paths: Option<&[String]>,
    restore_original: bool,
) -> Result<ActivityOptions, WorkflowError> {
    let fields: Vec<String> = paths.unwrap_or_default().iter().map(|p| camel(p)).collect();
    if paths.is_some() && restore_original && !fields.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "Both UpdateMask and RestoreOriginal are provided".into(),
        ));
    }
    if restore_original {
        let mut last = None;
        for activity_id in named(txn.ms, target)? {
            let id = find(txn.ms, &activity_id)?;
            let original = original_options(activity(txn, id));
            last = Some(apply_options(txn, id, original));
        }
        return Ok(last.unwrap_or_default());
    }
    running(txn)?;
    let Some(from) = options else {
        return Err(WorkflowError::InvalidArgument(
            "ActivityOptions are not provided".into(),
        ));
    };
    let ids = named(txn.ms, target)?;
    if paths.is_none() {
        return Err(WorkflowError::InvalidArgument(
            "UpdateMask is not provided".into(),
        ));
    }
    let run_timeout = from_dur(&txn.info().workflow_run_timeout);
    let mut last = None;
    for activity_id in ids {
        let id = find(txn.ms, &activity_id)?;
        let mut into = current_options(activity(txn, id));
        merge(&mut into, from, &fields)?;
        if fields.iter().any(|f| f.starts_with("retryPolicy")) {
            let policy = into.retry_policy.clone().unwrap_or_default();
            retry::validate_policy(&policy).map_err(WorkflowError::InvalidArgument)?;
        }
        normalise(&mut into, &activity_id, run_timeout)?;
        last = Some(apply_options(txn, id, into));
    }
    Ok(last.unwrap_or_default())
}

/// Neither running nor ending: the activity waits for a worker or a retry.
fn is_waiting(ai: &pb::ActivityInfo) -> bool {
    ai.started_time.is_none() && !ai.cancel_requested
}

/// Dispatch the waiting attempt anew, at once or after a random part of `jitter`
/// (Temporal's RegenerateActivityRetryTask, which also ends a reset).
fn reschedule(txn: &mut Txn<'_>, id: i64, jitter: Duration) {
    let now = txn.now;
    let at = now + random_below(now, id, jitter);
    let ai = activity(txn, id);
    ai.scheduled_time = Some(ts(at));
    ai.last_failure = None;
    if ai.reset_heartbeats {
        ai.heartbeat_details = None;
        ai.last_heartbeat_time = None;
    }
    ai.activity_reset = false;
    ai.reset_heartbeats = false;
    ai.heartbeat_timer_pending = false;
    if at > now {
        ai.retry_time = Some(ts(at));
        let attempt = ai.attempt;
        let t = txn.timer_task(pb::TimerTaskKind::ActivityRetry, id, attempt);
        txn.add_timer_task(at, t);
    } else {
        ai.retry_time = None;
        let ai = ai.clone();
        dispatch(txn, &ai);
    }
    add_schedule_to_close_timer(txn, id);
}

/// A random offset below `jitter`. The workflow crate does no IO, so the randomness comes
/// from the clock's nanoseconds mixed with the activity.
pub(crate) fn random_below(now: SystemTime, id: i64, jitter: Duration) -> Duration {
    let nanos = jitter.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let mut x = t ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    Duration::from_nanos(x % nanos)
}

/// The timeouts a paused activity's timers skipped: armed again from what the state says.
fn rearm_timers(txn: &mut Txn<'_>, id: i64) {
    let ai = activity(txn, id).clone();
    if let Some(started) = ai.started_time.as_ref().map(from_ts) {
        let st2c = from_dur(&ai.start_to_close_timeout);
        if !st2c.is_zero() {
            let mut t = txn.timer_task(pb::TimerTaskKind::ActivityTimeout, id, ai.attempt);
            t.timeout_type = TimeoutType::StartToClose as i32;
            txn.add_timer_task(started + st2c, t);
        }
        let from = ai.last_heartbeat_time.as_ref().map_or(started, from_ts);
        activity(txn, id).heartbeat_timer_pending = false;
        arm_heartbeat_timer(txn, id, from);
    }
    add_schedule_to_close_timer(txn, id);
}

fn add_schedule_to_close_timer(txn: &mut Txn<'_>, id: i64) {
    if let Some(deadline) = activity(txn, id).expiration_time.as_ref().map(from_ts) {
        let mut t = txn.timer_task(pb::TimerTaskKind::ActivityTimeout, id, 0);
        t.timeout_type = TimeoutType::ScheduleToClose as i32;
        txn.add_timer_task(deadline, t);
    }
}

fn current_options(ai: &pb::ActivityInfo) -> ActivityOptions {
    ActivityOptions {
        task_queue: ai.task_queue.as_ref().map(|q| TaskQueue {
            name: q.name.clone(),
            ..Default::default()
        }),
        schedule_to_close_timeout: ai.schedule_to_close_timeout,
        schedule_to_start_timeout: ai.schedule_to_start_timeout,
        start_to_close_timeout: ai.start_to_close_timeout,
        heartbeat_timeout: ai.heartbeat_timeout,
        retry_policy: ai.retry_policy.clone(),
        priority: ai.priority.clone(),
        start_delay: None,
    }
}

fn original_options(ai: &pb::ActivityInfo) -> ActivityOptions {
    match &ai.original_options {
        Some(o) => ActivityOptions {
            task_queue: o.task_queue.as_ref().map(|q| TaskQueue {
                name: q.name.clone(),
                ..Default::default()
            }),
            schedule_to_close_timeout: o.schedule_to_close_timeout,
            schedule_to_start_timeout: o.schedule_to_start_timeout,
            start_to_close_timeout: o.start_to_close_timeout,
            heartbeat_timeout: o.heartbeat_timeout,
            retry_policy: o.retry_policy.clone(),
            priority: o.priority.clone(),
            start_delay: None,
        },
        None => current_options(ai),
    }
}

/// Write `o` into the activity, keeping what it was scheduled with the first time.
fn set_options(ai: &mut pb::ActivityInfo, o: &ActivityOptions) {
    if ai.original_options.is_none() {
        ai.original_options = Some(pb::ActivityOriginalOptions {
            task_queue: ai.task_queue.clone(),
            schedule_to_start_timeout: ai.schedule_to_start_timeout,
            schedule_to_close_timeout: ai.schedule_to_close_timeout,
            start_to_close_timeout: ai.start_to_close_timeout,
            heartbeat_timeout: ai.heartbeat_timeout,
            retry_policy: ai.retry_policy.clone(),
            priority: ai.priority.clone(),
        });
    }
    if let Some(q) = &o.task_queue {
        let queue = ai.task_queue.get_or_insert_with(Default::default);
        queue.name = q.name.clone();
    }
    ai.schedule_to_close_timeout = o.schedule_to_close_timeout;
    ai.schedule_to_start_timeout = o.schedule_to_start_timeout;
    ai.start_to_close_timeout = o.start_to_close_timeout;
    ai.heartbeat_timeout = o.heartbeat_timeout;
    ai.priority = o.priority.clone();
    let s2c = from_dur(&o.schedule_to_close_timeout);
    ai.expiration_time = match ai.first_scheduled_time.as_ref().map(from_ts) {
        Some(first) if !s2c.is_zero() => Some(ts(first + s2c)),
        _ => None,
    };
    let policy = ai.retry_policy.get_or_insert_with(Default::default);
    let from = o.retry_policy.clone().unwrap_or_default();
    policy.initial_interval = from.initial_interval;
    policy.backoff_coefficient = from.backoff_coefficient;
    policy.maximum_interval = from.maximum_interval;
    policy.maximum_attempts = from.maximum_attempts;
}

/// Update the activity's options; a waiting one is dispatched again under them.
fn apply_options(txn: &mut Txn<'_>, id: i64, o: ActivityOptions) -> ActivityOptions {
    let ai = activity(txn, id);
    set_options(ai, &o);
    if is_waiting(ai) && !ai.paused {
        let retry_at = ai.retry_time.as_ref().map(from_ts).filter(|t| *t > txn.now);
        let ai = activity(txn, id);
        match retry_at {
            Some(at) => {
                let attempt = ai.attempt;
                let t = txn.timer_task(pb::TimerTaskKind::ActivityRetry, id, attempt);
                txn.add_timer_task(at, t);
            }
            None => {
                ai.retry_time = None;
                let ai = ai.clone();
                dispatch(txn, &ai);
            }
        }
    }
    o
}

/// Temporal's field mask paths are camelCase; clients may send snake_case.
fn camel(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut upper = false;
    for c in path.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn invalid(m: &str) -> WorkflowError {
    WorkflowError::InvalidArgument(m.into())
}

/// Temporal's MergeActivityOptions.
fn merge(
    into: &mut ActivityOptions,
    from: &ActivityOptions,
    fields: &[String],
) -> Result<(), WorkflowError> {
    let has = |f: &str| fields.iter().any(|x| x == f);
    if has("taskQueue.name") {
        let q = from
            .task_queue
            .as_ref()
            .ok_or_else(|| invalid("TaskQueue is not provided"))?;
        into.task_queue.get_or_insert_with(Default::default).name = q.name.clone();
    }
    if has("scheduleToCloseTimeout") {
        into.schedule_to_close_timeout = from.schedule_to_close_timeout;
    }
    if has("scheduleToStartTimeout") {
        into.schedule_to_start_timeout = from.schedule_to_start_timeout;
    }
    if has("startToCloseTimeout") {
        into.start_to_close_timeout = from.start_to_close_timeout;
    }
    if has("heartbeatTimeout") {
        into.heartbeat_timeout = from.heartbeat_timeout;
    }
    if has("priority") {
        into.priority = from.priority.clone();
    }
    fn priority<'o>(
        into: &'o mut ActivityOptions,
        from: &ActivityOptions,
    ) -> Result<(Priority, &'o mut Priority), WorkflowError> {
        let p = from
            .priority
            .clone()
            .ok_or_else(|| invalid("Priority is not provided"))?;
        Ok((p, into.priority.get_or_insert_with(Default::default)))
    }
    if has("priority.priorityKey") {
        let (p, i) = priority(into, from)?;
        i.priority_key = p.priority_key;
    }
    if has("priority.fairnessKey") {
        let (p, i) = priority(into, from)?;
        i.fairness_key = p.fairness_key;
    }
    if has("priority.fairnessWeight") {
        let (p, i) = priority(into, from)?;
        i.fairness_weight = p.fairness_weight;
    }
    if has("retryPolicy") {
        into.retry_policy = Some(
            from.retry_policy
                .clone()
                .ok_or_else(|| invalid("RetryPolicy is not provided"))?,
        );
    }
    fn policy<'o>(
        into: &'o mut ActivityOptions,
        from: &ActivityOptions,
    ) -> Result<(RetryPolicy, &'o mut RetryPolicy), WorkflowError> {
        let p = from
            .retry_policy
            .clone()
            .ok_or_else(|| invalid("RetryPolicy is not provided"))?;
        Ok((p, into.retry_policy.get_or_insert_with(Default::default)))
    }
    if has("retryPolicy.initialInterval") {
        let (p, i) = policy(into, from)?;
        i.initial_interval = p.initial_interval;
    }
    if has("retryPolicy.backoffCoefficient") {
        let (p, i) = policy(into, from)?;
        i.backoff_coefficient = p.backoff_coefficient;
    }
    if has("retryPolicy.maximumInterval") {
        let (p, i) = policy(into, from)?;
        i.maximum_interval = p.maximum_interval;
    }
    if has("retryPolicy.maximumAttempts") {
        let (p, i) = policy(into, from)?;
        i.maximum_attempts = p.maximum_attempts;
    }
    if has("startDelay") {
        into.start_delay = from.start_delay;
    }
    Ok(())
}

/// The timeouts as a ScheduleActivityTask command with these options would get them.
fn normalise(
    o: &mut ActivityOptions,
    activity_id: &str,
    run_timeout: Duration,
) -> Result<(), WorkflowError> {
    let attrs = ScheduleActivityTaskCommandAttributes {
        activity_id: activity_id.to_string(),
        task_queue: o.task_queue.clone(),
        schedule_to_close_timeout: o.schedule_to_close_timeout,
        schedule_to_start_timeout: o.schedule_to_start_timeout,
        start_to_close_timeout: o.start_to_close_timeout,
        heartbeat_timeout: o.heartbeat_timeout,
        ..Default::default()
    };
    let (s2c, s2s, st2c) =
        normalise_timeouts(&attrs, run_timeout).map_err(|b| invalid(&b.message))?;
    let mut hb = from_dur(&o.heartbeat_timeout);
    if !st2c.is_zero() && hb > st2c {
        hb = st2c;
    }
    o.schedule_to_close_timeout = dur_or_zero(s2c);
    o.schedule_to_start_timeout = dur_or_zero(s2s);
    o.start_to_close_timeout = dur_or_zero(st2c);
    o.heartbeat_timeout = dur_or_zero(hb);
    Ok(())
}

#[cfg(test)]
#[path = "activity_ops_tests.rs"]
mod tests;
