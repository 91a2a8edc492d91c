//! Go duration strings, as Temporal parses the `@every <interval>[/<phase>]` cron form.
//!
//! Temporal's `timestamp.ParseDuration` first rewrites every `<number>d` into hours
//! (`fmt.Sprintf("%fh", 24*days)`) and then calls Go's `time.ParseDuration`, which takes a
//! signed sequence of decimal numbers with units ns, us, µs, ms, s, m, h. Both steps are
//! reproduced here, including their overflow rules, so the same strings are accepted.

const NS_PER_UNIT: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration with Temporal's rules, returning nanoseconds (Go's `time.Duration`).
/// The error text is Go's.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    go_parse_duration(&expand_days(s))
}

/// Replaces each match of `(\d+(\.\d*)?|(\.\d+))d` by the same number of days in hours.
fn expand_days(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let Some(end) = day_number_end(b, i) else {
            i += 1;
            continue;
        };
        out.push_str(&s[copied..i]);
        match s[i..end].parse::<f64>() {
            Ok(days) if days.is_finite() => out.push_str(&format!("{:.6}h", 24.0 * days)),
            // Go's ParseFloat failed: the text stays, and time.ParseDuration rejects "d".
            _ => out.push_str(&s[i..=end]),
        }
        copied = end + 1;
        i = end + 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// If a `<number>d` match starts at `i`, the index of its `d`. Greedy matching is exact
/// here: backing off digits can never be followed by `d`.
fn day_number_end(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        j = digits(j);
        if b.get(j) == Some(&b'.') {
            j = digits(j + 1);
        }
    } else if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j = digits(j + 1);
    } else {
        return None;
    }
    (b.get(j) == Some(&b'd')).then_some(j)
}

/// Go's `time.ParseDuration`.
fn go_parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{orig}\"");
    const LIMIT: u64 = 1 << 63;
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // integer part
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        // fraction
        let (mut f, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        if s.starts_with('.') {
            s = &s[1..];
            frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        // unit
        let unit_len = s
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration \"{orig}\""));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit = NS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit_name)
            .map(|(_, ns)| *ns)
            .ok_or_else(|| format!("time: unknown unit \"{unit_name}\" in duration \"{orig}\""))?;
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go converts through float64 the same way (exact to the nanosecond for hours).
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = match total.checked_add(v) {
            Some(t) if t <= LIMIT => t,
            _ => return Err(invalid()),
        };
    }
    if neg {
        // total <= 2^63 here, so the negation fits.
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    const S: i64 = 1_000_000_000;

    #[test]
    fn go_units_and_fractions() {
        assert_eq!(parse_duration("90s"), Ok(90 * S));
        assert_eq!(parse_duration("1h30m"), Ok(5400 * S));
        assert_eq!(parse_duration("1.5h"), Ok(5400 * S));
        assert_eq!(parse_duration(".5s"), Ok(S / 2));
        assert_eq!(parse_duration("1.s"), Ok(S));
        assert_eq!(parse_duration("300ms"), Ok(S * 3 / 10));
        assert_eq!(parse_duration("2us"), Ok(2_000));
        assert_eq!(parse_duration("2µs"), Ok(2_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-5m"), Ok(-300 * S));
        assert_eq!(parse_duration("+5m"), Ok(300 * S));
    }

    #[test]
    fn days_become_hours() {
        assert_eq!(parse_duration("1d"), Ok(86_400 * S));
        assert_eq!(parse_duration("1.5d"), Ok(129_600 * S));
        assert_eq!(parse_duration("2d12h"), Ok(216_000 * S));
        assert_eq!(parse_duration(".5d"), Ok(43_200 * S));
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            parse_duration("5x"),
            Err("time: unknown unit \"x\" in duration \"5x\"".into())
        );
        assert_eq!(
            parse_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            parse_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(
            parse_duration("s"),
            Err("time: invalid duration \"s\"".into())
        );
        assert_eq!(
            parse_duration(".s"),
            Err("time: invalid duration \".s\"".into())
        );
        assert!(parse_duration(" 5s").is_err());
        assert!(parse_duration("5s ").is_err());
        assert!(parse_duration("2dd").is_err());
        assert!(parse_duration("9999999999999999999h").is_err());
        assert!(parse_duration("3000000h").is_err()); // over 292 years
        assert!(parse_duration("2562047h2562047h").is_err());
        assert!(parse_duration("-2562047h47m16.854775808s").is_ok()); // i64::MIN
    }
}
