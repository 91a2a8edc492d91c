//! Daylight-saving transitions, against the reference server's answers. Temporal resolves
//! wall times with Go's `time.Date`, so a skipped wall time does not fire, a repeated one
//! may fire twice (zones west of UTC), and east of UTC the repeated hour shows the quirks
//! noted below; all of it is reproduced.

use temporalio_protos::temporal::api::schedule::v1::CalendarSpec;

use super::recorded::*;
use super::{calendar, check, cron, cron_in};

#[test]
fn new_york_spring_forward_skips_the_missing_wall_time() {
    // 2025-03-09 has no 02:30 in New York: nothing fires that day.
    let spec = cron_in("America/New_York", &["30 2 * * *"]);
    check(
        &spec,
        "ny-spring-0230",
        "2025-03-07T00:00:00Z",
        "2025-03-12T00:00:00Z",
        NY_SPRING_0230,
    );
}

#[test]
fn new_york_fall_back_fires_twice_in_the_repeated_hour() {
    // 01:30 EDT (05:30Z) and 01:30 EST (06:30Z) on 2025-11-02.
    let spec = cron_in("America/New_York", &["30 1 * * *"]);
    check(
        &spec,
        "ny-fall-0130",
        "2025-10-31T00:00:00Z",
        "2025-11-04T12:00:00Z",
        NY_FALL_0130,
    );
    let spec = calendar(CalendarSpec {
        minute: "*/20".into(),
        hour: "1".into(),
        ..Default::default()
    });
    let spec = crate::ScheduleSpec {
        timezone_name: "America/New_York".into(),
        ..spec
    };
    check(
        &spec,
        "ny-fall-every20-h1",
        "2025-11-02T04:00:00Z",
        "2025-11-02T08:00:00Z",
        NY_FALL_EVERY20_H1,
    );
}

#[test]
fn new_york_hourly_across_both_transitions() {
    // CRON_TZ= and TZ= prefixes set the zone.
    let spec = cron(&["CRON_TZ=America/New_York 15 * * * *"]);
    check(
        &spec,
        "ny-hourly-fall",
        "2025-11-02T03:00:00Z",
        "2025-11-02T09:00:00Z",
        NY_HOURLY_FALL,
    );
    let spec = cron(&["TZ=America/New_York 15 * * * *"]);
    check(
        &spec,
        "ny-hourly-spring",
        "2025-03-09T04:00:00Z",
        "2025-03-09T09:00:00Z",
        NY_HOURLY_SPRING,
    );
}

#[test]
fn berlin_spring_forward_skips_the_missing_wall_time() {
    let spec = cron_in("Europe/Berlin", &["30 2 * * *"]);
    check(
        &spec,
        "berlin-spring-0230",
        "2025-03-28T00:00:00Z",
        "2025-04-01T00:00:00Z",
        BERLIN_SPRING_0230,
    );
    let spec = cron_in("Europe/Berlin", &["*/20 * * * *"]);
    check(
        &spec,
        "berlin-spring-every20",
        "2025-03-30T00:00:00Z",
        "2025-03-30T02:00:00Z",
        BERLIN_SPRING_EVERY20,
    );
}

#[test]
fn berlin_fall_back_fires_once_at_the_second_occurrence() {
    // Go resolves the repeated 02:30 east of UTC to its second occurrence (01:30Z).
    let spec = cron_in("Europe/Berlin", &["30 2 * * *"]);
    check(
        &spec,
        "berlin-fall-0230",
        "2025-10-24T00:00:00Z",
        "2025-10-28T00:00:00Z",
        BERLIN_FALL_0230,
    );
}

#[test]
fn berlin_fall_back_quirks_of_the_reference_server() {
    // East of UTC the repeated hour's second pass is shifted an hour too far: "*/20 2"
    // fires at 02:00 CET and then 03:20 CET; "*/20 *" loses most of the two repeated hours.
    let spec = cron_in("Europe/Berlin", &["*/20 2 * * *"]);
    check(
        &spec,
        "berlin-fall-every20-h2",
        "2025-10-25T22:00:00Z",
        "2025-10-26T04:00:00Z",
        BERLIN_FALL_EVERY20_H2,
    );
    let spec = cron_in("Europe/Berlin", &["*/20 * * * *"]);
    check(
        &spec,
        "berlin-fall-every20",
        "2025-10-25T23:00:00Z",
        "2025-10-26T03:00:00Z",
        BERLIN_FALL_EVERY20,
    );
    let spec = calendar(CalendarSpec {
        second: "*/20".into(),
        minute: "59".into(),
        hour: "1,2".into(),
        ..Default::default()
    });
    let spec = crate::ScheduleSpec {
        timezone_name: "Europe/Berlin".into(),
        ..spec
    };
    check(
        &spec,
        "berlin-fall-0200-every5s",
        "2025-10-25T23:00:00Z",
        "2025-10-26T03:00:00Z",
        BERLIN_FALL_0200_EVERY5S,
    );
}

#[test]
fn southern_hemisphere_and_half_hour_zones() {
    let spec = cron_in("Australia/Sydney", &["30 2 * * *", "0 * * * *"]);
    check(
        &spec,
        "sydney-fall",
        "2025-04-05T12:00:00Z",
        "2025-04-05T19:00:00Z",
        SYDNEY_FALL,
    );
    check(
        &spec,
        "sydney-spring",
        "2025-10-04T12:00:00Z",
        "2025-10-04T19:00:00Z",
        SYDNEY_SPRING,
    );
    // Lord Howe Island moves its clocks by 30 minutes.
    let spec = cron_in("Australia/Lord_Howe", &["*/15 1-2 * * *"]);
    check(
        &spec,
        "lordhowe-fall",
        "2025-04-05T13:00:00Z",
        "2025-04-05T17:00:00Z",
        LORDHOWE_FALL,
    );
}

#[test]
fn transitions_at_midnight() {
    // Santiago changes its clocks at midnight: the day's 00:00 is skipped or repeated.
    let spec = cron_in("America/Santiago", &["0 0 * * *", "30 * * * *"]);
    check(
        &spec,
        "santiago-spring",
        "2025-09-06T01:00:00Z",
        "2025-09-07T06:00:00Z",
        SANTIAGO_SPRING,
    );
    check(
        &spec,
        "santiago-fall",
        "2025-04-05T01:00:00Z",
        "2025-04-06T06:00:00Z",
        SANTIAGO_FALL,
    );
}

#[test]
fn kolkata_has_a_half_hour_offset() {
    let spec = cron(&["TZ=Asia/Kolkata 0 9 * * mon-fri"]);
    check(
        &spec,
        "kolkata",
        "2025-01-01T00:00:00Z",
        "2025-01-08T00:00:00Z",
        KOLKATA,
    );
}
