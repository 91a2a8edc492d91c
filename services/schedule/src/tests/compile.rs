//! Compiling whole specs: time zone errors, TZif data, exclusions Temporal cannot run,
//! and the timestamp conversions at the API's edge.

use temporalio_protos::temporal::api::schedule::v1::{Range, ScheduleSpec, StructuredCalendarSpec};

use super::{compile, cron, cron_in, ts};
use crate::{CompiledSpec, SpecError, timestamp_from_proto, timestamp_to_proto};

fn error(spec: &ScheduleSpec) -> SpecError {
    CompiledSpec::compile(spec).expect_err("invalid spec")
}

#[test]
fn unknown_zones_are_refused_with_the_field_named() {
    let err = error(&cron_in("Mars/Olympus", &["0 12 * * *"]));
    assert_eq!(
        err.to_string(),
        "timezone_name: unknown time zone Mars/Olympus"
    );
    assert_eq!(err.field(), "timezone_name");
    // Go opens zone files by exact name.
    let err = error(&cron_in("america/new_york", &["0 12 * * *"]));
    assert_eq!(
        err,
        SpecError::UnknownTimeZone {
            name: "america/new_york".into()
        }
    );
    let err = error(&cron_in("utc", &["0 12 * * *"]));
    assert_eq!(err.to_string(), "timezone_name: unknown time zone utc");
    let err = error(&cron(&["TZ=Nowhere/Land 0 12 * * *"]));
    assert_eq!(err.field(), "timezone_name");
}

/// A TZif (version 1) file for a fixed zone "TST" at UTC+01:30 with no transitions.
fn fixed_tzif() -> Vec<u8> {
    let mut b = b"TZif".to_vec();
    b.push(0); // version 1
    b.extend([0u8; 15]);
    // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    for n in [0u32, 0, 0, 0, 1, 4] {
        b.extend(n.to_be_bytes());
    }
    b.extend(5400i32.to_be_bytes()); // utoff
    b.extend([0u8, 0u8]); // isdst, abbreviation index
    b.extend(b"TST\0");
    b
}

#[test]
fn timezone_data_is_used_instead_of_the_name() {
    let spec = ScheduleSpec {
        timezone_data: fixed_tzif(),
        ..cron_in("Custom/Zone", &["0 12 * * *"])
    };
    let next = compile(&spec)
        .next_time(ts("2025-01-01T00:00:00Z"))
        .expect("no limit");
    assert_eq!(next.map(|t| t.nominal), Some(ts("2025-01-01T10:30:00Z")));
    let bad = ScheduleSpec {
        timezone_data: b"garbage".to_vec(),
        ..Default::default()
    };
    assert_eq!(error(&bad).field(), "timezone_data");
}

#[test]
fn exclusions_that_would_hang_temporal_are_refused() {
    let spec = ScheduleSpec {
        interval: vec![super::every(60, 0)],
        exclude_structured_calendar: vec![StructuredCalendarSpec {
            hour: vec![Range {
                start: 1,
                end: 5,
                step: -1,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        error(&spec).to_string(),
        "exclude_structured_calendar[0]: Hour has invalid Step"
    );
}

#[test]
fn a_compiled_spec_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<CompiledSpec>();
}

#[test]
fn an_empty_spec_never_matches() {
    let compiled = compile(&ScheduleSpec::default());
    assert_eq!(compiled.next_time(ts("2025-01-01T00:00:00Z")), Ok(None));
    assert_eq!(compiled.canonical_spec(), &ScheduleSpec::default());
}

#[test]
fn proto_timestamps_convert_both_ways() {
    let t = ts("2025-01-01T02:00:00.5Z");
    let p = timestamp_to_proto(t);
    assert_eq!((p.seconds, p.nanos), (1_735_696_800, 500_000_000));
    assert_eq!(timestamp_from_proto(&p), t);
    let before_epoch = timestamp_to_proto(ts("1969-12-31T23:59:59.25Z"));
    assert_eq!(
        (before_epoch.seconds, before_epoch.nanos),
        (-1, 250_000_000)
    );
    // nanos out of range carry; values beyond the representable range saturate
    let carried = prost_types::Timestamp {
        seconds: 10,
        nanos: 1_500_000_000,
    };
    assert_eq!(timestamp_from_proto(&carried), ts("1970-01-01T00:00:11.5Z"));
    let huge = prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    };
    assert_eq!(timestamp_from_proto(&huge), jiff::Timestamp::MAX);
    // a search from the far future or past is fine
    let compiled = compile(&cron(&["0 12 * * *"]));
    assert_eq!(compiled.next_time(jiff::Timestamp::MAX), Ok(None));
    let first = compiled
        .next_time(jiff::Timestamp::MIN)
        .expect("no limit")
        .expect("a time");
    assert_eq!(first.nominal, ts("1970-01-01T12:00:00Z"));
}
