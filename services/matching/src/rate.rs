//! A small sliding-window event rate, for DescribeTaskQueue's add and dispatch rates.

use tokio::time::Instant;

const WINDOW_SECS: usize = 30;

/// Events per second over the last 30 seconds, in one-second buckets.
#[derive(Debug)]
pub(crate) struct RateCounter {
    origin: Instant,
    buckets: [u64; WINDOW_SECS],
    /// The second (since `origin`) the newest bucket belongs to.
    newest: u64,
}

impl RateCounter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            origin: now,
            buckets: [0; WINDOW_SECS],
            newest: 0,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Clear the buckets of seconds that passed without events.
    fn advance(&mut self, now: Instant) {
        let sec = self.second(now);
        if sec <= self.newest {
            return;
        }
        let gap = (sec - self.newest).min(WINDOW_SECS as u64);
        for i in 1..=gap {
            self.buckets[((self.newest + i) % WINDOW_SECS as u64) as usize] = 0;
        }
        self.newest = sec;
    }

    pub(crate) fn record(&mut self, now: Instant, n: u64) {
        self.advance(now);
        let idx = (self.newest % WINDOW_SECS as u64) as usize;
        self.buckets[idx] = self.buckets[idx].saturating_add(n);
    }

    pub(crate) fn per_second(&mut self, now: Instant) -> f32 {
        self.advance(now);
        let total: u64 = self.buckets.iter().sum();
        total as f32 / WINDOW_SECS as f32
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_fall_out_of_the_window() {
        let t0 = Instant::now();
        let mut r = RateCounter::new(t0);
        r.record(t0, 30);
        assert!((r.per_second(t0) - 1.0).abs() < f32::EPSILON);
        r.record(t0 + Duration::from_secs(10), 30);
        assert!((r.per_second(t0 + Duration::from_secs(10)) - 2.0).abs() < f32::EPSILON);
        assert!((r.per_second(t0 + Duration::from_secs(35)) - 1.0).abs() < f32::EPSILON);
        assert_eq!(r.per_second(t0 + Duration::from_secs(100)), 0.0);
    }
}
