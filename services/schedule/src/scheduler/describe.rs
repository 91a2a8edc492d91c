//! What DescribeSchedule and ListSchedules show of a schedule.
//!
//! Future action times follow Temporal's `getFutureActionTimes`: the spec's next (jittered)
//! times after `last_processed_time`, at most as many as the remaining actions of a
//! schedule with limited actions, leaving out times before the last update.

use jiff::Timestamp;
use temper_proto::persistence::v1::SchedulerState;
use temporalio_protos::temporal::api::schedule::v1::{ScheduleListInfo, schedule_action};

use super::{Described, last_processed, limits, process};
use crate::{clean_ranges, timestamp_from_proto, timestamp_to_proto};

/// A conflict token as Temporal puts it on the wire: 8 bytes, big endian.
pub fn conflict_token_bytes(token: i64) -> Vec<u8> {
    token.to_be_bytes().to_vec()
}

/// DescribeSchedule's answer at `now`. `now` does not change it: as in Temporal the
/// future times are counted from the last processed time, which the history service keeps
/// close to now by delivering [`super::Input::Wake`] on time.
pub fn describe(state: &SchedulerState, now: Timestamp) -> Described {
    let _ = now;
    let mut schedule = state.schedule.clone().unwrap_or_default();
    if let Some(spec) = schedule.spec.as_mut() {
        clean_ranges(spec);
    }
    let mut info = state.info.clone().unwrap_or_default();
    info.future_action_times = future_action_times(state, limits::FUTURE_ACTION_COUNT);
    info.buffer_size = state.buffered_starts.len() as i64;
    Described {
        schedule,
        info,
        conflict_token: conflict_token_bytes(state.conflict_token),
    }
}

/// ListSchedules' info at `now`: the spec (cleaned, without `timezone_data`, at most 10
/// calendars, intervals and exclusions), workflow type, notes, paused, the last 5 actions
/// and the next 5 times.
pub fn list_info(state: &SchedulerState, now: Timestamp) -> ScheduleListInfo {
    let _ = now;
    let schedule = state.schedule.clone().unwrap_or_default();
    let mut spec = schedule.spec.unwrap_or_default();
    spec.timezone_data.clear();
    spec.structured_calendar
        .truncate(limits::SPEC_FIELD_LENGTH_LIMIT);
    spec.interval.truncate(limits::SPEC_FIELD_LENGTH_LIMIT);
    spec.exclude_structured_calendar
        .truncate(limits::SPEC_FIELD_LENGTH_LIMIT);
    clean_ranges(&mut spec);
    let workflow_type = schedule
        .action
        .and_then(|a| a.action)
        .and_then(|a| match a {
            schedule_action::Action::StartWorkflow(s) => s.workflow_type,
        });
    let sched_state = schedule.state.unwrap_or_default();
    let recent = state
        .info
        .as_ref()
        .map(|i| i.recent_actions.as_slice())
        .unwrap_or_default();
    let skip = recent
        .len()
        .saturating_sub(limits::RECENT_ACTION_COUNT_FOR_LIST);
    ScheduleListInfo {
        spec: Some(spec),
        workflow_type,
        notes: sched_state.notes,
        paused: sched_state.paused,
        recent_actions: recent[skip..].to_vec(),
        future_action_times: future_action_times(state, limits::FUTURE_ACTION_COUNT_FOR_LIST),
        ..Default::default()
    }
}

fn future_action_times(state: &SchedulerState, n: usize) -> Vec<prost_types::Timestamp> {
    let Ok(spec) = process::compile(state) else {
        return Vec::new();
    };
    let sched_state = state
        .schedule
        .as_ref()
        .and_then(|s| s.state.clone())
        .unwrap_or_default();
    let n = if sched_state.limited_actions {
        n.min(usize::try_from(sched_state.remaining_actions).unwrap_or(0))
    } else {
        n
    };
    let update_time = state
        .info
        .as_ref()
        .and_then(|i| i.update_time.as_ref())
        .map(timestamp_from_proto);
    let mut out = Vec::with_capacity(n);
    let mut after = last_processed(state);
    while out.len() < n {
        let Ok(Some(next)) = spec.next_time(after) else {
            break;
        };
        after = next.actual;
        if update_time.is_some_and(|u| u > next.actual) {
            continue;
        }
        out.push(timestamp_to_proto(next.actual));
    }
    out
}
