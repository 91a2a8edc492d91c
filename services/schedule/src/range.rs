//! Calendar field strings ("1-5,7", "*/15", "mon-fri", "jan") parsed into `Range`s.
//!
//! Follows Temporal's `makeRange`/`parseValue`: comma-separated parts, each `*`, `x`,
//! `x-z`, `x/y` (x to the field's maximum by y) or `x-z/y`; month names from three letters
//! and day-of-week names from two; day of week 7 means Sunday and is folded into 0-6; the
//! year `*` is the empty list (all years). Ranges are stored as small as possible (end 0 for
//! a single value, step 0 for 1), as Temporal stores them.

use temporalio_protos::temporal::api::schedule::v1::Range;

/// Which names a field accepts besides decimal integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Int,
    Year,
    Month,
    DayOfWeek,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const DAYS_OF_WEEK: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// One calendar field: its name in messages, its default string and its value range.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub default: &'static str,
    pub min: i64,
    pub max: i64,
    pub mode: Mode,
}

/// Parses one field string into ranges; the error text names the field, as Temporal's does.
pub(crate) fn make_range(s: &str, f: &Field) -> Result<Vec<Range>, String> {
    let mut s = s.trim();
    if s.is_empty() {
        s = f.default;
    }
    if s == "*" && f.mode == Mode::Year {
        return Ok(Vec::new());
    }
    let name = f.name;
    let mut ranges = Vec::new();
    for whole in s.split(',') {
        let mut part = whole;
        let mut step = 1i64;
        let mut has_step = false;
        match part.matches('/').count() {
            0 => {}
            1 => {
                let (value, step_str) = part.split_once('/').expect("one slash");
                if step_str.is_empty() {
                    return Err(format!("{name} missing step value"));
                }
                step = step_str
                    .parse::<i64>()
                    .map_err(|_| format!("{name} has invalid Step \"{step_str}\""))?;
                if step < 1 {
                    return Err(format!("{name} has invalid Step"));
                }
                part = value;
                has_step = true;
            }
            _ => return Err(format!("{name} has too many slashes")),
        }
        let (mut start, mut end) = (f.min, f.max);
        if part != "*" {
            if part.contains('-') {
                let Some((a, b)) = part.split_once('-').filter(|(_, b)| !b.contains('-')) else {
                    return Err(format!("{name} has too many dashes"));
                };
                start = parse_value(a, f.min, f.max, f.mode)
                    .map_err(|()| format!("{name} Start is not in range [{}-{}]", f.min, f.max))?;
                end = parse_value(b, start, f.max, f.mode).map_err(|()| {
                    format!(
                        "{name} End is before Start or not in range [{}-{}]",
                        f.min, f.max
                    )
                })?;
            } else {
                start = parse_value(part, f.min, f.max, f.mode)
                    .map_err(|()| format!("{name} is not in range [{}-{}]", f.min, f.max))?;
                if !has_step {
                    // "x/y" runs from x to the maximum; a bare "x" is just x.
                    end = start;
                }
            }
        }
        // Sunday may be written 7: fold it into 0, adding a separate 0 where the range's
        // steps land on 7 and cannot simply be extended down to 0. (Like Temporal, "1-7"
        // becomes 1-6 without Sunday.)
        if f.mode == Mode::DayOfWeek && end == 7 {
            if (7 - start) % step == 0 && (step > 1 || (step == 1 && start > 1)) {
                ranges.push(Range {
                    start: 0,
                    end: 0,
                    step: 0,
                });
                if start == 7 {
                    continue;
                }
            }
            end = 6;
        }
        if start == end {
            end = 0;
        }
        if step == 1 {
            step = 0;
        }
        ranges.push(Range {
            start: to_i32(start),
            end: to_i32(end),
            step: to_i32(step),
        });
    }
    Ok(ranges)
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// One value: a decimal integer, or a month / day-of-week name prefix where allowed.
fn parse_value(s: &str, min: i64, max: i64, mode: Mode) -> Result<i64, ()> {
    let names: &[&str] = match mode {
        Mode::Month if s.len() >= 3 => &MONTHS,
        Mode::DayOfWeek if s.len() >= 2 => &DAYS_OF_WEEK,
        _ => &[],
    };
    let lower = s.to_lowercase();
    if let Some(i) = names.iter().position(|n| n.starts_with(&lower)) {
        let v = i as i64 + i64::from(mode == Mode::Month);
        return if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(())
        };
    }
    let v = s.parse::<i64>().map_err(|_| ())?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Field = Field {
        name: "Minute",
        default: "0",
        min: 0,
        max: 59,
        mode: Mode::Int,
    };
    const DOW: Field = Field {
        name: "DayOfWeek",
        default: "*",
        min: 0,
        max: 7,
        mode: Mode::DayOfWeek,
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
        min: 2000,
        max: 2100,
        mode: Mode::Year,
    };

    fn r(start: i32, end: i32, step: i32) -> Range {
        Range { start, end, step }
    }

    #[test]
    fn forms() {
        assert_eq!(make_range("", &MINUTE), Ok(vec![r(0, 0, 0)]));
        assert_eq!(make_range("*", &MINUTE), Ok(vec![r(0, 59, 0)]));
        assert_eq!(make_range("*/15", &MINUTE), Ok(vec![r(0, 59, 15)]));
        assert_eq!(make_range("3/5", &MINUTE), Ok(vec![r(3, 59, 5)]));
        assert_eq!(
            make_range(" 1-5/2,8 ", &MINUTE),
            Ok(vec![r(1, 5, 2), r(8, 0, 0)])
        );
        assert_eq!(make_range("+7", &MINUTE), Ok(vec![r(7, 0, 0)]));
    }

    #[test]
    fn names() {
        assert_eq!(make_range("mon-fri", &DOW), Ok(vec![r(1, 5, 0)]));
        assert_eq!(make_range("SAT,su", &DOW), Ok(vec![r(6, 0, 0), r(0, 0, 0)]));
        assert_eq!(
            make_range("jan,Jul,december", &MONTH),
            Ok(vec![r(1, 0, 0), r(7, 0, 0), r(12, 0, 0)])
        );
        // a name needs three letters (month) or two (day of week)
        assert!(make_range("ja", &MONTH).is_err());
        assert!(make_range("m", &DOW).is_err());
    }

    #[test]
    fn sunday_as_seven() {
        assert_eq!(make_range("7", &DOW), Ok(vec![r(0, 0, 0)]));
        assert_eq!(make_range("0-7", &DOW), Ok(vec![r(0, 6, 0)]));
        assert_eq!(make_range("1-7", &DOW), Ok(vec![r(1, 6, 0)]));
        assert_eq!(make_range("3-7", &DOW), Ok(vec![r(0, 0, 0), r(3, 6, 0)]));
        assert_eq!(make_range("3-7/3", &DOW), Ok(vec![r(3, 6, 3)]));
        assert_eq!(make_range("1-7/2", &DOW), Ok(vec![r(0, 0, 0), r(1, 6, 2)]));
        assert_eq!(make_range("*", &DOW), Ok(vec![r(0, 6, 0)]));
    }

    #[test]
    fn year_star_is_all() {
        assert_eq!(make_range("*", &YEAR), Ok(vec![]));
        assert_eq!(make_range("", &YEAR), Ok(vec![]));
        assert_eq!(make_range("*/25", &YEAR), Ok(vec![r(2000, 2100, 25)]));
        assert_eq!(
            make_range("1999", &YEAR),
            Err("Year is not in range [2000-2100]".into())
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = |s: &str, f: &Field| make_range(s, f).expect_err(s);
        assert_eq!(err("60", &MINUTE), "Minute is not in range [0-59]");
        assert_eq!(err("1/2/3", &MINUTE), "Minute has too many slashes");
        assert_eq!(err("*/0", &MINUTE), "Minute has invalid Step");
        assert_eq!(err("5/", &MINUTE), "Minute missing step value");
        assert_eq!(err("1-2-3", &MINUTE), "Minute has too many dashes");
        assert_eq!(
            err("fri-mon", &DOW),
            "DayOfWeek End is before Start or not in range [0-7]"
        );
        assert_eq!(err("x-5", &MINUTE), "Minute Start is not in range [0-59]");
        assert_eq!(err("1,,2", &MINUTE), "Minute is not in range [0-59]");
        assert!(err("*/x", &MINUTE).starts_with("Minute has invalid Step"));
    }
}
