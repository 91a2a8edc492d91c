//! Cron strings and calendar strings, against the reference server's answers.

use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, Range, ScheduleSpec, StructuredCalendarSpec,
};

use super::recorded::*;
use super::{calendar, check, cron, cron_in};

fn cal(f: impl FnOnce(&mut CalendarSpec)) -> ScheduleSpec {
    let mut c = CalendarSpec::default();
    f(&mut c);
    calendar(c)
}

#[test]
fn leap_days_last_days_and_impossible_dates() {
    check(
        &cron(&["0 12 29 2 *"]),
        "leap-day",
        "2023-01-01T00:00:00Z",
        "2033-01-01T00:00:00Z",
        LEAP_DAY,
    );
    let spec = cal(|c| (c.day_of_month, c.hour) = ("31".into(), "9".into()));
    check(
        &spec,
        "day-31",
        "2025-01-01T00:00:00Z",
        "2025-12-31T23:59:59Z",
        DAY_31,
    );
    // February 30th never comes; the search ends at the year 2100.
    let spec = cal(|c| (c.day_of_month, c.month) = ("30".into(), "feb".into()));
    check(
        &spec,
        "feb-30",
        "2025-01-01T00:00:00Z",
        "2099-01-01T00:00:00Z",
        FEB_30,
    );
    assert_eq!(
        super::compile(&spec).next_time(super::ts("2025-01-01T00:00:00Z")),
        Ok(None)
    );
}

#[test]
fn five_six_and_seven_fields() {
    // 6 fields: the sixth is the year.
    check(
        &cron(&["0 12 1 * * 2026"]),
        "cron6-year",
        "2025-01-01T00:00:00Z",
        "2028-01-01T00:00:00Z",
        CRON6_YEAR,
    );
    // 7 fields: seconds first, year last.
    let spec = cron(&["*/15 0 12 * * * 2026"]);
    check(
        &spec,
        "cron7-seconds",
        "2026-03-01T11:59:00Z",
        "2026-03-02T12:00:20Z",
        CRON7_SECONDS,
    );
    check(
        &cron(&["0 12 * * *"]),
        "utc-explicit",
        "2025-01-01T00:00:00Z",
        "2025-01-03T00:00:00Z",
        UTC_EXPLICIT,
    );
    let spec = cron_in("UTC", &["0 12 * * *"]);
    check(
        &spec,
        "utc-explicit",
        "2025-01-01T00:00:00Z",
        "2025-01-03T00:00:00Z",
        UTC_EXPLICIT,
    );
}

#[test]
fn every_intervals_with_phase() {
    check(
        &cron(&["@every 90s"]),
        "every-90s",
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:06:00Z",
        EVERY_90S,
    );
    // 14h intervals from the epoch, shifted by 3h.
    let spec = cron(&["@every 14h/3h"]);
    check(
        &spec,
        "every-14h-3h",
        "2025-01-01T00:00:00Z",
        "2025-01-04T00:00:00Z",
        EVERY_14H_3H,
    );
    let spec = cron(&["@every 1.5d # day and a half"]);
    check(
        &spec,
        "every-1d",
        "2025-01-01T00:00:00Z",
        "2025-01-08T00:00:00Z",
        EVERY_1D,
    );
    let spec = cron(&["@every 2d/1d12h"]);
    check(
        &spec,
        "every-days-phase",
        "2025-01-01T00:00:00Z",
        "2025-01-10T00:00:00Z",
        EVERY_DAYS_PHASE,
    );
}

#[test]
fn shorthands() {
    let spec = cron(&[
        "@hourly",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@daily",
        "@midnight",
    ]);
    check(
        &spec,
        "shorthands",
        "2025-12-30T20:00:00Z",
        "2026-01-05T02:00:00Z",
        SHORTHANDS,
    );
    // each alone, worked out by hand: 2026-01-04 is a Sunday
    let first = |s: &str| {
        let compiled = super::compile(&cron(&[s]));
        let next = compiled
            .next_time(super::ts("2025-12-30T20:00:00Z"))
            .expect("no limit");
        next.expect("has a next time").nominal.to_string()
    };
    assert_eq!(first("@hourly"), "2025-12-30T21:00:00Z");
    assert_eq!(first("@daily"), "2025-12-31T00:00:00Z");
    assert_eq!(first("@midnight"), "2025-12-31T00:00:00Z");
    assert_eq!(first("@weekly"), "2026-01-04T00:00:00Z");
    assert_eq!(first("@monthly"), "2026-01-01T00:00:00Z");
    assert_eq!(first("@yearly"), "2026-01-01T00:00:00Z");
    assert_eq!(first("@annually"), "2026-01-01T00:00:00Z");
}

#[test]
fn day_of_week_names_and_sunday_as_seven() {
    let spec = cal(|c| {
        (c.day_of_week, c.hour, c.month) = ("mon-fri".into(), "9".into(), "jan,jul".into());
    });
    check(
        &spec,
        "dow-names",
        "2025-01-01T00:00:00Z",
        "2025-01-15T00:00:00Z",
        DOW_NAMES,
    );
    // Like Temporal, "1-7" means Monday to Saturday (2025-01-05 is a Sunday and is missing).
    let spec = cal(|c| (c.day_of_week, c.hour) = ("1-7".into(), "9".into()));
    check(
        &spec,
        "dow-1-7",
        "2025-01-01T00:00:00Z",
        "2025-01-10T00:00:00Z",
        DOW_1_7,
    );
    let spec = cal(|c| (c.day_of_week, c.hour) = ("3-7".into(), "9".into()));
    check(
        &spec,
        "dow-3-7",
        "2025-01-01T00:00:00Z",
        "2025-01-10T00:00:00Z",
        DOW_3_7,
    );
    let spec = cal(|c| (c.day_of_week, c.hour) = ("1-7/2".into(), "9".into()));
    check(
        &spec,
        "dow-1-7-2",
        "2025-01-01T00:00:00Z",
        "2025-01-10T00:00:00Z",
        DOW_1_7_2,
    );
    check(
        &cron(&["0 9 * * 7"]),
        "dow-7",
        "2025-01-01T00:00:00Z",
        "2025-01-20T00:00:00Z",
        DOW_7,
    );
}

#[test]
fn day_of_month_and_day_of_week_must_both_match() {
    // Friday the 13th.
    let spec = cron(&["0 0 13 * fri"]);
    check(
        &spec,
        "dom-and-dow",
        "2025-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
        DOM_AND_DOW,
    );
}

#[test]
fn years() {
    let spec = cal(|c| (c.year, c.month, c.day_of_month) = ("*/25".into(), "1".into(), "1".into()));
    check(
        &spec,
        "year-star-step",
        "2025-01-01T00:00:00Z",
        "2100-12-31T00:00:00Z",
        YEAR_STAR_STEP,
    );
}

fn r(start: i32, end: i32, step: i32) -> Range {
    Range { start, end, step }
}

#[test]
fn structured_calendars() {
    let structured = StructuredCalendarSpec {
        second: vec![r(0, 0, 0)],
        minute: vec![r(5, 50, 15)],
        hour: vec![r(10, 11, 0)],
        day_of_month: vec![r(1, 31, 0)],
        month: vec![r(1, 12, 0)],
        day_of_week: vec![r(0, 6, 0)],
        year: vec![r(2025, 0, 0)],
        comment: "c".into(),
    };
    let spec = ScheduleSpec {
        structured_calendar: vec![structured.clone()],
        ..Default::default()
    };
    check(
        &spec,
        "structured",
        "2025-06-01T00:00:00Z",
        "2025-06-02T00:00:00Z",
        STRUCTURED,
    );
    // An empty field (other than the year) matches nothing.
    let empty_second = StructuredCalendarSpec {
        second: vec![],
        ..structured
    };
    let spec = ScheduleSpec {
        structured_calendar: vec![empty_second],
        ..Default::default()
    };
    check(
        &spec,
        "structured-empty-second",
        "2025-06-01T00:00:00Z",
        "2025-06-03T00:00:00Z",
        STRUCTURED_EMPTY_SECOND,
    );
}
