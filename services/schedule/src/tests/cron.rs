//! Unit tests of cron string parsing (the reference server's view of these is in
//! `canonical.rs` and `string_times.rs`).

use temporalio_protos::temporal::api::schedule::v1::Range;

use super::{Cron, parse_cron};

fn calendar(
    s: &str,
) -> (
    temporalio_protos::temporal::api::schedule::v1::StructuredCalendarSpec,
    String,
) {
    match parse_cron(s).expect(s) {
        Cron::Calendar { calendar, tz } => (calendar, tz),
        Cron::Interval(iv) => panic!("{s} gave an interval {iv:?}"),
    }
}

fn one(v: i32) -> Vec<Range> {
    vec![Range {
        start: v,
        end: 0,
        step: 0,
    }]
}

#[test]
fn field_positions() {
    let (c, _) = calendar("1 2 3 4 5");
    assert_eq!(
        (c.minute, c.hour, c.day_of_month, c.month, c.day_of_week),
        (one(1), one(2), one(3), one(4), one(5))
    );
    assert_eq!((c.second, c.year), (one(0), vec![]));
    let (c, _) = calendar("1 2 3 4 5 2030");
    assert_eq!((c.minute, c.year), (one(1), one(2030)));
    let (c, _) = calendar("9 1 2 3 4 5 2030");
    assert_eq!(
        (c.second, c.minute, c.day_of_week, c.year),
        (one(9), one(1), one(5), one(2030))
    );
}

#[test]
fn prefixes_comments_and_whitespace() {
    let (c, tz) = calendar("  CRON_TZ=Europe/Paris   0\t12  * * *   # at noon ");
    assert_eq!(
        (tz.as_str(), c.comment.as_str(), c.hour),
        ("Europe/Paris", "at noon", one(12))
    );
    let (_, tz) = calendar("TZ=Asia/Tokyo 0 12 * * *");
    assert_eq!(tz, "Asia/Tokyo");
    let (_, tz) = calendar("0 12 * * *");
    assert_eq!(tz, "");
}

#[test]
fn every() {
    let Ok(Cron::Interval(iv)) = parse_cron("TZ=Europe/Paris @every 90s # ignored zone") else {
        panic!("not an interval");
    };
    assert_eq!((iv.interval.map(|d| d.seconds), iv.phase), (Some(90), None));
    let Ok(Cron::Interval(iv)) = parse_cron("@every 14h/3h") else {
        panic!("not an interval")
    };
    assert_eq!(
        (iv.interval.map(|d| d.seconds), iv.phase.map(|d| d.seconds)),
        (Some(50_400), Some(10_800))
    );
    let Ok(Cron::Interval(iv)) = parse_cron("@every 1500ms") else {
        panic!("not an interval")
    };
    assert_eq!(
        iv.interval.map(|d| (d.seconds, d.nanos)),
        Some((1, 500_000_000))
    );
    assert!(parse_cron("@every 90").is_err());
    assert!(parse_cron("@every 1h/x").is_err());
}

#[test]
fn shorthands_expand_like_temporal() {
    assert_eq!(calendar("@weekly").0, calendar("0 0 * * 0").0);
    assert_eq!(calendar("@yearly").0, calendar("0 0 1 1 *").0);
    assert_eq!(calendar("@annually").0, calendar("0 0 1 1 *").0);
    assert_eq!(calendar("@monthly").0, calendar("0 0 1 * *").0);
    assert_eq!(calendar("@midnight").0, calendar("0 0 * * *").0);
    assert_eq!(calendar("@hourly").0, calendar("0 * * * *").0);
    assert!(parse_cron("@reboot").is_err());
}
