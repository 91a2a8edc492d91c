//! Conversions between protobuf time types and std time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use temper_proto::wkt;

pub fn ts(t: SystemTime) -> wkt::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    wkt::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn from_ts(t: &wkt::Timestamp) -> SystemTime {
    if t.seconds < 0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH + Duration::new(t.seconds as u64, t.nanos.clamp(0, 999_999_999) as u32)
}

pub fn opt_from_ts(t: &Option<wkt::Timestamp>) -> Option<SystemTime> {
    t.as_ref().map(from_ts)
}

pub fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `t` in milliseconds since the epoch, rounded up: a timer stored at this time never comes
/// due before `t` (rounded down, it would fire up to a millisecond early, and a handler that
/// checks its deadline against the clock would find it not reached yet).
pub fn millis_ceil(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| {
            let ms = d.as_millis() as i64;
            if d.subsec_nanos() % 1_000_000 == 0 {
                ms
            } else {
                ms.saturating_add(1)
            }
        })
        .unwrap_or(0)
}

pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A protobuf duration; `None` for zero.
pub fn dur(d: Duration) -> Option<wkt::Duration> {
    if d.is_zero() {
        None
    } else {
        Some(wkt::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        })
    }
}

/// A protobuf duration that is present even when zero, as the Temporal server writes the
/// durations it always fills in (SDKs read some of them without checking for absence).
pub fn dur_or_zero(d: Duration) -> Option<wkt::Duration> {
    Some(dur(d).unwrap_or_default())
}

/// The timestamp the Temporal server sends for "no time" in a field it always sets: Go's
/// zero `time.Time`, 0001-01-01T00:00:00Z.
pub const GO_ZERO_TIME: wkt::Timestamp = wkt::Timestamp {
    seconds: -62_135_596_800,
    nanos: 0,
};

/// A std duration from protobuf; negative or absent is zero, and over 100 years is 100 years
/// (as the Temporal server caps every duration it is given), so that adding it to a time
/// cannot overflow.
pub fn from_dur(d: &Option<wkt::Duration>) -> Duration {
    match d {
        Some(d) if d.seconds >= MAX_DURATION_SECS => Duration::from_secs(MAX_DURATION_SECS as u64),
        Some(d) if d.seconds > 0 || (d.seconds == 0 && d.nanos > 0) => Duration::new(
            d.seconds.max(0) as u64,
            d.nanos.clamp(0, 999_999_999) as u32,
        ),
        _ => Duration::ZERO,
    }
}

/// The longest duration the Temporal server keeps: longer ones are cut to this (100 years).
pub const MAX_DURATION_SECS: i64 = 100 * 365 * 24 * 3600;

/// Checks a duration from a command as the Temporal server does: absent and zero are valid,
/// negative ones and ones whose seconds and nanos disagree in sign are not, and anything
/// over 100 years is cut to 100 years. Returns the duration to record, or the reason (the
/// server's words) it is invalid.
pub fn validate_and_cap(d: &Option<wkt::Duration>) -> Result<Option<wkt::Duration>, &'static str> {
    let Some(v) = d else { return Ok(None) };
    if (v.seconds > 0 && v.nanos < 0) || (v.seconds < 0 && v.nanos > 0) {
        return Err("duration has seconds and nanos with different signs");
    }
    if v.seconds < 0 || v.nanos < 0 {
        return Err("negative duration");
    }
    if v.seconds > MAX_DURATION_SECS || (v.seconds == MAX_DURATION_SECS && v.nanos > 0) {
        return Ok(Some(wkt::Duration {
            seconds: MAX_DURATION_SECS,
            nanos: 0,
        }));
    }
    Ok(*d)
}

/// Whether a protobuf duration is negative (invalid in requests).
pub fn is_negative(d: &Option<wkt::Duration>) -> bool {
    matches!(d, Some(d) if d.seconds < 0 || d.nanos < 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_time_rounds_up_to_the_millisecond() {
        let exact = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(millis_ceil(exact), 1_700_000_000_123);
        let later = exact + Duration::from_nanos(400_000);
        assert_eq!(
            millis(later),
            1_700_000_000_123,
            "rounded down: before the time"
        );
        assert_eq!(millis_ceil(later), 1_700_000_000_124);
        assert!(from_millis(millis_ceil(later)) >= later);
        assert_eq!(
            millis_ceil(exact + Duration::from_nanos(1)),
            1_700_000_000_124
        );
    }

    #[test]
    fn round_trips() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_ts(&ts(t)), t);
        assert_eq!(from_millis(millis(t)), t);
        assert_eq!(
            from_dur(&dur(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
        assert_eq!(dur(Duration::ZERO), None);
        assert_eq!(dur_or_zero(Duration::ZERO), Some(wkt::Duration::default()));
        assert_eq!(
            from_dur(&dur_or_zero(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert!(is_negative(&Some(wkt::Duration {
            seconds: -1,
            nanos: 0
        })));
    }

    #[test]
    fn validates_and_caps_like_temporal() {
        let d = |seconds, nanos| Some(wkt::Duration { seconds, nanos });
        assert_eq!(validate_and_cap(&None), Ok(None));
        assert_eq!(validate_and_cap(&d(0, 0)), Ok(d(0, 0)));
        assert_eq!(validate_and_cap(&d(5, 1)), Ok(d(5, 1)));
        assert_eq!(validate_and_cap(&d(-1, 0)), Err("negative duration"));
        assert_eq!(validate_and_cap(&d(0, -1)), Err("negative duration"));
        assert_eq!(
            validate_and_cap(&d(1, -1)),
            Err("duration has seconds and nanos with different signs")
        );
        assert_eq!(
            validate_and_cap(&d(i64::MAX, 0)),
            Ok(d(MAX_DURATION_SECS, 0))
        );
        assert_eq!(
            validate_and_cap(&d(MAX_DURATION_SECS, 0)),
            Ok(d(MAX_DURATION_SECS, 0))
        );
    }
}
