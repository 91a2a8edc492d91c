//! One iteration of the scheduler: the spec's times that came due, the input, backfills,
//! the buffer, and the next wake-up.
//!
//! As Temporal's `processTimeRange`: the times after `last_processed_time` whose actual
//! (jittered) time is not after `now` are buffered, except that a time more than the
//! catch-up window before `now` is counted in `missed_catchup_window` instead, and a time
//! before the last update is dropped. While paused or out of remaining actions the range
//! is skipped whole (not counted as missed). `last_processed_time` moves to the last time
//! examined, not to `now`, so a time whose nominal time has passed but whose jittered time
//! has not is found again next time.

use jiff::{SignedDuration, Timestamp};
use temper_proto::persistence::v1::{SchedulerBufferedStart, SchedulerState};
use temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy;
use temporalio_protos::temporal::api::schedule::v1::{Schedule, SchedulePatch};

use super::{Effects, SchedulerError, last_processed, limits};
use crate::{CompiledSpec, jitter_seed, timestamp_from_proto, timestamp_to_proto};

/// The state during one call, with its compiled spec and the effects collected so far.
pub(super) struct Iteration<'a> {
    pub(super) state: &'a mut SchedulerState,
    pub(super) spec: CompiledSpec,
    pub(super) now: Timestamp,
    pub(super) effects: Effects,
}

/// What a time range gave: the first time after it (when to wake up) and the last time
/// examined in it.
struct RangeResult {
    next: Option<Timestamp>,
    last: Timestamp,
}

/// Runs one iteration at `now`; `apply` applies the input after the elapsed time range is
/// processed and says whether the schedule changed (then the range is searched again with
/// the new spec for the next wake-up).
pub(super) fn iterate(
    state: &mut SchedulerState,
    now: Timestamp,
    apply: impl FnOnce(&mut Iteration<'_>) -> Result<bool, SchedulerError>,
) -> Result<Effects, SchedulerError> {
    if state.schedule.is_none() {
        return Err(SchedulerError::Internal(
            "the state holds no schedule".into(),
        ));
    }
    let spec = compile(state)?;
    let mut it = Iteration {
        state,
        spec,
        now,
        effects: Effects::default(),
    };
    let t1 = last_processed(it.state);
    // Time never goes backwards for the schedule.
    let t2 = now.max(t1);
    let range = it.process_time_range(t1, t2, ScheduleOverlapPolicy::Unspecified, false, None);
    it.state.last_processed_time = Some(timestamp_to_proto(range.last));
    let mut next_wake = range.next;
    if apply(&mut it)? {
        it.spec = compile(it.state)?;
        let from = last_processed(it.state);
        let range =
            it.process_time_range(from, t2, ScheduleOverlapPolicy::Unspecified, false, None);
        // Temporal keeps the earlier mark here and so examines these times again on its next
        // wake-up (issuing a start that fails as already started); moving on avoids that.
        it.state.last_processed_time = Some(timestamp_to_proto(range.last));
        next_wake = range.next;
    }
    it.process_backfills();
    while it.process_buffer() {}

    it.effects.next_wake = if it.has_more_allow_all_backfills() {
        now.checked_add(SignedDuration::from_secs(1)).ok()
    } else if !it.can_take_scheduled_action(false, false) {
        None
    } else {
        next_wake
    };
    Ok(it.effects)
}

pub(super) fn compile(state: &SchedulerState) -> Result<CompiledSpec, SchedulerError> {
    let spec = state
        .schedule
        .as_ref()
        .and_then(|s| s.spec.clone())
        .unwrap_or_default();
    let compiled = CompiledSpec::compile(&spec)
        .map_err(|e| SchedulerError::Internal(format!("stored spec: {e}")))?;
    Ok(compiled.with_jitter_seed(jitter_seed(&state.namespace_id, &state.schedule_id)))
}

impl Iteration<'_> {
    pub(super) fn schedule(&self) -> &Schedule {
        self.state
            .schedule
            .as_ref()
            .expect("iterate checks that the state holds a schedule")
    }

    fn schedule_mut(&mut self) -> &mut Schedule {
        self.state.schedule.get_or_insert_with(Default::default)
    }

    pub(super) fn info_mut(&mut self) -> &mut super::ScheduleInfo {
        self.state.info.get_or_insert_with(Default::default)
    }

    /// Temporal's `canTakeScheduledAction`: manual actions always may; scheduled ones not
    /// while paused or out of remaining actions. With `decrement`, uses up one action (and
    /// bumps the conflict token, as Temporal does).
    pub(super) fn can_take_scheduled_action(&mut self, manual: bool, decrement: bool) -> bool {
        if manual {
            return true;
        }
        let Some(state) = self.schedule_mut().state.as_mut() else {
            return true;
        };
        if state.paused {
            return false;
        }
        if !state.limited_actions {
            return true;
        }
        if state.remaining_actions > 0 {
            if decrement {
                state.remaining_actions -= 1;
                self.state.conflict_token += 1;
            }
            return true;
        }
        false
    }

    pub(super) fn catchup_window(&self) -> SignedDuration {
        catchup_window(self.schedule())
    }

    /// The overlap policy a start uses: its own, else the schedule's, else SKIP.
    pub(super) fn resolve_overlap_policy(&self, policy: i32) -> ScheduleOverlapPolicy {
        let own = ScheduleOverlapPolicy::try_from(policy).unwrap_or_default();
        if own != ScheduleOverlapPolicy::Unspecified {
            return own;
        }
        let schedule = self
            .schedule()
            .policies
            .as_ref()
            .map(|p| ScheduleOverlapPolicy::try_from(p.overlap_policy).unwrap_or_default())
            .unwrap_or_default();
        if schedule != ScheduleOverlapPolicy::Unspecified {
            schedule
        } else {
            ScheduleOverlapPolicy::Skip
        }
    }

    fn update_time(&self) -> Option<Timestamp> {
        self.state
            .info
            .as_ref()
            .and_then(|i| i.update_time.as_ref())
            .map(timestamp_from_proto)
    }

    /// The spec's next time after `after`: (nominal, actual). A search that gives up
    /// (over-excluded spec) ends the schedule's times, as Temporal's does.
    pub(super) fn next_time(&self, after: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match self.spec.next_time(after) {
            Ok(Some(t)) => Some((t.nominal, t.actual)),
            Ok(None) | Err(_) => None,
        }
    }

    /// Buffers the spec's times in `(start, end]` (by actual time). Returns the time after
    /// the range (or, when `limit` ran out, the last time buffered) and the last examined.
    fn process_time_range(
        &mut self,
        start: Timestamp,
        end: Timestamp,
        overlap_policy: ScheduleOverlapPolicy,
        manual: bool,
        mut limit: Option<&mut usize>,
    ) -> RangeResult {
        if !manual && !self.can_take_scheduled_action(false, false) {
            // Skip the whole range while paused or out of actions; not counted as missed.
            return RangeResult {
                next: self.next_time(end).map(|(_, actual)| actual),
                last: end,
            };
        }
        let catchup = self.catchup_window();
        let update_time = self.update_time();
        let mut last = start;
        let mut after = start;
        loop {
            let Some((nominal, actual)) = self.next_time(after) else {
                return RangeResult { next: None, last };
            };
            if actual > end {
                return RangeResult {
                    next: Some(actual),
                    last,
                };
            }
            after = actual;
            last = actual;
            if !manual && update_time.is_some_and(|u| u > actual) {
                // Due before the last update: the new schedule does not take it.
                continue;
            }
            if !manual && end.duration_since(actual) > catchup {
                self.info_mut().missed_catchup_window += 1;
                continue;
            }
            self.add_start(nominal, actual, overlap_policy, manual, false);
            if let Some(limit) = limit.as_deref_mut() {
                *limit = limit.saturating_sub(1);
                if *limit == 0 {
                    return RangeResult {
                        next: Some(actual),
                        last,
                    };
                }
            }
        }
    }

    /// Temporal's `addStart`: buffers a start unless the buffer is full.
    pub(super) fn add_start(
        &mut self,
        nominal: Timestamp,
        actual: Timestamp,
        overlap_policy: ScheduleOverlapPolicy,
        manual: bool,
        backfill: bool,
    ) {
        if self.state.buffered_starts.len() >= limits::MAX_BUFFER_SIZE {
            self.info_mut().buffer_dropped += 1;
            return;
        }
        self.state.buffered_starts.push(SchedulerBufferedStart {
            nominal_time: Some(timestamp_to_proto(nominal)),
            actual_time: Some(timestamp_to_proto(actual)),
            overlap_policy: overlap_policy as i32,
            manual,
            backfill,
        });
    }

    /// Reads up to [`limits::BACKFILLS_PER_ITERATION`] backfilled times into the buffer,
    /// using at most half of it.
    fn process_backfills(&mut self) {
        let mut limit = limits::BACKFILLS_PER_ITERATION;
        while limit > 0
            && !self.state.ongoing_backfills.is_empty()
            && self.state.buffered_starts.len() < limits::MAX_BUFFER_SIZE / 2
        {
            let request = self.state.ongoing_backfills[0];
            let start = request
                .start_time
                .as_ref()
                .map_or(Timestamp::MIN, timestamp_from_proto);
            let end = request
                .end_time
                .as_ref()
                .map_or(Timestamp::MIN, timestamp_from_proto);
            let policy =
                ScheduleOverlapPolicy::try_from(request.overlap_policy).unwrap_or_default();
            let before = self.state.buffered_starts.len();
            let result = self.process_time_range(start, end, policy, true, Some(&mut limit));
            for added in &mut self.state.buffered_starts[before..] {
                added.backfill = true;
            }
            match result.next {
                Some(next) if next <= end => {
                    self.state.ongoing_backfills[0].start_time = Some(timestamp_to_proto(next));
                }
                _ => {
                    self.state.ongoing_backfills.remove(0);
                }
            }
        }
    }

    fn has_more_allow_all_backfills(&self) -> bool {
        self.state.ongoing_backfills.first().is_some_and(|b| {
            self.resolve_overlap_policy(b.overlap_policy) == ScheduleOverlapPolicy::AllowAll
        })
    }

    /// PatchSchedule, in Temporal's order: trigger, backfills, pause, unpause.
    pub(super) fn apply_patch(&mut self, patch: SchedulePatch) {
        if let Some(trigger) = patch.trigger_immediately {
            let at = trigger
                .scheduled_time
                .as_ref()
                .map_or(self.now, timestamp_from_proto);
            let policy =
                ScheduleOverlapPolicy::try_from(trigger.overlap_policy).unwrap_or_default();
            self.add_start(at, at, policy, true, false);
        }
        for mut request in patch.backfill_request {
            // The start time is inclusive (Temporal moves it back a millisecond).
            let start = request
                .start_time
                .as_ref()
                .map_or(Timestamp::MIN, timestamp_from_proto);
            let start = start
                .checked_sub(SignedDuration::from_millis(1))
                .unwrap_or(Timestamp::MIN);
            request.start_time = Some(timestamp_to_proto(start));
            if self.state.ongoing_backfills.len() >= limits::MAX_BUFFER_SIZE {
                self.info_mut().buffer_dropped += 1;
                continue;
            }
            self.state.ongoing_backfills.push(request);
        }
        if !patch.pause.is_empty() {
            let state = self
                .schedule_mut()
                .state
                .get_or_insert_with(Default::default);
            state.paused = true;
            state.notes = patch.pause;
            self.state.conflict_token += 1;
        }
        if !patch.unpause.is_empty() {
            let state = self
                .schedule_mut()
                .state
                .get_or_insert_with(Default::default);
            state.paused = false;
            state.notes = patch.unpause;
            self.state.conflict_token += 1;
        }
    }

    /// UpdateSchedule: the new (validated) schedule replaces spec, action, policies and
    /// state; the info keeps its counters and gets a new update time.
    pub(super) fn apply_update(&mut self, schedule: Schedule, now: Timestamp) {
        self.state.schedule = Some(schedule);
        self.info_mut().update_time = Some(timestamp_to_proto(now));
        self.state.conflict_token += 1;
    }
}

/// Temporal's `getCatchupWindow`: unset is a year, less than 10 seconds is 10 seconds.
pub(super) fn catchup_window(schedule: &Schedule) -> SignedDuration {
    match schedule
        .policies
        .as_ref()
        .and_then(|p| p.catchup_window.as_ref())
    {
        None => limits::DEFAULT_CATCHUP_WINDOW,
        Some(d) => SignedDuration::from_secs(d.seconds)
            .checked_add(SignedDuration::from_nanos(i64::from(d.nanos)))
            .unwrap_or(SignedDuration::MAX)
            .max(limits::MIN_CATCHUP_WINDOW),
    }
}
