//! Tests of the whole engine. Expected times come from the reference Temporal server
//! (`recorded.rs`), from Temporal's own unit tests, or are worked out by hand in comments.

mod compile;
mod dst;
mod properties;
mod random_specs;
mod recorded;
mod spec_times;
mod string_times;

use jiff::Timestamp;
use prost_types::Duration;
use temporalio_protos::temporal::api::schedule::v1::{CalendarSpec, IntervalSpec, ScheduleSpec};

use crate::{CompiledSpec, MAX_LIST_MATCHING_TIMES, jitter_seed};

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

pub(super) fn proto_ts(s: &str) -> prost_types::Timestamp {
    crate::timestamp_to_proto(ts(s))
}

pub(super) fn secs(seconds: i64) -> Option<Duration> {
    Some(Duration { seconds, nanos: 0 })
}

pub(super) fn cron(strings: &[&str]) -> ScheduleSpec {
    ScheduleSpec {
        cron_string: strings.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

pub(super) fn cron_in(tz: &str, strings: &[&str]) -> ScheduleSpec {
    ScheduleSpec {
        timezone_name: tz.into(),
        ..cron(strings)
    }
}

pub(super) fn calendar(cal: CalendarSpec) -> ScheduleSpec {
    ScheduleSpec {
        calendar: vec![cal],
        ..Default::default()
    }
}

pub(super) fn every(interval: i64, phase: i64) -> IntervalSpec {
    IntervalSpec {
        interval: secs(interval),
        phase: (phase != 0).then_some(Duration {
            seconds: phase,
            nanos: 0,
        }),
    }
}

pub(super) fn compile(spec: &ScheduleSpec) -> CompiledSpec {
    CompiledSpec::compile(spec).expect("valid spec")
}

/// The actual times ListScheduleMatchingTimes gives for `spec` between `start` and `end`,
/// with the jitter seed the reference server used for schedule `id`.
pub(super) fn list(spec: &ScheduleSpec, id: &str, start: &str, end: &str) -> Vec<Timestamp> {
    let compiled = compile(spec).with_jitter_seed(jitter_seed(recorded::NAMESPACE_ID, id));
    compiled
        .matching_times(ts(start), ts(end))
        .take(MAX_LIST_MATCHING_TIMES)
        .map(|t| t.expect("search within limits").actual)
        .collect()
}

/// Asserts `list` equals the recorded answer.
#[track_caller]
pub(super) fn check(spec: &ScheduleSpec, id: &str, start: &str, end: &str, want: &[&str]) {
    let want: Vec<Timestamp> = want.iter().map(|s| ts(s)).collect();
    assert_eq!(list(spec, id, start, end), want, "schedule {id}");
}
