//! Cron strings and `CalendarSpec`s turned into `StructuredCalendarSpec`s / `IntervalSpec`s.
//!
//! A cron string, as Temporal reads it: an optional `TZ=<zone>` or `CRON_TZ=<zone>` prefix,
//! then either `@every <interval>[/<phase>]` (an interval), a shorthand (`@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`) or 5 to 7 fields,
//! then an optional `# comment`:
//! - 5 fields: minute hour day-of-month month day-of-week
//! - 6 fields: minute hour day-of-month month day-of-week year
//! - 7 fields: second minute hour day-of-month month day-of-week year
//!
//! Day of month and day of week must both match (no "or" rule as in some crons).

use prost_types::Duration;
use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, IntervalSpec, StructuredCalendarSpec,
};

use crate::range::{Field, Mode, make_range};

/// The year range a calendar may name.
pub(crate) const MIN_CALENDAR_YEAR: i64 = 2000;
pub(crate) const MAX_CALENDAR_YEAR: i64 = 2100;

const SECOND: Field = Field {
    name: "Second",
    default: "0",
    min: 0,
    max: 59,
    mode: Mode::Int,
};
const MINUTE: Field = Field {
    name: "Minute",
    default: "0",
    min: 0,
    max: 59,
    mode: Mode::Int,
};
const HOUR: Field = Field {
    name: "Hour",
    default: "0",
    min: 0,
    max: 23,
    mode: Mode::Int,
};
const DAY_OF_WEEK: Field = Field {
    name: "DayOfWeek",
    default: "*",
    min: 0,
    max: 7,
    mode: Mode::DayOfWeek,
};
const DAY_OF_MONTH: Field = Field {
    name: "DayOfMonth",
    default: "*",
    min: 1,
    max: 31,
    mode: Mode::Int,
};
const MONTH: Field = Field {
    name: "Month",
    default: "*",
    min: 1,
    max: 12,
    mode: Mode::Month,
};
const YEAR: Field = Field {
    name: "Year",
    default: "*",
    min: MIN_CALENDAR_YEAR,
    max: MAX_CALENDAR_YEAR,
    mode: Mode::Year,
};

/// What one cron string becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cron {
    Calendar {
        calendar: StructuredCalendarSpec,
        /// The `TZ=`/`CRON_TZ=` zone, "" when there is none.
        tz: String,
    },
    /// `@every`: Temporal drops any zone prefix of these, so they count as "no zone".
    Interval(IntervalSpec),
}

/// Parses a `CalendarSpec`'s strings, applying each field's default; errors of all fields
/// are reported together, as Temporal does.
pub(crate) fn parse_calendar(cal: &CalendarSpec) -> Result<StructuredCalendarSpec, String> {
    let mut errs = Vec::new();
    let mut field = |s: &str, f: &Field| {
        make_range(s, f).unwrap_or_else(|e| {
            errs.push(e);
            Vec::new()
        })
    };
    let structured = StructuredCalendarSpec {
        second: field(&cal.second, &SECOND),
        minute: field(&cal.minute, &MINUTE),
        hour: field(&cal.hour, &HOUR),
        day_of_week: field(&cal.day_of_week, &DAY_OF_WEEK),
        day_of_month: field(&cal.day_of_month, &DAY_OF_MONTH),
        month: field(&cal.month, &MONTH),
        year: field(&cal.year, &YEAR),
        comment: cal.comment.clone(),
    };
    if errs.is_empty() {
        Ok(structured)
    } else {
        Err(errs.join(", "))
    }
}

/// Parses one cron string.
pub(crate) fn parse_cron(c: &str) -> Result<Cron, String> {
    let mut c = c.trim();
    let mut tz = "";
    if c.starts_with("TZ=") || c.starts_with("CRON_TZ=") {
        let Some((prefix, rest)) = c.split_once(' ') else {
            return Err("CronString has time zone but missing fields".into());
        };
        tz = prefix.split_once('=').map_or("", |(_, zone)| zone);
        c = rest;
    }
    let (body, comment) = c.split_once('#').unwrap_or((c, ""));
    let body = body.trim();
    if body.starts_with("@every") {
        return parse_every(body).map(Cron::Interval);
    }
    let body = match body {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let fields: Vec<&str> = body.split_whitespace().take(8).collect();
    let mut cal = CalendarSpec {
        comment: comment.trim().to_owned(),
        ..Default::default()
    };
    let owned = |s: &&str| (*s).to_owned();
    match fields.as_slice() {
        [mi, h, dom, mo, dow] => {
            (cal.minute, cal.hour, cal.day_of_month) = (owned(mi), owned(h), owned(dom));
            (cal.month, cal.day_of_week) = (owned(mo), owned(dow));
        }
        [mi, h, dom, mo, dow, y] => {
            (cal.minute, cal.hour, cal.day_of_month) = (owned(mi), owned(h), owned(dom));
            (cal.month, cal.day_of_week, cal.year) = (owned(mo), owned(dow), owned(y));
        }
        [s, mi, h, dom, mo, dow, y] => {
            (cal.second, cal.minute, cal.hour) = (owned(s), owned(mi), owned(h));
            (cal.day_of_month, cal.month) = (owned(dom), owned(mo));
            (cal.day_of_week, cal.year) = (owned(dow), owned(y));
        }
        _ => return Err("CronString does not have 5-7 fields".into()),
    }
    let calendar = parse_calendar(&cal)?;
    Ok(Cron::Calendar {
        calendar,
        tz: tz.to_owned(),
    })
}

/// `@every <interval>[/<phase>]`, durations in Go syntax plus `d` for days.
fn parse_every(c: &str) -> Result<IntervalSpec, String> {
    let Some((_, spec)) = c.split_once(' ') else {
        return Err("CronString does not have interval after @every".into());
    };
    let (interval, phase) = spec.split_once('/').unwrap_or((spec, ""));
    let interval = Some(to_proto(crate::duration::parse_duration(interval)?));
    if phase.is_empty() {
        return Ok(IntervalSpec {
            interval,
            phase: None,
        });
    }
    let phase = Some(to_proto(crate::duration::parse_duration(phase)?));
    Ok(IntervalSpec { interval, phase })
}

/// Go's `durationpb.New`.
fn to_proto(ns: i64) -> Duration {
    Duration {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

#[cfg(test)]
#[path = "tests/cron.rs"]
mod tests;
