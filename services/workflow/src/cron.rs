//! Cron schedules of cron workflows: the robfig/cron dialect the Temporal server accepts
//! (five fields, `@hourly`-style aliases, and `@every <duration>`), always in UTC.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule.
pub enum Schedule {
    /// A fixed interval, counted from the workflow's start.
    Every(Duration),
    Cron(Box<Cron>),
}

/// Parse a cron schedule; the error says what is wrong in Temporal's words.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    let invalid =
        |why: &dyn std::fmt::Display| format!("Invalid CronSchedule, failed to parse: {why}");
    if let Some(rest) = spec.strip_prefix("@every ") {
        let d = parse_go_duration(rest.trim()).ok_or_else(|| invalid(&rest))?;
        if d.is_zero() {
            return Err(invalid(&"@every needs a positive duration"));
        }
        return Ok(Schedule::Every(d));
    }
    if spec.split_whitespace().count() != 5 && !spec.starts_with('@') {
        return Err(invalid(&"expected exactly 5 fields"));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(spec)
        .map(|c| Schedule::Cron(Box::new(c)))
        .map_err(|e| invalid(&e))
}

/// How long after `now` the next run starts, for a chain that started at `start`.
pub fn backoff(spec: &str, start: SystemTime, now: SystemTime) -> Result<Duration, String> {
    match parse(spec)? {
        Schedule::Every(every) => {
            // The next multiple of the interval after `now`, counted from the start.
            let elapsed = now.duration_since(start).unwrap_or_default();
            let n = elapsed.as_nanos() / every.as_nanos() + 1;
            let next = start + every * u32::try_from(n).unwrap_or(u32::MAX);
            Ok(next.duration_since(now).unwrap_or_default())
        }
        Schedule::Cron(c) => {
            let now_dt: DateTime<Utc> = now.into();
            let next = c
                .find_next_occurrence(&now_dt, false)
                .map_err(|e| format!("Invalid CronSchedule: {e}"))?;
            let next: SystemTime = next.into();
            Ok(next.duration_since(now).unwrap_or_default())
        }
    }
}

/// Go's `time.ParseDuration` format: a sequence of decimal numbers with units
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`, `1.5s`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn every_counts_from_the_start() {
        let start = at(1_000);
        assert_eq!(
            backoff("@every 10s", start, at(1_003)).expect("valid schedule"),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff("@every 1m30s", start, at(1_000)).expect("valid schedule"),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn five_field_specs_and_aliases() {
        // 1970-01-01T00:00:30Z: the next minute boundary is 30 s away.
        assert_eq!(
            backoff("* * * * *", at(0), at(30)).expect("valid schedule"),
            Duration::from_secs(30)
        );
        assert_eq!(
            backoff("@hourly", at(0), at(60)).expect("valid schedule"),
            Duration::from_secs(3540)
        );
        assert_eq!(
            backoff("0 */2 * * *", at(0), at(3600)).expect("valid schedule"),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for bad in [
            "",
            "* * *",
            "@every",
            "@every 5x",
            "@every 0s",
            "61 * * * *",
            "* * * * * *",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
