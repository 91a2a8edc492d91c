//! [`CompiledSpec`]: a validated spec that answers "when is the next action?".
//!
//! The search is Temporal's `GetNextTime`: start from `max(after, start_time - 1s)`, take
//! the earliest time any calendar or interval gives, skip times that an exclude calendar
//! matches, stop after `end_time` or the year 2100, then add jitter that never reaches the
//! following nominal time. Intervals are anchored at the unix epoch:
//! `epoch + n * interval + phase`, both truncated to whole seconds.

use jiff::Timestamp;
use temporalio_protos::temporal::api::schedule::v1::ScheduleSpec;

use crate::calendar::{CompiledCalendar, check_exclude};
use crate::canonical::{canonicalize, duration_nanos};
use crate::cron::MAX_CALENDAR_YEAR;
use crate::error::{SearchLimitExceeded, SpecError};
use crate::jitter::jitter_ms;
use crate::timestamp_from_nanos;
use crate::zone::{Zone, civil_to_unix};

const NANOS: i128 = 1_000_000_000;

/// How long one search for the next time may run before it gives up. Each step is one
/// candidate time that an exclude calendar removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// From this many steps on, [`NextTime::slow_search`] is set (Temporal: 86,400).
    pub warn_iterations: u64,
    /// At this many steps the search fails with [`SearchLimitExceeded`]. Temporal's bound
    /// is off by default; here it is on, so that no spec can keep a caller busy for long.
    pub max_iterations: u64,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            warn_iterations: 24 * 60 * 60,
            max_iterations: 1_000_000,
        }
    }
}

/// One matching time of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextTime {
    /// The time the spec matches (whole seconds), before jitter.
    pub nominal: Timestamp,
    /// When the action should happen: `nominal` plus jitter.
    pub actual: Timestamp,
    /// The search skipped more than [`SearchLimits::warn_iterations`] excluded times; worth
    /// a log line and a metric, not an error.
    pub slow_search: bool,
}

/// A canonicalized, validated spec compiled for searching.
#[derive(Debug, Clone)]
pub struct CompiledSpec {
    canonical: ScheduleSpec,
    zone: Zone,
    calendars: Vec<CompiledCalendar>,
    excludes: Vec<CompiledCalendar>,
    /// (interval, phase) in whole seconds.
    intervals: Vec<(i64, i64)>,
    /// `start_time - 1s` (the unix epoch less a second when unset), in nanoseconds.
    search_floor: i128,
    end: Option<i128>,
    jitter_nanos: i64,
    jitter_seed: String,
    limits: SearchLimits,
}

impl CompiledSpec {
    /// Canonicalizes `spec` ([`canonicalize`]), loads its time zone and compiles it. The
    /// jitter seed is empty until [`CompiledSpec::with_jitter_seed`] sets it.
    pub fn compile(spec: &ScheduleSpec) -> Result<CompiledSpec, SpecError> {
        let canonical = canonicalize(spec)?;
        let zone = Zone::load(&canonical.timezone_name, &canonical.timezone_data)?;
        let calendars = canonical
            .structured_calendar
            .iter()
            .map(CompiledCalendar::new)
            .collect();
        let mut excludes = Vec::new();
        for (i, cal) in canonical.exclude_structured_calendar.iter().enumerate() {
            check_exclude(cal)
                .map_err(|m| SpecError::invalid(format!("exclude_structured_calendar[{i}]"), m))?;
            excludes.push(CompiledCalendar::new(cal));
        }
        let intervals = canonical
            .interval
            .iter()
            .map(|iv| {
                let interval = duration_nanos(iv.interval.as_ref()) / 1_000_000_000;
                let phase = duration_nanos(iv.phase.as_ref()) / 1_000_000_000;
                (interval.max(1), phase.max(0))
            })
            .collect();
        let start = canonical.start_time.as_ref().map_or(0, proto_nanos);
        Ok(CompiledSpec {
            search_floor: start - NANOS,
            end: canonical.end_time.as_ref().map(proto_nanos),
            jitter_nanos: duration_nanos(canonical.jitter.as_ref()),
            zone,
            calendars,
            excludes,
            intervals,
            canonical,
            jitter_seed: String::new(),
            limits: SearchLimits::default(),
        })
    }

    /// Sets the jitter seed, normally [`crate::jitter_seed`]`(namespace_id, schedule_id)`.
    pub fn with_jitter_seed(mut self, seed: impl Into<String>) -> CompiledSpec {
        self.jitter_seed = seed.into();
        self
    }

    /// Replaces the default [`SearchLimits`].
    pub fn with_limits(mut self, limits: SearchLimits) -> CompiledSpec {
        self.limits = limits;
        self
    }

    /// The canonical form of the spec (what the server stores).
    pub fn canonical_spec(&self) -> &ScheduleSpec {
        &self.canonical
    }

    /// The first matching time strictly after `after`, or None if the spec has no more.
    pub fn next_time(&self, after: Timestamp) -> Result<Option<NextTime>, SearchLimitExceeded> {
        let mut after = after.as_nanosecond().max(self.search_floor);
        let mut slow_search = false;
        let mut iterations = 0u64;
        let nominal = loop {
            if iterations >= self.limits.max_iterations {
                return Err(SearchLimitExceeded { iterations });
            }
            if iterations >= self.limits.warn_iterations {
                slow_search = true;
            }
            let Some(nominal) = self.raw_next(after.div_euclid(NANOS) as i64) else {
                return Ok(None);
            };
            if self.past_end(nominal) {
                return Ok(None);
            }
            if !self
                .excludes
                .iter()
                .any(|ex| ex.matches(&self.zone, nominal))
            {
                break nominal;
            }
            after = i128::from(nominal) * NANOS;
            iterations += 1;
        };
        // Jitter stays below the following nominal time (exclusions and end not applied).
        let mut max_jitter = self.jitter_nanos;
        if let Some(following) = self.raw_next(nominal) {
            max_jitter = max_jitter.min((following - nominal).saturating_mul(1_000_000_000));
        }
        let jitter = jitter_ms(&self.jitter_seed, nominal, max_jitter / 1_000_000);
        let nominal_ns = i128::from(nominal) * NANOS;
        Ok(Some(NextTime {
            nominal: timestamp_from_nanos(nominal_ns),
            actual: timestamp_from_nanos(nominal_ns + i128::from(jitter) * 1_000_000),
            slow_search,
        }))
    }

    /// Matching times after `after`, each searched from the previous one's actual time (as
    /// Temporal computes a schedule's future action times); ends when the spec does, or
    /// after yielding a search error.
    pub fn times_after(&self, after: Timestamp) -> Times<'_> {
        Times {
            spec: self,
            after,
            end: None,
            done: false,
        }
    }

    /// ListScheduleMatchingTimes: the times after `start` whose actual time is not after
    /// `end`. Temporal returns at most [`crate::MAX_LIST_MATCHING_TIMES`] of them.
    pub fn matching_times(&self, start: Timestamp, end: Timestamp) -> Times<'_> {
        Times {
            spec: self,
            after: start,
            end: Some(end),
            done: false,
        }
    }

    /// The earliest calendar or interval time after `after` (unix seconds), no exclusions.
    fn raw_next(&self, after: i64) -> Option<i64> {
        let calendars = self
            .calendars
            .iter()
            .filter_map(|c| c.next(&self.zone, after));
        let intervals = self.intervals.iter().filter_map(|&(interval, phase)| {
            // Go's integer division truncates toward zero, as Rust's does.
            let n = after.checked_sub(phase)? / interval;
            n.checked_add(1)?.checked_mul(interval)?.checked_add(phase)
        });
        calendars.chain(intervals).min()
    }

    fn past_end(&self, nominal: i64) -> bool {
        let first_after_max_year = civil_to_unix(MAX_CALENDAR_YEAR + 1, 1, 1, 0, 0, 0);
        self.end
            .is_some_and(|end| i128::from(nominal) * NANOS > end)
            || nominal >= first_after_max_year
    }
}

/// Nanoseconds since the epoch of a protobuf Timestamp, as Go's `AsTime` reads it.
fn proto_nanos(ts: &prost_types::Timestamp) -> i128 {
    i128::from(ts.seconds) * NANOS + i128::from(ts.nanos)
}

/// Iterator over matching times; see [`CompiledSpec::times_after`] and
/// [`CompiledSpec::matching_times`].
#[derive(Debug, Clone)]
pub struct Times<'a> {
    spec: &'a CompiledSpec,
    after: Timestamp,
    end: Option<Timestamp>,
    done: bool,
}

impl Iterator for Times<'_> {
    type Item = Result<NextTime, SearchLimitExceeded>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.spec.next_time(self.after) {
            Ok(Some(t)) if self.end.is_none_or(|end| t.actual <= end) => {
                self.after = t.actual;
                Some(Ok(t))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
