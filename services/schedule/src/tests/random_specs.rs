//! Generated cron specs in eleven zones, each listed over three windows that hold a
//! daylight-saving change somewhere, against `recorded_random.txt`: the reference server's
//! ListScheduleMatchingTimes answers, one line per window:
//! `schedule id|zone|cron string|jitter seconds|start|end|time,time,...`.

use super::{cron_in, list, secs, ts};
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
