//! Canonical forms compared with what the reference server's DescribeSchedule returned
//! (written in a compact notation by `show`), and validation errors.

use prost_types::Duration;
use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, Range, ScheduleSpec, StructuredCalendarSpec,
};

use super::{canonicalize, clean_ranges};
use crate::SpecError;
use crate::tests::{calendar, cron, cron_in, every, proto_ts, secs};

/// Canonicalize as the server stores, clean as DescribeSchedule returns, show compactly.
fn described(spec: &ScheduleSpec) -> Vec<String> {
    let mut spec = canonicalize(spec).expect("valid spec");
    assert_eq!(
        canonicalize(&spec).as_ref(),
        Ok(&spec),
        "canonicalizing twice changes nothing"
    );
    clean_ranges(&mut spec);
    show(&spec)
}

fn show(spec: &ScheduleSpec) -> Vec<String> {
    let ranges = |rs: &[Range]| {
        rs.iter()
            .map(|r| format!("{}-{}/{}", r.start, r.end, r.step))
            .collect::<Vec<_>>()
            .join(",")
    };
    let cal = |c: &StructuredCalendarSpec| {
        let mut s = format!(
            "S={} M={} H={} DoM={} Mo={} DoW={} Y={}",
            ranges(&c.second),
            ranges(&c.minute),
            ranges(&c.hour),
            ranges(&c.day_of_month),
            ranges(&c.month),
            ranges(&c.day_of_week),
            ranges(&c.year)
        );
        if !c.comment.is_empty() {
            s += &format!(" #{}", c.comment);
        }
        s
    };
    let dur = |d: &Duration| format!("{}s", d.seconds);
    let mut out: Vec<String> = spec
        .structured_calendar
        .iter()
        .map(|c| format!("calendar {}", cal(c)))
        .collect();
    out.extend(
        spec.exclude_structured_calendar
            .iter()
            .map(|c| format!("exclude {}", cal(c))),
    );
    for iv in &spec.interval {
        let phase = iv.phase.as_ref().map_or("-".to_owned(), dur);
        out.push(format!(
            "interval {}/{phase}",
            iv.interval.as_ref().map_or("-".to_owned(), dur)
        ));
    }
    if !spec.timezone_name.is_empty() {
        out.push(format!("timezoneName {}", spec.timezone_name));
    }
    if let Some(d) = &spec.jitter {
        out.push(format!("jitter {}", dur(d)));
    }
    out
}

#[test]
fn strings_become_structured_calendars() {
    #[allow(deprecated)]
    let spec = ScheduleSpec {
        calendar: vec![CalendarSpec {
            hour: "9-17/2,20".into(),
            day_of_week: "sat,su".into(),
            comment: "weekend".into(),
            ..Default::default()
        }],
        cron_string: vec!["TZ=Asia/Kolkata 0 9 * * mon-fri # weekday".into()],
        interval: vec![every(3600, 60)],
        exclude_calendar: vec![CalendarSpec {
            month: "dec".into(),
            day_of_month: "25".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        described(&spec),
        [
            "calendar S=0-0/1 M=0-0/1 H=9-17/2,20-20/1 DoM=1-31/1 Mo=1-12/1 DoW=6-6/1,0-0/1 Y= #weekend",
            "calendar S=0-0/1 M=0-0/1 H=9-9/1 DoM=1-31/1 Mo=1-12/1 DoW=1-5/1 Y= #weekday",
            "exclude S=0-0/1 M=0-0/1 H=0-0/1 DoM=25-25/1 Mo=12-12/1 DoW=0-6/1 Y=",
            "interval 3600s/60s",
            "timezoneName Asia/Kolkata",
        ]
    );
}

#[test]
fn cron_zones_intervals_and_days_of_week() {
    // An @every string's zone prefix is dropped, so it does not conflict with timezone_name.
    let spec = cron_in("America/New_York", &["TZ=Europe/Berlin @every 5m/0s"]);
    assert_eq!(
        described(&spec),
        ["interval 300s/0s", "timezoneName America/New_York"]
    );
    let spec = cron(&[
        "CRON_TZ=Europe/Berlin 0 9 * * *",
        "TZ=Europe/Berlin 0 17 * * *",
    ]);
    assert_eq!(
        described(&spec),
        [
            "calendar S=0-0/1 M=0-0/1 H=9-9/1 DoM=1-31/1 Mo=1-12/1 DoW=0-6/1 Y=",
            "calendar S=0-0/1 M=0-0/1 H=17-17/1 DoM=1-31/1 Mo=1-12/1 DoW=0-6/1 Y=",
            "timezoneName Europe/Berlin",
        ]
    );
    assert_eq!(
        described(&cron(&["@every 2d/1d12h"])),
        ["interval 172800s/129600s"]
    );
    assert_eq!(
        described(&cron(&["@every 1.5d # day and a half"])),
        ["interval 129600s/-"]
    );
    let dow = |s: &str| {
        described(&calendar(CalendarSpec {
            day_of_week: s.into(),
            hour: "9".into(),
            ..Default::default()
        }))
    };
    assert_eq!(
        dow("3-7"),
        ["calendar S=0-0/1 M=0-0/1 H=9-9/1 DoM=1-31/1 Mo=1-12/1 DoW=0-0/1,3-6/1 Y="]
    );
    assert_eq!(
        dow("1-7/2"),
        ["calendar S=0-0/1 M=0-0/1 H=9-9/1 DoM=1-31/1 Mo=1-12/1 DoW=0-0/1,1-6/2 Y="]
    );
    assert_eq!(
        dow("7"),
        ["calendar S=0-0/1 M=0-0/1 H=9-9/1 DoM=1-31/1 Mo=1-12/1 DoW=0-0/1 Y="]
    );
    let years = calendar(CalendarSpec {
        year: "*/25".into(),
        month: "1".into(),
        day_of_month: "1".into(),
        ..Default::default()
    });
    assert_eq!(
        described(&years),
        ["calendar S=0-0/1 M=0-0/1 H=0-0/1 DoM=1-1/1 Mo=1-1/1 DoW=0-6/1 Y=2000-2100/25"]
    );
}

#[test]
fn structured_calendars_keep_their_fields_and_other_fields_pass_through() {
    let spec = ScheduleSpec {
        structured_calendar: vec![StructuredCalendarSpec {
            minute: vec![Range {
                start: 5,
                end: 0,
                step: 0,
            }],
            hour: vec![Range {
                start: 10,
                end: 0,
                step: 0,
            }],
            day_of_month: vec![Range {
                start: 1,
                end: 31,
                step: 0,
            }],
            month: vec![Range {
                start: 1,
                end: 12,
                step: 0,
            }],
            day_of_week: vec![Range {
                start: 0,
                end: 6,
                step: 0,
            }],
            ..Default::default()
        }],
        jitter: secs(7200),
        start_time: Some(proto_ts("2025-01-01T02:00:00.500Z")),
        ..Default::default()
    };
    assert_eq!(
        described(&spec),
        [
            "calendar S= M=5-5/1 H=10-10/1 DoM=1-31/1 Mo=1-12/1 DoW=0-6/1 Y=",
            "jitter 7200s"
        ]
    );
    assert_eq!(
        canonicalize(&spec).expect("valid").start_time,
        spec.start_time
    );
}

fn error(spec: &ScheduleSpec) -> String {
    canonicalize(spec).expect_err("invalid spec").to_string()
}

#[test]
fn errors_name_the_field_and_follow_temporal_texts() {
    assert_eq!(
        error(&cron(&["0 12 * *"])),
        "cron_string[0]: CronString does not have 5-7 fields"
    );
    assert_eq!(
        error(&cron(&["0 0 0 1 1 * 2025 x"])),
        "cron_string[0]: CronString does not have 5-7 fields"
    );
    assert_eq!(
        error(&cron(&["TZ=UTC"])),
        "cron_string[0]: CronString has time zone but missing fields"
    );
    assert_eq!(
        error(&cron(&["@every"])),
        "cron_string[0]: CronString does not have interval after @every"
    );
    assert_eq!(
        error(&cron(&["@every 5x"])),
        "cron_string[0]: time: unknown unit \"x\" in duration \"5x\""
    );
    let hour = calendar(CalendarSpec {
        hour: "25".into(),
        ..Default::default()
    });
    assert_eq!(error(&hour), "calendar[0]: Hour is not in range [0-23]");
    let two = calendar(CalendarSpec {
        hour: "24".into(),
        minute: "x".into(),
        ..Default::default()
    });
    assert_eq!(
        error(&two),
        "calendar[0]: Minute is not in range [0-59], Hour is not in range [0-23]"
    );
    let year = calendar(CalendarSpec {
        year: "1999".into(),
        ..Default::default()
    });
    assert_eq!(
        error(&year),
        "calendar[0]: Year is not in range [2000-2100]"
    );
    let conflict = cron_in("America/New_York", &["TZ=Europe/Berlin 0 12 * * *"]);
    assert_eq!(
        canonicalize(&conflict),
        Err(SpecError::ConflictingTimezoneNames)
    );
    // An @every string counts as "no zone" even with a prefix (the reference server agrees).
    let every_prefixed = cron(&["TZ=Europe/Berlin @every 1h", "TZ=Europe/Berlin 0 12 * * *"]);
    assert_eq!(
        canonicalize(&every_prefixed),
        Err(SpecError::ConflictingTimezoneNames)
    );
    let disagree = cron(&["CRON_TZ=Europe/Berlin 0 9 * * *", "0 17 * * *"]);
    assert_eq!(
        canonicalize(&disagree),
        Err(SpecError::ConflictingTimezoneNames)
    );
    let with_data = ScheduleSpec {
        timezone_data: vec![0, 0, 0],
        ..cron(&["CRON_TZ=Europe/Berlin 0 9 * * *"])
    };
    assert_eq!(
        canonicalize(&with_data),
        Err(SpecError::ConflictingTimezoneNames)
    );
    assert_eq!(
        SpecError::ConflictingTimezoneNames.to_string(),
        "timezone_name: conflicting timezone names"
    );
}

#[test]
fn structured_calendar_and_interval_validation() {
    let bad = |f: fn(&mut StructuredCalendarSpec)| {
        let mut cal = StructuredCalendarSpec::default();
        f(&mut cal);
        error(&ScheduleSpec {
            structured_calendar: vec![cal],
            ..Default::default()
        })
    };
    assert_eq!(
        bad(|c| c.hour = vec![Range {
            start: 5,
            end: 3,
            step: 0
        }]),
        "structured_calendar[0]: invalid calendar spec: Hour End is before Start or not in range [0-23]"
    );
    assert_eq!(
        bad(|c| c.hour = vec![Range {
            start: 5,
            end: 0,
            step: -1
        }]),
        "structured_calendar[0]: invalid calendar spec: Hour has invalid Step"
    );
    assert_eq!(
        bad(|c| c.day_of_week = vec![Range {
            start: 7,
            end: 0,
            step: 0
        }]),
        "structured_calendar[0]: invalid calendar spec: DayOfWeek Start is not in range [0-6]"
    );
    assert_eq!(
        bad(|c| c.comment = "x".repeat(201)),
        "structured_calendar[0]: invalid calendar spec: comment is too long"
    );
    let interval = |iv| {
        error(&ScheduleSpec {
            interval: vec![iv],
            ..Default::default()
        })
    };
    let half = temporalio_protos::temporal::api::schedule::v1::IntervalSpec {
        interval: Some(Duration {
            seconds: 0,
            nanos: 500_000_000,
        }),
        phase: None,
    };
    assert_eq!(interval(half), "interval[0]: interval is too small");
    assert_eq!(
        interval(every(60, 60)),
        "interval[0]: phase cannot be greater than Interval"
    );
    let negative = temporalio_protos::temporal::api::schedule::v1::IntervalSpec {
        interval: secs(60),
        phase: Some(Duration {
            seconds: -1,
            nanos: 0,
        }),
    };
    assert_eq!(interval(negative), "interval[0]: phase is negative");
    let broken = temporalio_protos::temporal::api::schedule::v1::IntervalSpec {
        interval: Some(Duration {
            seconds: 60,
            nanos: -1,
        }),
        phase: None,
    };
    assert_eq!(
        interval(broken),
        "interval[0].interval: interval is not a valid duration"
    );
    let from_cron = ScheduleSpec {
        interval: vec![every(60, 0)],
        ..cron(&["@every 0s"])
    };
    assert_eq!(error(&from_cron), "cron_string[0]: interval is too small");
}
