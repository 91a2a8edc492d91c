//! Properties over generated specs: in zones without daylight saving the calendar search
//! agrees with a second-by-second scan, and no input makes compiling or searching panic.

use temporalio_protos::temporal::api::schedule::v1::{
    CalendarSpec, IntervalSpec, Range, ScheduleSpec, StructuredCalendarSpec,
};

use crate::calendar::CompiledCalendar;
use crate::zone::Zone;
use crate::{CompiledSpec, SearchLimits, Timestamp};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One to three ranges inside `min..=max`.
fn ranges(rng: &mut Rng, min: i64, max: i64) -> Vec<Range> {
    (0..1 + rng.below(3))
        .map(|_| {
            let start = min + rng.below((max - min + 1) as u64);
            let end = if rng.below(2) == 0 {
                0
            } else {
                start + rng.below((max - start + 1) as u64)
            };
            Range {
                start: start as i32,
                end: end as i32,
                step: rng.below(4) as i32,
            }
        })
        .collect()
}

#[test]
fn calendar_search_agrees_with_a_scan_where_there_is_no_dst() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for zone_name in ["UTC", "Asia/Kolkata", "Asia/Tokyo"] {
        let zone = Zone::named(zone_name);
        for case in 0..12 {
            let dense = |rng: &mut Rng, min, max| {
                if rng.below(2) == 0 {
                    vec![Range {
                        start: min as i32,
                        end: max as i32,
                        step: 0,
                    }]
                } else {
                    ranges(rng, min, max)
                }
            };
            let cal = StructuredCalendarSpec {
                second: ranges(&mut rng, 0, 59),
                minute: ranges(&mut rng, 0, 59),
                hour: dense(&mut rng, 0, 23),
                day_of_month: dense(&mut rng, 1, 31),
                month: vec![Range {
                    start: 1,
                    end: 12,
                    step: 0,
                }],
                day_of_week: dense(&mut rng, 0, 6),
                ..Default::default()
            };
            let compiled = CompiledCalendar::new(&cal);
            let after = 1_735_689_600 + rng.below(365 * 86_400); // some time in 2025
            let window = 2 * 86_400;
            let scanned = (after + 1..=after + window).find(|&t| compiled.matches(&zone, t));
            let found = compiled.next(&zone, after);
            match scanned {
                Some(t) => assert_eq!(
                    found,
                    Some(t),
                    "{zone_name} case {case}: {cal:?} after {after}"
                ),
                None => assert!(
                    found.is_none_or(|t| t > after + window),
                    "{zone_name} case {case}"
                ),
            }
        }
    }
}

const PIECES: &[&str] = &[
    "*",
    "*/5",
    "1-5",
    "5-1",
    "mon",
    "jan-mar",
    "7",
    "0",
    "59",
    "60",
    "-",
    "/",
    ",",
    "x",
    "1-7/2",
    "2100",
    "1999",
    "*/0",
    "3/",
    "1,,2",
    "su",
    "dec",
    "31",
    "-3",
    "+4",
    "1-2-3",
    "99999999999999999999",
];

const HEADS: &[&str] = &[
    "",
    "TZ=UTC ",
    "CRON_TZ=Europe/Berlin ",
    "TZ=Bad/Zone ",
    "@every ",
    "@every 1h/",
    "@daily",
    "@hourly ",
    "TZ=",
    "# only a comment",
];

#[test]
fn generated_inputs_never_panic() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let limits = SearchLimits {
        warn_iterations: 100,
        max_iterations: 2_000,
    };
    let after: Timestamp = "2025-06-01T00:00:00Z".parse().expect("timestamp");
    let (mut compiled_count, mut searched) = (0, 0);
    for _ in 0..400 {
        let mut cron = rng.pick(HEADS).to_owned();
        for _ in 0..rng.below(9) {
            cron += rng.pick(PIECES);
            cron += if rng.below(4) == 0 { "" } else { " " };
        }
        // Mostly valid ranges, sometimes anything (negative, reversed, negative steps).
        let field = |rng: &mut Rng, min: i64, max: i64| {
            if rng.below(4) != 0 {
                return ranges(rng, min, max);
            }
            (0..rng.below(3))
                .map(|_| Range {
                    start: rng.below(200) as i32 - 50,
                    end: rng.below(200) as i32 - 50,
                    step: rng.below(10) as i32 - 2,
                })
                .collect::<Vec<_>>()
        };
        let structured = StructuredCalendarSpec {
            second: field(&mut rng, 0, 59),
            minute: field(&mut rng, 0, 59),
            hour: field(&mut rng, 0, 23),
            day_of_month: field(&mut rng, 1, 31),
            month: field(&mut rng, 1, 12),
            day_of_week: field(&mut rng, 0, 6),
            year: if rng.below(2) == 0 {
                vec![]
            } else {
                field(&mut rng, 2000, 2100)
            },
            comment: String::new(),
        };
        let day_of_week = rng.pick(PIECES);
        let zone = rng.pick(&[
            "",
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Nope",
        ]);
        let every = rng.below(100_000);
        let interval = IntervalSpec {
            interval: Some(prost_types::Duration {
                seconds: every,
                nanos: 0,
            }),
            phase: Some(prost_types::Duration {
                seconds: rng.below(every as u64 + 2) - 1,
                nanos: 0,
            }),
        };
        // Each part is present half of the time, so that some specs are valid.
        let mut coin = || rng.below(2) == 0;
        #[allow(deprecated)]
        let spec = ScheduleSpec {
            cron_string: if coin() { vec![cron] } else { vec![] },
            structured_calendar: if coin() {
                vec![structured.clone()]
            } else {
                vec![]
            },
            exclude_structured_calendar: if coin() { vec![structured] } else { vec![] },
            calendar: if coin() {
                vec![CalendarSpec {
                    day_of_week: day_of_week.into(),
                    ..Default::default()
                }]
            } else {
                vec![]
            },
            interval: if coin() { vec![interval] } else { vec![] },
            timezone_name: zone.into(),
            ..Default::default()
        };
        if let Ok(compiled) = CompiledSpec::compile(&spec) {
            compiled_count += 1;
            let compiled = compiled.with_limits(limits);
            searched += compiled
                .times_after(after)
                .take(5)
                .filter(Result::is_ok)
                .count();
        }
    }
    // The generator must reach the search, not only the validation.
    assert!(
        compiled_count > 50 && searched > 100,
        "{compiled_count} compiled, {searched} times"
    );
}
