//! Intervals, exclusions, start and end times, and jitter, against the reference server's
//! answers and Temporal's own unit tests.

use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, Range, ScheduleSpec, StructuredCalendarSpec,
};

use super::recorded::*;
use super::{check, compile, cron, cron_in, every, proto_ts, secs, ts};
use crate::{CompiledSpec, SearchLimitExceeded, SearchLimits};

fn intervals(
    ivs: Vec<temporalio_protos::temporal::api::schedule::v1::IntervalSpec>,
) -> ScheduleSpec {
    ScheduleSpec {
        interval: ivs,
        ..Default::default()
    }
}

fn all_day(second: &str) -> CalendarSpec {
    CalendarSpec {
        second: second.into(),
        minute: "*".into(),
        hour: "*".into(),
        ..Default::default()
    }
}

#[test]
fn intervals_are_anchored_at_the_epoch() {
    // The API doc's example: 28 days with a phase of 3d 5h 23m matches 2022-02-20T05:23:00Z.
    let spec = intervals(vec![every(28 * 86_400, 3 * 86_400 + 5 * 3600 + 23 * 60)]);
    check(
        &spec,
        "interval-phase",
        "2022-02-01T00:00:00Z",
        "2022-04-01T00:00:00Z",
        INTERVAL_PHASE,
    );
    let spec = intervals(vec![every(5400, 0)]);
    check(
        &spec,
        "interval-plain",
        "2025-01-01T00:00:00Z",
        "2025-01-01T06:00:00Z",
        INTERVAL_PLAIN,
    );
    // Sub-second parts are truncated: 1.5s acts as 1s; a fractional start rounds up.
    let iv = temporalio_protos::temporal::api::schedule::v1::IntervalSpec {
        interval: Some(prost_types::Duration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        phase: None,
    };
    let spec = intervals(vec![iv]);
    check(
        &spec,
        "subsecond-interval",
        "2025-01-01T00:00:00.500Z",
        "2025-01-01T00:00:04Z",
        SUBSECOND_INTERVAL,
    );
}

#[test]
fn exclusions() {
    let hours_1_to_3 = StructuredCalendarSpec {
        second: vec![Range {
            start: 0,
            end: 59,
            step: 0,
        }],
        minute: vec![Range {
            start: 0,
            end: 59,
            step: 0,
        }],
        hour: vec![Range {
            start: 1,
            end: 3,
            step: 0,
        }],
        ..Default::default()
    };
    #[allow(deprecated)]
    let spec = ScheduleSpec {
        interval: vec![every(1800, 0)],
        exclude_structured_calendar: vec![hours_1_to_3],
        exclude_calendar: vec![CalendarSpec {
            minute: "30".into(),
            ..all_day("*")
        }],
        ..Default::default()
    };
    // An exclude calendar with empty day/month fields matches nothing: only :30 is excluded.
    check(
        &spec,
        "exclude",
        "2025-01-01T00:00:00Z",
        "2025-01-01T06:00:00Z",
        EXCLUDE,
    );
    // Exclusions are not validated (as in Temporal): hour 30 simply never matches.
    let spec = ScheduleSpec {
        interval: vec![every(3600, 0)],
        exclude_structured_calendar: vec![StructuredCalendarSpec {
            hour: vec![Range {
                start: 30,
                end: 0,
                step: 0,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    check(
        &spec,
        "exclude-unvalidated",
        "2025-01-01T00:00:00Z",
        "2025-01-01T03:00:00Z",
        EXCLUDE_UNVALIDATED,
    );
}

#[test]
fn excluding_everything_ends_or_hits_the_limit() {
    #[allow(deprecated)]
    let weekly = ScheduleSpec {
        interval: vec![every(7 * 86_400, 0)],
        exclude_calendar: vec![all_day("*")],
        ..Default::default()
    };
    check(
        &weekly,
        "exclude-all-weekly",
        "2025-01-01T00:00:00Z",
        "2030-01-01T00:00:00Z",
        EXCLUDE_ALL_WEEKLY,
    );
    assert_eq!(
        compile(&weekly).next_time(ts("2022-03-23T12:53:02Z")),
        Ok(None)
    );
    // Every second, every second excluded: the search stops at the limit.
    #[allow(deprecated)]
    let every_second = ScheduleSpec {
        calendar: vec![all_day("*")],
        exclude_calendar: vec![all_day("*")],
        ..Default::default()
    };
    let limits = SearchLimits {
        warn_iterations: 10,
        max_iterations: 10_000,
    };
    let compiled = compile(&every_second).with_limits(limits);
    let err = compiled.next_time(ts("2022-03-23T12:00:00Z"));
    assert_eq!(err, Err(SearchLimitExceeded { iterations: 10_000 }));
    let mut times = compiled.matching_times(ts("2022-03-23T12:00:00Z"), ts("2022-03-24T12:00:00Z"));
    assert!(matches!(times.next(), Some(Err(_))));
    assert!(times.next().is_none());
    // All but :59 excluded: found, flagged as a slow search (Temporal's unit test).
    #[allow(deprecated)]
    let only_59 = ScheduleSpec {
        calendar: vec![all_day("*")],
        exclude_calendar: vec![all_day("0-58")],
        ..Default::default()
    };
    let compiled = compile(&only_59).with_limits(limits);
    let next = compiled
        .next_time(ts("2022-03-23T12:00:00Z"))
        .expect("in limit")
        .expect("found");
    assert_eq!(next.nominal, ts("2022-03-23T12:00:59Z"));
    assert!(next.slow_search);
}

#[test]
fn start_and_end_times_are_inclusive() {
    let spec = ScheduleSpec {
        interval: vec![every(3600, 0)],
        start_time: Some(proto_ts("2025-01-01T02:00:00.500Z")),
        end_time: Some(proto_ts("2025-01-01T05:00:00Z")),
        ..Default::default()
    };
    check(
        &spec,
        "start-end",
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00Z",
        START_END,
    );
    let spec = ScheduleSpec {
        interval: vec![every(3600, 0)],
        start_time: Some(proto_ts("2025-01-01T02:00:00Z")),
        end_time: Some(proto_ts("2025-01-01T05:00:00.250Z")),
        ..Default::default()
    };
    check(
        &spec,
        "start-exact",
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00Z",
        START_EXACT,
    );
}

#[test]
fn jitter_matches_the_reference_server() {
    let spec = ScheduleSpec {
        interval: vec![every(3600, 0)],
        jitter: secs(1800),
        ..Default::default()
    };
    check(
        &spec,
        "jitter-1h",
        "2025-01-01T00:00:00Z",
        "2025-01-01T06:00:00Z",
        JITTER_1H,
    );
    let spec = cron_in("Europe/Berlin", &["0 9 * * *", "30 9 * * *"]);
    let spec = ScheduleSpec {
        jitter: secs(7200),
        ..spec
    };
    check(
        &spec,
        "jitter-cal",
        "2025-01-01T00:00:00Z",
        "2025-01-04T00:00:00Z",
        JITTER_CAL,
    );
    // With exclusions and an end time (a nominal time at the end still gets its jitter).
    #[allow(deprecated)]
    let spec = ScheduleSpec {
        interval: vec![every(600, 0)],
        jitter: secs(3600),
        exclude_calendar: vec![CalendarSpec {
            minute: "10-19".into(),
            ..all_day("*")
        }],
        ..Default::default()
    };
    check(
        &spec,
        "jitter-excl",
        "2025-01-01T00:00:00Z",
        "2025-01-01T01:00:00Z",
        JITTER_EXCL,
    );
    let spec = ScheduleSpec {
        interval: vec![every(600, 0)],
        jitter: secs(300),
        end_time: Some(proto_ts("2025-01-01T00:30:00Z")),
        ..Default::default()
    };
    check(
        &spec,
        "jitter-end",
        "2025-01-01T00:00:00Z",
        "2025-01-01T02:00:00Z",
        JITTER_END,
    );
}

#[test]
fn jitter_never_reaches_the_next_nominal_time() {
    // A day of jitter on a 10-minute interval is cut to under 10 minutes.
    let spec = ScheduleSpec {
        interval: vec![every(600, 0)],
        jitter: secs(86_400),
        ..Default::default()
    };
    check(
        &spec,
        "jitter-bounded",
        "2025-01-01T00:00:00Z",
        "2025-01-01T01:00:00Z",
        JITTER_BOUNDED,
    );
    let compiled = compile(&spec).with_jitter_seed("some-namespace-some-schedule");
    for t in compiled.times_after(ts("2025-01-01T00:00:00Z")).take(500) {
        let t = t.expect("no limit");
        let jitter = t.actual.as_millisecond() - t.nominal.as_millisecond();
        assert!((0..600_000).contains(&jitter), "{t:?}");
    }
}

#[test]
fn temporal_unit_test_sequences() {
    // From Temporal's spec_test.go (empty seed): start time, then 90-minute interval, 1s jitter.
    let spec = ScheduleSpec {
        interval: vec![every(5400, 0)],
        start_time: Some(proto_ts("2022-03-23T12:00:00Z")),
        jitter: secs(1),
        ..Default::default()
    };
    let got: Vec<_> = compile(&spec)
        .times_after(ts("2022-03-23T08:00:00Z"))
        .take(3)
        .map(|t| t.expect("no limit").actual)
        .collect();
    let want = [
        "2022-03-23T12:00:00.162Z",
        "2022-03-23T13:30:00.587Z",
        "2022-03-23T15:00:00.089Z",
    ];
    assert_eq!(got, want.map(ts));
    // A single calendar time with an hour of jitter: the jitter is not bounded by a next time.
    let spec = ScheduleSpec {
        calendar: vec![CalendarSpec {
            hour: "13".into(),
            minute: "55".into(),
            day_of_month: "7".into(),
            month: "4".into(),
            year: "2022".into(),
            ..Default::default()
        }],
        jitter: secs(3600),
        ..Default::default()
    };
    let next = compile(&spec)
        .next_time(ts("2022-03-23T11:00:00Z"))
        .expect("no limit");
    assert_eq!(next.map(|t| t.actual), Some(ts("2022-04-07T13:57:26.927Z")));
    let after = compile(&spec).next_time(ts("2022-04-07T13:55:00Z"));
    assert_eq!(after, Ok(None));
}

#[test]
fn the_iterator_stops_at_the_end_of_the_range() {
    let compiled: CompiledSpec = compile(&cron(&["@every 1h"]));
    let times: Vec<_> = compiled
        .matching_times(ts("2025-01-01T00:00:00Z"), ts("2025-01-01T03:00:00Z"))
        .map(|t| t.expect("no limit").nominal.to_string())
        .collect();
    assert_eq!(
        times,
        [
            "2025-01-01T01:00:00Z",
            "2025-01-01T02:00:00Z",
            "2025-01-01T03:00:00Z"
        ]
    );
}
