//! Time zones and civil-time arithmetic with Go's `time` package semantics.
//!
//! Temporal computes calendar matches with Go's `time.Date`, whose handling of local times
//! that do not exist (a spring-forward gap) or exist twice (a fall-back repeat) decides which
//! instants a schedule fires at. [`Zone::go_date`] reproduces that rule exactly, so the
//! calendar search in `calendar.rs` can follow the Temporal server step by step.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::SpecError;

/// A loaded time zone plus the civil-time helpers the calendar search needs.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    tz: TimeZone,
}

/// The local (wall-clock) fields of an instant in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    /// 0 = Sunday, as in Go's `time.Weekday`.
    pub weekday: i64,
}

impl Zone {
    /// Loads a zone as Temporal's `SpecBuilder.loadTimezone` does: `timezone_data` (a TZif
    /// file) wins when present; otherwise `timezone_name` is an IANA name, with "" and "UTC"
    /// meaning UTC and "Local" the server's own zone, as in Go's `time.LoadLocation`.
    pub(crate) fn load(name: &str, data: &[u8]) -> Result<Zone, SpecError> {
        if !data.is_empty() {
            let tz = TimeZone::tzif(name, data).map_err(|e| SpecError::TimeZoneData {
                message: e.to_string(),
            })?;
            return Ok(Zone { tz });
        }
        let tz = match name {
            "" | "UTC" => TimeZone::UTC,
            "Local" => TimeZone::system(),
            _ => {
                // Go refuses these before touching the file system.
                if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
                    return Err(SpecError::UnknownTimeZone {
                        name: name.to_owned(),
                    });
                }
                let tz = TimeZone::get(name).map_err(|_| SpecError::UnknownTimeZone {
                    name: name.to_owned(),
                })?;
                // Go opens a file by that name, which is case-sensitive; jiff's database
                // lookup is not, so refuse any spelling other than the database's own.
                if tz.iana_name() != Some(name) {
                    return Err(SpecError::UnknownTimeZone {
                        name: name.to_owned(),
                    });
                }
                tz
            }
        };
        Ok(Zone { tz })
    }

    #[cfg(test)]
    pub(crate) fn named(name: &str) -> Zone {
        Zone::load(name, &[]).expect("test zone exists")
    }

    /// UTC offset in seconds at a unix instant (clamped to the range jiff can represent).
    fn offset_at(&self, unix: i64) -> i64 {
        let clamped = unix.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        let ts = Timestamp::from_second(clamped).expect("clamped into jiff's range");
        i64::from(self.tz.to_offset(ts).seconds())
    }

    /// Go's `time.Date(y, mo, d, h, m, s, 0, loc).Unix()`: fields out of range carry over,
    /// and a local time in a gap or a repeat is resolved the way Go resolves it: take the
    /// offset in force at the wall time read as UTC, and if the instant that gives lies in
    /// another zone period, use that period's offset instead. (For zones west of UTC a
    /// repeated time resolves to its first occurrence, for zones east of UTC to its second.)
    pub(crate) fn go_date(&self, y: i64, mo: i64, d: i64, h: i64, m: i64, s: i64) -> i64 {
        let wall = civil_to_unix(y, mo, d, h, m, s);
        let guess = wall.saturating_sub(self.offset_at(wall));
        wall.saturating_sub(self.offset_at(guess))
    }

    /// The local fields of a unix instant.
    pub(crate) fn civil(&self, unix: i64) -> Civil {
        let local = unix.saturating_add(self.offset_at(unix));
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7),
        }
    }
}

/// Seconds since the unix epoch of a wall time read as UTC; out-of-range fields carry.
pub(crate) fn civil_to_unix(y: i64, mo: i64, d: i64, h: i64, m: i64, s: i64) -> i64 {
    let y = y + (mo - 1).div_euclid(12);
    let mo = (mo - 1).rem_euclid(12) + 1;
    let days = days_from_civil(y, mo, 1) + d - 1;
    days * 86_400 + h * 3600 + m * 60 + s
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub(crate) fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in month `m` (1-12) of year `y`; like Temporal's helper it answers 30 for 13.
pub(crate) fn days_in_month(m: i64, y: i64) -> i64 {
    if m == 2 {
        return if is_leap_year(y) { 29 } else { 28 };
    }
    // Bit m is set for the 31-day months.
    const LONG_MONTHS: i64 = 0b1010110101010;
    30 + ((LONG_MONTHS >> m.clamp(0, 62)) & 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(s: &str) -> i64 {
        s.parse::<Timestamp>().expect("test timestamp").as_second()
    }

    #[test]
    fn civil_round_trips_and_carries() {
        assert_eq!(civil_to_unix(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(
            civil_to_unix(2024, 2, 29, 12, 0, 0),
            unix("2024-02-29T12:00:00Z")
        );
        // hour 24 and day 32 carry like Go's time.Date
        assert_eq!(
            civil_to_unix(2024, 12, 31, 24, 0, 0),
            unix("2025-01-01T00:00:00Z")
        );
        assert_eq!(
            civil_to_unix(2025, 1, 32, 0, 0, 0),
            unix("2025-02-01T00:00:00Z")
        );
        assert_eq!(
            civil_to_unix(2025, 13, 1, 0, 0, 0),
            unix("2026-01-01T00:00:00Z")
        );
        let c = Zone::named("UTC").civil(unix("2024-02-29T23:59:58Z"));
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2024, 2, 29, 23, 59, 58)
        );
        assert_eq!(c.weekday, 4); // a Thursday
    }

    #[test]
    fn go_date_gap_and_repeat_new_york() {
        let ny = Zone::named("America/New_York");
        // 02:30 does not exist on 2025-03-09; Go answers 01:30 EST.
        assert_eq!(
            ny.go_date(2025, 3, 9, 2, 30, 0),
            unix("2025-03-09T06:30:00Z")
        );
        // 01:30 exists twice on 2025-11-02; Go picks the first (EDT).
        assert_eq!(
            ny.go_date(2025, 11, 2, 1, 30, 0),
            unix("2025-11-02T05:30:00Z")
        );
    }

    #[test]
    fn go_date_gap_and_repeat_berlin() {
        let berlin = Zone::named("Europe/Berlin");
        // 02:30 does not exist on 2025-03-30; Go answers 03:30 CEST.
        assert_eq!(
            berlin.go_date(2025, 3, 30, 2, 30, 0),
            unix("2025-03-30T01:30:00Z")
        );
        // 02:30 exists twice on 2025-10-26; Go picks the second (CET).
        assert_eq!(
            berlin.go_date(2025, 10, 26, 2, 30, 0),
            unix("2025-10-26T01:30:00Z")
        );
    }

    #[test]
    fn zone_names_follow_go() {
        assert!(Zone::load("", &[]).is_ok());
        assert!(Zone::load("UTC", &[]).is_ok());
        assert!(Zone::load("Europe/Berlin", &[]).is_ok());
        // links (backward names) are zone files too
        assert!(Zone::load("US/Eastern", &[]).is_ok());
        assert!(Zone::load("Asia/Calcutta", &[]).is_ok());
        assert!(Zone::load("Local", &[]).is_ok());
        for bad in [
            "Mars/Olympus",
            "europe/berlin",
            "../etc/passwd",
            "/etc/localtime",
        ] {
            let err = Zone::load(bad, &[]).expect_err(bad);
            assert!(err.to_string().starts_with("timezone_name: "), "{err}");
        }
        let err = Zone::load("X", b"not a tzif file").expect_err("bad data");
        assert!(err.to_string().starts_with("timezone_data: "), "{err}");
    }

    #[test]
    fn month_lengths() {
        let lens: Vec<i64> = (1..=12).map(|m| days_in_month(m, 2025)).collect();
        assert_eq!(lens, [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
        assert_eq!(days_in_month(2, 2024), 29);
        assert_eq!(days_in_month(2, 2100), 28);
        assert_eq!(days_in_month(2, 2000), 29);
    }
}
