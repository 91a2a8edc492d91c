//! A partition's share of its task queue's UpdateTaskQueueConfig settings: the queue rate
//! limit as a token bucket over dispatches (Temporal's burst of one second's worth, at least
//! one task), and the fairness weight overrides the ready queue applies (see `ready`).

use tokio::time::{Duration, Instant};

/// Dispatches allowed per second, with a bucket of one second's worth (at least one).
#[derive(Debug)]
pub(crate) struct DispatchLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl DispatchLimit {
    /// `rate` tasks per second; 0 dispatches nothing (the queue is paused).
    pub(crate) fn new(rate: f64, now: Instant) -> Self {
        let burst = burst_of(rate);
        Self {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            at: now,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.rate
    }

    /// Change the rate; the tokens saved so far stay (up to the new burst).
    pub(crate) fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(0.0);
        self.burst = burst_of(self.rate);
        self.tokens = self.tokens.min(self.burst);
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }

    /// Take one dispatch. `Err(Some(at))`: none before `at`; `Err(None)`: none ever (rate 0).
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Option<Instant>> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.rate <= 0.0 {
            return Err(None);
        }
        let wait = (1.0 - self.tokens) / self.rate;
        Err(Some(now + Duration::from_secs_f64(wait.min(86_400.0))))
    }

    /// Give back a dispatch taken for a task that was not there after all.
    pub(crate) fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }
}

fn burst_of(rate: f64) -> f64 {
    if rate <= 0.0 { 0.0 } else { rate.max(1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut l = DispatchLimit::new(2.0, t0);
        assert!(l.try_take(t0).is_ok());
        assert!(l.try_take(t0).is_ok());
        let next = l.try_take(t0).expect_err("burst used up");
        assert_eq!(next, Some(t0 + Duration::from_millis(500)));
        assert!(l.try_take(t0 + Duration::from_millis(499)).is_err());
        assert!(l.try_take(t0 + Duration::from_millis(500)).is_ok());
        // Over ten seconds, about twenty dispatches and no more.
        let mut n = 0;
        for ms in (0..10_000).step_by(10) {
            if l.try_take(t0 + Duration::from_millis(500 + ms)).is_ok() {
                n += 1;
            }
        }
        assert!((19..=21).contains(&n), "{n}");
    }

    #[test]
    fn rate_zero_pauses_and_a_fraction_still_dispatches() {
        let t0 = Instant::now();
        let mut paused = DispatchLimit::new(0.0, t0);
        assert_eq!(paused.try_take(t0 + Duration::from_secs(100)), Err(None));
        paused.set_rate(0.5, t0 + Duration::from_secs(100));
        assert!(paused.try_take(t0 + Duration::from_secs(102)).is_ok());
        let mut slow = DispatchLimit::new(0.5, t0);
        assert!(slow.try_take(t0).is_ok(), "a burst of at least one task");
        assert_eq!(slow.try_take(t0), Err(Some(t0 + Duration::from_secs(2))));
        slow.refund();
        assert!(slow.try_take(t0).is_ok());
    }
}
