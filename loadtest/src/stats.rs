//! Latency histograms and their summaries. Values are recorded in microseconds with three
//! significant digits (HdrHistogram), reported in milliseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds; longer ones are clamped to it. One hour, the
/// longest run there is.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Histo(Histogram<u64>);

impl Default for Histo {
    fn default() -> Self {
        Self::new()
    }
}

impl Histo {
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid"))
    }

    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS);
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn merge(&mut self, other: &Histo) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Latency at quantile `q` (0.0..=1.0), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        micros_to_ms(self.0.value_at_quantile(q))
    }

    pub fn summary(&self) -> LatencySummary {
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            p50: self.quantile_ms(0.50),
            p90: self.quantile_ms(0.90),
            p99: self.quantile_ms(0.99),
            max: micros_to_ms(self.0.max()),
            mean: round3(self.0.mean() / 1000.0),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn micros_to_ms(v: u64) -> f64 {
    round3(v as f64 / 1000.0)
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The duration between two server timestamps, if both are there and in order.
pub fn between(
    from: Option<&prost_wkt_types::Timestamp>,
    to: Option<&prost_wkt_types::Timestamp>,
) -> Option<Duration> {
    let (from, to) = (from?, to?);
    let nanos = |t: &prost_wkt_types::Timestamp| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    };
    let d = nanos(to) - nanos(from);
    (d >= 0).then(|| Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histo::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let s = h.summary();
        assert_eq!(s.count, 100);
        // Three significant digits: within 0.1 % of the exact value.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.p50, 50.0), "{s:?}");
        assert!(close(s.p90, 90.0), "{s:?}");
        assert!(close(s.p99, 99.0), "{s:?}");
        assert!(close(s.max, 100.0), "{s:?}");
        assert!(close(s.mean, 50.5), "{s:?}");
    }

    #[test]
    fn one_slow_outlier_shows_in_max_not_in_p50() {
        let mut h = Histo::new();
        for _ in 0..999 {
            h.record(Duration::from_millis(2));
        }
        h.record(Duration::from_secs(3));
        let s = h.summary();
        assert!(
            (s.p50 - 2.0).abs() < 0.01 && (s.p99 - 2.0).abs() < 0.01,
            "{s:?}"
        );
        assert!((s.max - 3000.0).abs() < 3.0, "{s:?}");
    }

    #[test]
    fn empty_tiny_and_huge_values() {
        assert_eq!(Histo::new().summary(), LatencySummary::default());
        let mut h = Histo::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(10 * 3600));
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert!(s.p50 <= 0.002, "{s:?}");
        assert!((s.max - 3_600_000.0).abs() / 3_600_000.0 < 0.001, "{s:?}");
    }

    #[test]
    fn merged_histograms_count_both() {
        let mut a = Histo::new();
        let mut b = Histo::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!((a.summary().max - 9.0).abs() < 0.01);
    }

    #[test]
    fn server_timestamps_subtract() {
        let t = |s, n| prost_wkt_types::Timestamp {
            seconds: s,
            nanos: n,
        };
        assert_eq!(
            between(Some(&t(10, 900_000_000)), Some(&t(11, 100_000_000))),
            Some(Duration::from_millis(200))
        );
        assert_eq!(between(Some(&t(11, 0)), Some(&t(10, 0))), None);
        assert_eq!(between(None, Some(&t(10, 0))), None);
    }
}
