//! Which scheduled actions were taken, and how late: pure arithmetic over the runs a listing
//! returned, so it is tested without a server.
//!
//! A scheduled run's workflow id is `<action workflow id>-<nominal time>`, the time in RFC 3339
//! UTC with whole seconds (Temporal's format, which temper follows). Lateness is the run's
//! start time (the server's clock) minus that nominal time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::stats::{Histo, LatencySummary};

/// One run found in visibility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub workflow_id: String,
    pub run_id: String,
    /// Start time, unix nanoseconds (server clock).
    pub start_ns: i128,
    /// Close time, unix nanoseconds, if closed.
    pub close_ns: Option<i128>,
    pub completed: bool,
}

/// Split `<action id>-<YYYY-MM-DDTHH:MM:SSZ>` into the action id and the nominal time in unix
/// seconds.
pub fn split_workflow_id(id: &str) -> Option<(&str, i64)> {
    const TIME_LEN: usize = "2026-01-01T00:00:00Z".len();
    let cut = id.len().checked_sub(TIME_LEN + 1)?;
    if !id.is_char_boundary(cut) || id.as_bytes()[cut] != b'-' {
        return None;
    }
    Some((&id[..cut], parse_rfc3339_utc(&id[cut + 1..])?))
}

/// `YYYY-MM-DDTHH:MM:SSZ` to unix seconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What was expected: every action id, at every time `phase + k * interval_s` (intervals are
/// anchored at the unix epoch; each action has its own phase, in whole seconds below the
/// interval) in `[from_s, to_s)`.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Each action id with its phase in seconds.
    pub action_ids: BTreeMap<String, i64>,
    pub interval_s: i64,
    pub from_s: i64,
    pub to_s: i64,
}

impl Expected {
    /// The nominal times in the window of a schedule with phase `phase_s`.
    pub fn times_with_phase(&self, phase_s: i64) -> Vec<i64> {
        let k = (self.from_s - phase_s).div_euclid(self.interval_s);
        let mut first = phase_s + k * self.interval_s;
        if first < self.from_s {
            first += self.interval_s;
        }
        (0..)
            .map(|k| first + k * self.interval_s)
            .take_while(|t| *t < self.to_s)
            .collect()
    }

    /// Every nominal time in the window, of any schedule, each once, in order.
    pub fn times(&self) -> Vec<i64> {
        let phases: BTreeSet<i64> = self.action_ids.values().copied().collect();
        let times: BTreeSet<i64> = phases
            .into_iter()
            .flat_map(|p| self.times_with_phase(p))
            .collect();
        times.into_iter().collect()
    }

    /// How many actions the window should hold.
    pub fn count(&self) -> u64 {
        let mut per_phase: BTreeMap<i64, u64> = BTreeMap::new();
        for p in self.action_ids.values() {
            *per_phase.entry(*p).or_default() += 1;
        }
        per_phase
            .into_iter()
            .map(|(p, n)| n * self.times_with_phase(p).len() as u64)
            .sum()
    }
}

/// Actions in the window: counts and lateness.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ActionStats {
    /// Schedules times nominal times in the window.
    pub expected: u64,
    /// Distinct (schedule, nominal time) pairs with a run.
    pub taken: u64,
    pub missing: u64,
    /// Runs beyond the first for the same (schedule, nominal time), by run id.
    pub duplicates: u64,
    /// The same run returned more than once by the listing (not a double start).
    pub listed_twice: u64,
    /// Runs in the window whose nominal time is not one of the spec's times, or whose id does
    /// not belong to one of our schedules.
    pub unexpected: u64,
    /// Taken actions that started more than 1 s after their nominal time.
    pub late_over_1s: u64,
    /// Taken actions whose start time is before their nominal time (clock skew or a bug).
    pub early: u64,
    /// Taken actions whose run had not completed when listed.
    pub not_completed: u64,
    /// Start time minus nominal time of each taken action (early ones count as 0).
    pub lateness_ms: LatencySummary,
}

/// Compare the runs found with what was expected.
pub fn analyse(expected: &Expected, runs: &[Run]) -> ActionStats {
    let mut s = ActionStats {
        expected: expected.count(),
        ..Default::default()
    };
    let mut first: HashMap<(&str, i64), &Run> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for run in runs {
        if !run.run_id.is_empty() && !seen.insert(run.run_id.as_str()) {
            s.listed_twice += 1;
            continue;
        }
        let Some((action, nominal)) = split_workflow_id(&run.workflow_id) else {
            continue;
        };
        if nominal < expected.from_s || nominal >= expected.to_s {
            continue;
        }
        let on_grid = expected
            .action_ids
            .get(action)
            .is_some_and(|phase| (nominal - phase).rem_euclid(expected.interval_s) == 0);
        if !on_grid {
            s.unexpected += 1;
            continue;
        }
        match first.entry((action, nominal)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                s.duplicates += 1;
                if run.start_ns < e.get().start_ns {
                    e.insert(run);
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(run);
            }
        }
    }
    let mut h = Histo::new();
    for ((_, nominal), run) in &first {
        let late_ns = run.start_ns - i128::from(*nominal) * 1_000_000_000;
        if late_ns < 0 {
            s.early += 1;
        }
        if late_ns > 1_000_000_000 {
            s.late_over_1s += 1;
        }
        if !run.completed {
            s.not_completed += 1;
        }
        h.record(Duration::from_nanos(
            u64::try_from(late_ns.max(0)).unwrap_or(u64::MAX),
        ));
    }
    s.taken = first.len() as u64;
    s.missing = s.expected - s.taken;
    s.lateness_ms = h.summary();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_into_action_and_nominal_time() {
        assert_eq!(
            split_workflow_id("sbwf-ab-7-2026-12-06T09:10:00Z"),
            Some(("sbwf-ab-7", 1_796_548_200))
        );
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("2000-03-01T00:00:01Z"), Some(951_868_801));
        assert_eq!(split_workflow_id("x2026-12-06T09:10:00Z"), None);
        assert_eq!(split_workflow_id("a-2026-13-06T09:10:00Z"), None);
        assert_eq!(split_workflow_id("a-2026-12-06 09:10:00Z"), None);
        assert_eq!(split_workflow_id("short"), None);
    }

    fn run(id: &str, start_s: f64) -> Run {
        Run {
            workflow_id: id.to_string(),
            run_id: format!("{id}/{start_s}"),
            start_ns: (start_s * 1e9) as i128,
            close_ns: None,
            completed: true,
        }
    }

    #[test]
    fn missing_duplicate_unexpected_and_lateness() {
        let expected = Expected {
            action_ids: [("a".to_string(), 0), ("b".to_string(), 0)].into(),
            interval_s: 10,
            from_s: 5,
            to_s: 30,
        };
        assert_eq!(expected.times(), vec![10, 20]);
        let t = |s: i64| {
            let days = s / 86_400;
            assert_eq!(days, 0);
            format!("1970-01-01T00:00:{s:02}Z")
        };
        let runs = vec![
            run(&format!("a-{}", t(10)), 10.2),
            run(&format!("a-{}", t(20)), 21.5),
            run(&format!("a-{}", t(20)), 22.0), // duplicate
            run(&format!("b-{}", t(10)), 10.1),
            // b at 20 is missing
            run(&format!("b-{}", t(15)), 15.0), // off the grid
            run(&format!("c-{}", t(10)), 10.0), // not ours
            run(&format!("a-{}", t(0)), 0.0),   // before the window
            run(&format!("a-{}", t(30)), 30.0), // after it
            run(&format!("a-{}", t(10)), 10.2), // the first one, listed again
        ];
        let s = analyse(&expected, &runs);
        assert_eq!(s.expected, 4);
        assert_eq!(s.taken, 3);
        assert_eq!(s.missing, 1);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.listed_twice, 1);
        assert_eq!(s.unexpected, 2);
        assert_eq!(s.late_over_1s, 1);
        assert_eq!(s.lateness_ms.count, 3);
        assert!(
            (s.lateness_ms.max - 1500.0).abs() < 2.0,
            "{:?}",
            s.lateness_ms
        );
        assert!(
            (s.lateness_ms.p50 - 200.0).abs() < 1.0,
            "{:?}",
            s.lateness_ms
        );
    }

    #[test]
    fn each_action_has_its_own_phase() {
        let expected = Expected {
            action_ids: [("a".to_string(), 0), ("b".to_string(), 3)].into(),
            interval_s: 10,
            from_s: 5,
            to_s: 30,
        };
        assert_eq!(expected.times_with_phase(0), vec![10, 20]);
        assert_eq!(expected.times_with_phase(3), vec![13, 23]);
        assert_eq!(expected.times(), vec![10, 13, 20, 23]);
        assert_eq!(expected.count(), 4);
        let t = |s: i64| format!("1970-01-01T00:00:{s:02}Z");
        let runs = vec![
            run(&format!("a-{}", t(10)), 10.0),
            run(&format!("b-{}", t(13)), 13.5),
            run(&format!("b-{}", t(20)), 20.0), // off b's grid
            run(&format!("a-{}", t(23)), 23.0), // off a's grid
        ];
        let s = analyse(&expected, &runs);
        assert_eq!(s.taken, 2);
        assert_eq!(s.missing, 2);
        assert_eq!(s.unexpected, 2);
    }
}
