//! Generated specs checked against the reference server. The fixtures are written by
//! `services/schedule/scripts/record_reference.py` (seeded, so re-recording gives the same
//! specs; the jitter depends on the server's namespace id, see `recorded.rs`).
//!
//! Generated cron specs in eleven zones, each listed over three windows that hold a
//! daylight-saving change somewhere, against `recorded_random.txt`: the reference server's
//! ListScheduleMatchingTimes answers, one line per window:
//! `schedule id|zone|cron string|jitter seconds|start|end|time,time,...`.

use temporalio_protos::temporal::api::schedule::v1::CalendarSpec;

use super::{cron_in, every, list, proto_ts, secs, ts};
use crate::ScheduleSpec;

const RECORDED: &str = include_str!("recorded_random.txt");

#[test]
fn generated_specs_match_the_reference_server() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in RECORDED.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('|').collect();
        let [id, zone, cron, jitter, start, end, times] = fields[..] else {
            panic!("malformed line {line}");
        };
        let jitter: i64 = jitter.parse().expect("jitter seconds");
        let spec = ScheduleSpec {
            jitter: secs(jitter),
            ..cron_in(zone, &[cron])
        };
        let want: Vec<_> = times.split(',').filter(|t| !t.is_empty()).map(ts).collect();
        let got = list(&spec, id, start, end);
        if got != want {
            failures.push(format!("{line}\n  got  {got:?}"));
        }
        checked += 1;
    }
    assert!(checked >= 200, "only {checked} recorded windows");
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const RECORDED_MIXED: &str = include_str!("recorded_mixed.txt");

/// Calendar fields in cron order plus the year: `second minute hour dom month dow year`.
fn calendar_spec(s: &str) -> CalendarSpec {
    let f: Vec<&str> = s.split(' ').collect();
    let [second, minute, hour, day_of_month, month, day_of_week, year] = f[..] else {
        panic!("malformed calendar {s}");
    };
    CalendarSpec {
        second: second.into(),
        minute: minute.into(),
        hour: hour.into(),
        day_of_month: day_of_month.into(),
        month: month.into(),
        day_of_week: day_of_week.into(),
        year: year.into(),
        comment: String::new(),
    }
}

/// `recorded_mixed.txt`: generated specs with a cron string, an exclude calendar, an
/// interval with phase, start and end times and jitter (each maybe absent, written "-" or
/// 0), one three-day window each:
/// `id|zone|cron|exclude|interval s|phase s|start|end|jitter s|window start|window end|times`.
#[test]
fn generated_mixed_specs_match_the_reference_server() {
    let mut failures = Vec::new();
    let lines: Vec<&str> = RECORDED_MIXED.lines().filter(|l| !l.is_empty()).collect();
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        let [
            id,
            zone,
            cron,
            exclude,
            interval,
            phase,
            start,
            end,
            jitter,
            from,
            to,
            times,
        ] = f[..]
        else {
            panic!("malformed line {line}");
        };
        let number = |s: &str| s.parse::<i64>().expect("seconds");
        let optional = |s: &str| (s != "-").then(|| proto_ts(s));
        #[allow(deprecated)]
        let spec = ScheduleSpec {
            cron_string: if cron == "-" {
                vec![]
            } else {
                vec![cron.to_owned()]
            },
            exclude_calendar: if exclude == "-" {
                vec![]
            } else {
                vec![calendar_spec(exclude)]
            },
            interval: if number(interval) == 0 {
                vec![]
            } else {
                vec![every(number(interval), number(phase))]
            },
            start_time: optional(start),
            end_time: optional(end),
            jitter: secs(number(jitter)),
            timezone_name: zone.into(),
            ..Default::default()
        };
        let want: Vec<_> = times.split(',').filter(|t| !t.is_empty()).map(ts).collect();
        let got = list(&spec, id, from, to);
        if got != want {
            failures.push(format!("{line}\n  got  {got:?}"));
        }
    }
    assert!(lines.len() >= 100, "only {} recorded windows", lines.len());
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n")
    );
}
