//! A compiled `StructuredCalendarSpec`: does an instant match, and the next one that does.
//!
//! [`CompiledCalendar::next`] walks the calendar fields from the year inwards exactly as
//! Temporal's `compiledCalendar.next` does, with Go's `time.Date` rules for local times
//! (`Zone::go_date`). That reproduces Temporal's daylight-saving behaviour: a wall time
//! that a spring-forward skips does not fire that day, and in a repeated hour the search
//! visits the hour's instants a second time, shifted by an hour. (In zones east of UTC the
//! shifted second pass can land an hour late; the reference server does the same.)

use temporalio_protos::temporal::api::schedule::v1::{Range, StructuredCalendarSpec};

use crate::cron::MAX_CALENDAR_YEAR;
use crate::zone::{Zone, days_in_month};

/// Set of values 0..=63 (any field but the year).
#[derive(Debug, Clone, Copy)]
struct Bits(u64);

impl Bits {
    fn new(ranges: &[Range]) -> Bits {
        let mut bits = 0u64;
        for v in 0..64 {
            if ranges.iter().any(|r| range_contains(r, v)) {
                bits |= 1 << v;
            }
        }
        Bits(bits)
    }

    fn has(self, v: i64) -> bool {
        (0..64).contains(&v) && self.0 & (1 << v) != 0
    }
}

/// Temporal's reading of a range: end below start means start, step 0 means 1.
fn range_contains(r: &Range, v: i64) -> bool {
    let (start, step) = (i64::from(r.start), i64::from(r.step.max(1)));
    let end = i64::from(r.end).max(start);
    (start..=end).contains(&v) && (v - start) % step == 0
}

/// Why an exclude calendar cannot be compiled (Temporal does not validate exclusions, and
/// hangs or panics on these).
pub(crate) fn check_exclude(cal: &StructuredCalendarSpec) -> Result<(), String> {
    let fields = [
        ("Second", &cal.second),
        ("Minute", &cal.minute),
        ("Hour", &cal.hour),
        ("DayOfMonth", &cal.day_of_month),
        ("Month", &cal.month),
        ("DayOfWeek", &cal.day_of_week),
    ];
    for (name, ranges) in fields.iter().chain([("Year", &cal.year)].iter()) {
        for r in ranges.iter() {
            if r.step < 0 {
                return Err(format!("{name} has invalid Step"));
            }
            if r.start < 0 && *name != "Year" {
                return Err(format!("{name} Start is negative"));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledCalendar {
    /// Empty means every year.
    years: Vec<Range>,
    month: Bits,
    day_of_month: Bits,
    /// 0 = Sunday.
    day_of_week: Bits,
    hour: Bits,
    minute: Bits,
    second: Bits,
}

impl CompiledCalendar {
    pub(crate) fn new(cal: &StructuredCalendarSpec) -> CompiledCalendar {
        CompiledCalendar {
            years: cal.year.clone(),
            month: Bits::new(&cal.month),
            day_of_month: Bits::new(&cal.day_of_month),
            day_of_week: Bits::new(&cal.day_of_week),
            hour: Bits::new(&cal.hour),
            minute: Bits::new(&cal.minute),
            second: Bits::new(&cal.second),
        }
    }

    fn year(&self, y: i64) -> bool {
        self.years.is_empty() || self.years.iter().any(|r| range_contains(r, y))
    }

    /// Whether the instant (unix seconds) matches every field in `zone`.
    pub(crate) fn matches(&self, zone: &Zone, unix: i64) -> bool {
        let c = zone.civil(unix);
        self.year(c.year)
            && self.month.has(c.month)
            && self.day_of_month.has(c.day)
            && self.day_of_week.has(c.weekday)
            && self.hour.has(c.hour)
            && self.minute.has(c.minute)
            && self.second.has(c.second)
    }

    /// The first matching instant strictly after `after` (unix seconds), to one-second
    /// resolution, or None if nothing matches up to the end of `MAX_CALENDAR_YEAR`.
    pub(crate) fn next(&self, zone: &Zone, after: i64) -> Option<i64> {
        let c = zone.civil(after);
        let (mut y, mut mo, mut d) = (c.year, c.month, c.day);
        let (mut h, mut m, mut s) = (c.hour, c.minute, c.second);
        // In the second copy of a repeated hour, the wall time read back through go_date
        // gives the first copy; `dst` is added back to the result.
        let mut dst = if zone.civil(after - 3600).hour == h {
            3600
        } else {
            0
        };
        s += 1;
        'outer: loop {
            // carries
            if s >= 60 {
                (m, s) = (m + 1, 0);
            }
            if m >= 60 {
                let prev = zone.go_date(y, mo, d, h, 0, 0);
                (h, m) = (h + 1, 0);
                let next = zone.go_date(y, mo, d, h, 0, 0);
                // Two hours between consecutive wall hours: a repeated hour was skipped
                // over, so walk this hour again an hour later.
                if dst == 0 && next - prev > 3600 {
                    h -= 1;
                    dst = 3600;
                } else {
                    dst = 0;
                }
            }
            if h >= 24 {
                (d, h) = (d + 1, 0);
            }
            if d > days_in_month(mo, y) {
                (mo, d) = (mo + 1, 1);
            }
            if mo > 12 {
                (y, mo) = (y + 1, 1);
            }
            if y > MAX_CALENDAR_YEAR {
                return None;
            }
            // match from the outside in
            if !self.year(y) {
                (y, mo, d, h, m, s, dst) = (y + 1, 1, 1, 0, 0, 0, 0);
                continue 'outer;
            }
            while !self.month.has(mo) {
                (mo, d, h, m, s, dst) = (mo + 1, 1, 0, 0, 0, 0);
                if mo > 12 {
                    continue 'outer;
                }
            }
            while !self.day_of_month.has(d)
                || !self
                    .day_of_week
                    .has(zone.civil(zone.go_date(y, mo, d, h, m, s)).weekday)
            {
                (d, h, m, s, dst) = (d + 1, 0, 0, 0, 0);
                if d > days_in_month(mo, y) {
                    continue 'outer;
                }
            }
            while !self.hour.has(h) {
                (h, m, s, dst) = (h + 1, 0, 0, 0);
                if h >= 24 {
                    continue 'outer;
                }
            }
            while !self.minute.has(m) {
                (m, s) = (m + 1, 0);
                if m >= 60 {
                    continue 'outer;
                }
            }
            while !self.second.has(s) {
                s += 1;
                if s >= 60 {
                    continue 'outer;
                }
            }
            let found = zone.go_date(y, mo, d, h, m, s);
            // A wall time skipped by a spring-forward reads back as another hour.
            if zone.civil(found).hour != h {
                (h, m, s) = (h + 1, 0, 0);
                continue 'outer;
            }
            return Some(found + dst);
        }
    }
}

#[cfg(test)]
#[path = "tests/calendar.rs"]
mod tests;
