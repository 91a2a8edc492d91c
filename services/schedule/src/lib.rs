//! The schedule spec engine: Temporal's `ScheduleSpec` semantics, with no I/O.
//!
//! - [`canonicalize`] validates a spec and returns the form the server stores (cron strings
//!   and string calendars compiled to structured calendars and intervals); [`clean_ranges`]
//!   is the extra normalization Temporal applies to specs it returns (DescribeSchedule).
//! - [`CompiledSpec::compile`] also loads the time zone; [`CompiledSpec::next_time`] gives
//!   the next nominal and jittered time after an instant, [`CompiledSpec::matching_times`]
//!   and [`CompiledSpec::times_after`] iterate.
//!
//! - [`scheduler`] is the schedule's state machine (what Temporal's scheduler workflow does
//!   with those times: overlap policies, catch-up window, backfills, pause), driven by the
//!   history service.
//!
//! Results follow the Temporal server (service/worker/scheduler spec.go, calendar.go),
//! including its daylight-saving behaviour and its jitter bit for bit; see docs/schedules.md.
//! Errors name the spec field they are about and map to INVALID_ARGUMENT.
//!
//! The only I/O is the time zone database, read (and cached by `jiff`) the first time a
//! zone is named: the system's zoneinfo, else the copy built into the binary.
//!
//! ```
//! use temper_schedule::{CompiledSpec, ScheduleSpec, Timestamp, jitter_seed};
//!
//! let spec = ScheduleSpec {
//!     cron_string: vec!["CRON_TZ=Europe/Berlin 30 2 * * * # nightly".into()],
//!     ..Default::default()
//! };
//! let compiled = CompiledSpec::compile(&spec)?.with_jitter_seed(jitter_seed("ns-id", "nightly"));
//! // Stored form: one structured calendar, the zone moved to timezone_name.
//! assert_eq!(compiled.canonical_spec().timezone_name, "Europe/Berlin");
//! assert!(compiled.canonical_spec().cron_string.is_empty());
//! // 2025-03-30 has no 02:30 in Berlin, so the next time is on the 31st (CEST, UTC+2).
//! let after: Timestamp = "2025-03-29T12:00:00Z".parse()?;
//! let next = compiled.next_time(after)?.expect("a next time");
//! assert_eq!(next.nominal.to_string(), "2025-03-31T00:30:00Z");
//! assert_eq!(next.actual, next.nominal); // no jitter in this spec
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod calendar;
mod canonical;
mod cron;
mod duration;
mod error;
mod jitter;
mod range;
pub mod scheduler;
mod spec;
mod zone;

#[cfg(test)]
mod tests;

pub use canonical::{canonicalize, clean_ranges};
pub use error::{SearchLimitExceeded, SpecError};
pub use jiff::Timestamp;
pub use jitter::jitter_seed;
pub use spec::{CompiledSpec, NextTime, SearchLimits, Times};
pub use temporalio_protos::temporal::api::schedule::v1::ScheduleSpec;

/// The most times ListScheduleMatchingTimes returns (Temporal's `maxListMatchingTimesCount`).
pub const MAX_LIST_MATCHING_TIMES: usize = 1000;

/// The instant of a protobuf Timestamp (nanos outside 0..1e9 carry into seconds, as Go's
/// `AsTime` does), saturating at the range a [`Timestamp`] holds (years -9999 to 9999).
pub fn timestamp_from_proto(ts: &prost_types::Timestamp) -> Timestamp {
    timestamp_from_nanos(i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos))
}

/// The protobuf Timestamp of an instant.
pub fn timestamp_to_proto(ts: Timestamp) -> prost_types::Timestamp {
    let nanos = ts.as_nanosecond();
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000) as i64,
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

pub(crate) fn timestamp_from_nanos(nanos: i128) -> Timestamp {
    let clamped = nanos.clamp(
        Timestamp::MIN.as_nanosecond(),
        Timestamp::MAX.as_nanosecond(),
    );
    Timestamp::from_nanosecond(clamped).expect("clamped into the Timestamp range")
}
