//! Unit tests of compiled calendars (whole-spec behaviour is in `dst.rs` and friends).

use temporalio_protos::temporal::api::schedule::v1::{Range, StructuredCalendarSpec};

use super::{CompiledCalendar, check_exclude};
use crate::zone::Zone;

fn unix(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>()
        .expect("test timestamp")
        .as_second()
}

fn r(start: i32, end: i32, step: i32) -> Range {
    Range { start, end, step }
}

fn daily(hour: i32, minute: i32) -> CompiledCalendar {
    CompiledCalendar::new(&StructuredCalendarSpec {
        second: vec![r(0, 0, 0)],
        minute: vec![r(minute, 0, 0)],
        hour: vec![r(hour, 0, 0)],
        day_of_month: vec![r(1, 31, 0)],
        month: vec![r(1, 12, 0)],
        day_of_week: vec![r(0, 6, 0)],
        ..Default::default()
    })
}

#[test]
fn next_is_strictly_after() {
    let utc = Zone::named("UTC");
    let noon = daily(12, 0);
    let t = unix("2025-01-01T12:00:00Z");
    assert_eq!(noon.next(&utc, t - 1), Some(t));
    assert_eq!(noon.next(&utc, t), Some(t + 86_400));
    assert!(noon.matches(&utc, t));
    assert!(!noon.matches(&utc, t + 1));
}

#[test]
fn end_of_search_and_years() {
    let utc = Zone::named("UTC");
    let noon = daily(12, 0);
    // The last matching time is in 2100.
    assert_eq!(
        noon.next(&utc, unix("2100-12-31T11:00:00Z")),
        Some(unix("2100-12-31T12:00:00Z"))
    );
    assert_eq!(noon.next(&utc, unix("2100-12-31T12:00:00Z")), None);
    assert_eq!(noon.next(&utc, unix("9000-01-01T00:00:00Z")), None);
    // Year ranges are evaluated without expanding them.
    let huge = CompiledCalendar::new(&StructuredCalendarSpec {
        year: vec![r(0, i32::MAX, 3)],
        ..StructuredCalendarSpec {
            second: vec![r(0, 0, 0)],
            minute: vec![r(0, 0, 0)],
            hour: vec![r(0, 0, 0)],
            day_of_month: vec![r(1, 0, 0)],
            month: vec![r(1, 0, 0)],
            day_of_week: vec![r(0, 6, 0)],
            ..Default::default()
        }
    });
    assert_eq!(
        huge.next(&utc, unix("2025-06-01T00:00:00Z")),
        Some(unix("2028-01-01T00:00:00Z"))
    );
}

#[test]
fn range_reading_matches_temporal() {
    let utc = Zone::named("UTC");
    // end below start means just start; step 0 means 1
    let cal = CompiledCalendar::new(&StructuredCalendarSpec {
        second: vec![r(30, 10, 0)],
        minute: vec![r(0, 59, 20)],
        hour: vec![r(0, 23, 0)],
        day_of_month: vec![r(1, 31, 0)],
        month: vec![r(1, 12, 0)],
        day_of_week: vec![r(0, 6, 0)],
        ..Default::default()
    });
    let t = unix("2025-01-01T00:00:00Z");
    assert_eq!(cal.next(&utc, t), Some(unix("2025-01-01T00:00:30Z")));
    assert_eq!(cal.next(&utc, t + 30), Some(unix("2025-01-01T00:20:30Z")));
    assert_eq!(
        cal.next(&utc, t + 20 * 60 + 30),
        Some(unix("2025-01-01T00:40:30Z"))
    );
}

#[test]
fn exclusions_that_would_hang_or_panic_are_refused() {
    let with = |f: fn(&mut StructuredCalendarSpec)| {
        let mut cal = StructuredCalendarSpec::default();
        f(&mut cal);
        check_exclude(&cal)
    };
    assert_eq!(
        with(|c| c.hour = vec![r(1, 5, -1)]),
        Err("Hour has invalid Step".into())
    );
    assert_eq!(
        with(|c| c.minute = vec![r(-3, 5, 0)]),
        Err("Minute Start is negative".into())
    );
    assert_eq!(with(|c| c.year = vec![r(-3, 5, 0)]), Ok(()));
    assert_eq!(with(|c| c.second = vec![r(70, 80, 0)]), Ok(()));
}
