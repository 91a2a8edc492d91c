//! Typing a literal for the attribute it is compared with, as Temporal's converter does.
//!
//! A literal is first read as a string, an integer or a float (an integer too large for 64 bits
//! becomes a float). Then, by attribute:
//! - `ExecutionStatus`: a status name (`Running`, `WORKFLOW_EXECUTION_STATUS_RUNNING`) or number;
//! - `ExecutionDuration`: integer nanoseconds, or a string holding nanoseconds, a Go duration
//!   (`300ms`, `-1.5h`, `2h45m`, with `d` for 24 hours) or `hh:mm:ss`;
//! - Datetime: an RFC 3339 string or integer nanoseconds since the Unix epoch;
//! - Int and Double: a number; Bool: `true` or `false`; Keyword, KeywordList, Text: a string.

use chrono::{DateTime, Utc};

use crate::ast::{Attribute, Value};
use crate::attributes::{ValueType, names};
use crate::error::QueryError;
use crate::status::ExecutionStatus;
use crate::syntax::Lit;

/// A literal before it is typed.
enum Raw {
    Str(String),
    Int(i64),
    Float(f64),
}

impl Raw {
    /// The value and its Go type, as Temporal prints them (`"foo" (type: string)`).
    fn describe(&self) -> String {
        match self {
            Raw::Str(s) => format!("{s:?} (type: string)"),
            Raw::Int(i) => format!("{i} (type: int64)"),
            Raw::Float(f) => format!("{f} (type: float64)"),
        }
    }

    fn go_type(&self) -> &'static str {
        match self {
            Raw::Str(_) => "string",
            Raw::Int(_) => "int64",
            Raw::Float(_) => "float64",
        }
    }
}

pub(crate) fn typed_value(lit: &Lit, attr: &Attribute) -> Result<Value, QueryError> {
    let raw = match lit {
        Lit::Null => {
            return Err(QueryError::invalid(
                "unexpected value type NULL (use IS NULL or IS NOT NULL)",
            ));
        }
        Lit::Bool(b) => return bool_value(*b, attr),
        Lit::Str(s) => Raw::Str(s.clone()),
        Lit::Num(n) => parse_number(n)?,
    };
    match attr.name.as_str() {
        names::EXECUTION_STATUS => status_value(raw),
        names::EXECUTION_DURATION => duration_value(raw),
        _ => by_type(raw, attr),
    }
}

fn parse_number(n: &str) -> Result<Raw, QueryError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Raw::Int(i));
    }
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Raw::Float(f)),
        _ => Err(QueryError::invalid(format!("unable to parse value {n:?}"))),
    }
}

fn bool_value(b: bool, attr: &Attribute) -> Result<Value, QueryError> {
    match attr.name.as_str() {
        names::EXECUTION_STATUS | names::EXECUTION_DURATION => Err(QueryError::invalid(format!(
            "unexpected value type bool for search attribute {}",
            attr.name
        ))),
        _ if attr.value_type == ValueType::Bool => Ok(Value::Bool(b)),
        _ => Err(QueryError::invalid(format!(
            "invalid value type for search attribute {} of type {}: {b} (type: bool)",
            attr.alias, attr.value_type
        ))),
    }
}

fn by_type(raw: Raw, attr: &Attribute) -> Result<Value, QueryError> {
    let wrong_type = |raw: &Raw| {
        QueryError::invalid(format!(
            "invalid value type for search attribute {} of type {}: {}",
            attr.alias,
            attr.value_type,
            raw.describe()
        ))
    };
    match (attr.value_type, raw) {
        (ValueType::Int | ValueType::Double, Raw::Int(i)) => Ok(Value::Int(i)),
        (ValueType::Int | ValueType::Double, Raw::Float(f)) => Ok(Value::Double(f)),
        (ValueType::Datetime, Raw::Int(nanos)) => {
            Ok(Value::Datetime(DateTime::from_timestamp_nanos(nanos)))
        }
        (ValueType::Datetime, Raw::Str(s)) => parse_datetime(&s)
            .map(Value::Datetime)
            .ok_or_else(|| QueryError::invalid(format!("unable to parse datetime '{s}'"))),
        (ValueType::Keyword | ValueType::KeywordList | ValueType::Text, Raw::Str(s)) => {
            Ok(Value::String(s))
        }
        (_, raw) => Err(wrong_type(&raw)),
    }
}

fn status_value(raw: Raw) -> Result<Value, QueryError> {
    let status = names::EXECUTION_STATUS;
    match raw {
        Raw::Int(code) => ExecutionStatus::from_code(code)
            .map(Value::Status)
            .ok_or_else(|| QueryError::invalid(format!("invalid {status} value {code}"))),
        Raw::Str(name) => ExecutionStatus::from_name(&name)
            .map(Value::Status)
            .ok_or_else(|| QueryError::invalid(format!("invalid {status} value '{name}'"))),
        other => Err(QueryError::invalid(format!(
            "unexpected value type {} for search attribute {status}",
            other.go_type()
        ))),
    }
}

fn duration_value(raw: Raw) -> Result<Value, QueryError> {
    let duration = names::EXECUTION_DURATION;
    match raw {
        Raw::Int(nanos) => Ok(Value::Int(nanos)),
        Raw::Str(s) => parse_duration_nanos(&s).map(Value::Int).ok_or_else(|| {
            QueryError::invalid(format!(
                "invalid duration value for search attribute {duration}: {s}"
            ))
        }),
        other => Err(QueryError::invalid(format!(
            "unexpected value type {} for search attribute {duration}",
            other.go_type()
        ))),
    }
}

/// RFC 3339 with `T` between date and time, as Go's `time.RFC3339Nano` layout requires.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An execution duration in nanoseconds: an integer, a Go duration (with `d` for 24 hours), or
/// `hh:mm:ss`.
pub fn parse_duration_nanos(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    go_duration(s).or_else(|| hhmmss(s))
}

/// Go's `time.ParseDuration` grammar, `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, plus Temporal's `d`.
fn go_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            // More digits than fit is an overflow either way.
            int_part.parse::<i128>().ok().filter(|_| int_len <= 30)?
        };
        total = total.checked_add(whole.checked_mul(unit)?)?;
        if !frac_part.is_empty() {
            // 18 digits of fraction are finer than a nanosecond of a day, and keep the product
            // below i128's range.
            let digits = &frac_part[..frac_part.len().min(18)];
            let frac: i128 = digits.parse().ok()?;
            let scale = 10i128.checked_pow(u32::try_from(digits.len()).ok()?)?;
            total = total.checked_add(frac.checked_mul(unit)? / scale)?;
        }
        if total > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let signed = if negative { -total } else { total };
    i64::try_from(signed).ok()
}

/// `hh:mm:ss` with hours >= 0 and minutes and seconds in 0..=59.
fn hhmmss(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, ':');
    let mut next = || -> Option<i64> {
        let p = parts.next()?;
        let digits = p.strip_prefix('+').unwrap_or(p);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        p.parse().ok()
    };
    let (h, m, sec) = (next()?, next()?, next()?);
    if h < 0 || !(0..=59).contains(&m) || !(0..=59).contains(&sec) {
        return None;
    }
    h.checked_mul(3600)?
        .checked_add(m * 60 + sec)?
        .checked_mul(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;
    const S: i64 = 1_000_000_000;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_nanos("1000"), Some(1000));
        assert_eq!(parse_duration_nanos("-5"), Some(-5));
        assert_eq!(parse_duration_nanos("300ms"), Some(300_000_000));
        assert_eq!(parse_duration_nanos("-1.5h"), Some(-(H + H / 2)));
        assert_eq!(parse_duration_nanos("2h45m"), Some(2 * H + 45 * 60 * S));
        assert_eq!(parse_duration_nanos("1d"), Some(24 * H));
        assert_eq!(parse_duration_nanos("1.5d"), Some(36 * H));
        assert_eq!(parse_duration_nanos("1d2h"), Some(26 * H));
        assert_eq!(parse_duration_nanos("1us"), Some(1000));
        assert_eq!(parse_duration_nanos("1µs"), Some(1000));
        assert_eq!(parse_duration_nanos(".5s"), Some(S / 2));
        assert_eq!(parse_duration_nanos("0"), Some(0));
        assert_eq!(parse_duration_nanos("1.h"), Some(H));
        assert_eq!(
            parse_duration_nanos("1.500000000000000000000000000000000001d"),
            Some(36 * H)
        );
        assert_eq!(parse_duration_nanos("01:02:03"), Some(3723 * S));
        assert_eq!(parse_duration_nanos("100:00:00"), Some(100 * H));
        for bad in [
            "",
            "1t",
            "h",
            "1",
            "-",
            "1:60:00",
            "1:00:60",
            "-1:00:00",
            "1:2",
            "a:b:c",
            "1h 2m",
            "9999999999999999999h",
            "1..5s",
        ] {
            if bad == "1" {
                continue; // a bare integer is nanoseconds, tested above
            }
            assert_eq!(parse_duration_nanos(bad), None, "{bad}");
        }
        assert_eq!(parse_duration_nanos("2562047h"), Some(2_562_047 * H));
        assert_eq!(parse_duration_nanos("2562048h"), None);
    }

    #[test]
    fn datetimes() {
        let t = parse_datetime("2024-03-01T10:20:30.123456789+02:00").expect("valid");
        assert_eq!(t.to_rfc3339(), "2024-03-01T08:20:30.123456789+00:00");
        assert!(parse_datetime("2024-03-01T10:20:30Z").is_some());
        assert!(parse_datetime("2025-01-01 12:34:56Z").is_none());
        assert!(parse_datetime("2025-01-01").is_none());
        assert!(parse_datetime("2025-01-01T12:34:56").is_none());
        assert!(parse_datetime("").is_none());
        assert!(parse_datetime("2025-01-01Té").is_none());
    }
}
