//! Spec canonicalization: what the server stores and DescribeSchedule returns.
//!
//! As Temporal does: `calendar` and `exclude_calendar` strings are parsed and appended to
//! `structured_calendar` / `exclude_structured_calendar`; each cron string becomes a
//! structured calendar or an interval, and its `TZ=` zone moves to `timezone_name`; then
//! structured calendars and intervals are validated. Canonicalizing a canonical spec
//! changes nothing. [`clean_ranges`] is the extra step Temporal applies when it returns a
//! spec (DescribeSchedule, ListSchedules): explicit ends and steps in every range.

use prost_types::Duration;
use temporalio_protos::temporal::api::schedule::v1::{Range, ScheduleSpec, StructuredCalendarSpec};

use crate::cron::{Cron, MAX_CALENDAR_YEAR, MIN_CALENDAR_YEAR, parse_calendar, parse_cron};
use crate::error::SpecError;

/// The longest comment a calendar may carry.
const MAX_COMMENT_LEN: usize = 200;

/// Go's `time.Duration` limit and protobuf's Duration limit, in seconds.
const MAX_PROTO_DURATION_SECONDS: i64 = 315_576_000_000;

/// Validates `spec` and returns its canonical form (see the module comment).
pub fn canonicalize(spec: &ScheduleSpec) -> Result<ScheduleSpec, SpecError> {
    // The frontend first checks that interval durations are valid protobuf durations.
    for (i, iv) in spec.interval.iter().enumerate() {
        for (name, d) in [("interval", &iv.interval), ("phase", &iv.phase)] {
            if d.as_ref().is_some_and(|d| !proto_duration_valid(d)) {
                let msg = format!("{name} is not a valid duration");
                return Err(SpecError::invalid(format!("interval[{i}].{name}"), msg));
            }
        }
    }

    let mut spec = spec.clone();
    // Where each structured calendar and interval came from, for error messages.
    let mut calendar_fields: Vec<String> = (0..spec.structured_calendar.len())
        .map(|i| format!("structured_calendar[{i}]"))
        .collect();
    let mut interval_fields: Vec<String> = (0..spec.interval.len())
        .map(|i| format!("interval[{i}]"))
        .collect();

    for (i, cal) in std::mem::take(&mut spec.calendar).iter().enumerate() {
        let field = format!("calendar[{i}]");
        let structured = parse_calendar(cal).map_err(|m| SpecError::invalid(&field, m))?;
        spec.structured_calendar.push(structured);
        calendar_fields.push(field);
    }
    #[allow(deprecated)] // exclude_calendar is deprecated in the API but still accepted
    let exclude_calendar = std::mem::take(&mut spec.exclude_calendar);
    for (i, cal) in exclude_calendar.iter().enumerate() {
        let structured = parse_calendar(cal)
            .map_err(|m| SpecError::invalid(format!("exclude_calendar[{i}]"), m))?;
        spec.exclude_structured_calendar.push(structured);
    }

    // All cron strings must agree on their zone (an absent one included).
    let mut cron_tz: Option<String> = None;
    for (i, cron) in std::mem::take(&mut spec.cron_string).iter().enumerate() {
        let field = format!("cron_string[{i}]");
        let parsed = parse_cron(cron).map_err(|m| SpecError::invalid(&field, m))?;
        let tz = match &parsed {
            Cron::Calendar { tz, .. } => tz.as_str(),
            Cron::Interval(_) => "",
        };
        if cron_tz.as_ref().is_some_and(|seen| seen != tz) {
            return Err(SpecError::ConflictingTimezoneNames);
        }
        cron_tz = Some(tz.to_owned());
        match parsed {
            Cron::Calendar { calendar, .. } => {
                spec.structured_calendar.push(calendar);
                calendar_fields.push(field);
            }
            Cron::Interval(interval) => {
                spec.interval.push(interval);
                interval_fields.push(field);
            }
        }
    }
    if let Some(tz) = cron_tz.filter(|tz| !tz.is_empty()) {
        let conflicting = !spec.timezone_name.is_empty() && spec.timezone_name != tz;
        if conflicting || !spec.timezone_data.is_empty() {
            return Err(SpecError::ConflictingTimezoneNames);
        }
        spec.timezone_name = tz;
    }

    for (cal, field) in spec.structured_calendar.iter().zip(&calendar_fields) {
        validate_structured_calendar(cal).map_err(|m| SpecError::invalid(field, m))?;
    }
    for (iv, field) in spec.interval.iter().zip(&interval_fields) {
        let interval = duration_nanos(iv.interval.as_ref());
        let phase = duration_nanos(iv.phase.as_ref());
        let message = if interval < 1_000_000_000 {
            "interval is too small"
        } else if phase < 0 {
            "phase is negative"
        } else if phase >= interval {
            "phase cannot be greater than Interval"
        } else {
            continue;
        };
        return Err(SpecError::invalid(field, message));
    }
    Ok(spec)
}

/// Temporal's `validateStructuredCalendar`: every message of one calendar, joined.
fn validate_structured_calendar(cal: &StructuredCalendarSpec) -> Result<(), String> {
    let mut errs = Vec::new();
    let mut check = |ranges: &[Range], field: &str, min: i64, max: i64| {
        for r in ranges {
            let (start, end) = (i64::from(r.start), i64::from(r.end));
            if start < min || start > max {
                errs.push(format!("{field} Start is not in range [{min}-{max}]"));
            }
            if end != 0 && (end < start || end > max) {
                errs.push(format!(
                    "{field} End is before Start or not in range [{min}-{max}]"
                ));
            }
            if r.step < 0 {
                errs.push(format!("{field} has invalid Step"));
            }
        }
    };
    check(&cal.second, "Second", 0, 59);
    check(&cal.minute, "Minute", 0, 59);
    check(&cal.hour, "Hour", 0, 23);
    check(&cal.day_of_month, "DayOfMonth", 1, 31);
    check(&cal.month, "Month", 1, 12);
    check(&cal.year, "Year", MIN_CALENDAR_YEAR, MAX_CALENDAR_YEAR);
    check(&cal.day_of_week, "DayOfWeek", 0, 6);
    if cal.comment.len() > MAX_COMMENT_LEN {
        errs.push("comment is too long".into());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid calendar spec: {}", errs.join(", ")))
    }
}

/// Temporal's `CleanSpec`, applied to specs it returns: a range's end is at least its
/// start and its step at least 1.
pub fn clean_ranges(spec: &mut ScheduleSpec) {
    let calendars = spec.structured_calendar.iter_mut();
    for cal in calendars.chain(spec.exclude_structured_calendar.iter_mut()) {
        for ranges in [
            &mut cal.second,
            &mut cal.minute,
            &mut cal.hour,
            &mut cal.day_of_month,
            &mut cal.month,
            &mut cal.year,
            &mut cal.day_of_week,
        ] {
            for r in ranges.iter_mut() {
                r.end = r.end.max(r.start);
                if r.step == 0 {
                    r.step = 1;
                }
            }
        }
    }
}

/// protobuf's Duration validity rule (Go's `durationpb.CheckValid`).
fn proto_duration_valid(d: &Duration) -> bool {
    let secs_ok = (-MAX_PROTO_DURATION_SECONDS..=MAX_PROTO_DURATION_SECONDS).contains(&d.seconds);
    let nanos_ok = d.nanos > -1_000_000_000 && d.nanos < 1_000_000_000;
    let signs_ok = !(d.seconds > 0 && d.nanos < 0 || d.seconds < 0 && d.nanos > 0);
    secs_ok && nanos_ok && signs_ok
}

/// A protobuf Duration as Go's `time.Duration` (nanoseconds, saturating; absent is 0).
pub(crate) fn duration_nanos(d: Option<&Duration>) -> i64 {
    d.map_or(0, |d| {
        let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
        nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    })
}

#[cfg(test)]
#[path = "tests/canonical.rs"]
mod tests;
