//! A partition's share of its task queue's UpdateTaskQueueConfig settings: the queue rate
//! limit as a token bucket over dispatches (Temporal's burst of one second's worth, at least
//! one task), the same per fairness key ([`KeyLimits`]), and the fairness weight overrides
//! the ready queue applies (see `ready`).

use std::collections::HashMap;

use tokio::time::{Duration, Instant};

/// A limit whose rate can change in place.
pub(crate) trait Rated {
    fn rate(&self) -> f64;
    fn set_rate(&mut self, rate: f64, now: Instant);
}

/// Bring `slot` to `rate`: none is no limit; a changed rate keeps the limit's saved tokens;
/// a new limit starts from `new`.
pub(crate) fn apply_rate<L: Rated>(
    slot: &mut Option<L>,
    rate: Option<f64>,
    now: Instant,
    new: impl FnOnce(f64, Instant) -> L,
) {
    match (rate, slot.as_mut()) {
        (None, _) => *slot = None,
        (Some(rate), Some(limit)) => {
            if limit.rate() != rate {
                limit.set_rate(rate, now);
            }
        }
        (Some(rate), None) => *slot = Some(new(rate, now)),
    }
}

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

    /// Whether the bucket would be full at `now`: it then limits nothing a fresh one would
    /// not, and can be forgotten.
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

impl Rated for DispatchLimit {
    fn rate(&self) -> f64 {
        self.rate
    }

    /// Change the rate; the tokens saved so far stay (up to the new burst).
    fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(0.0);
        self.burst = burst_of(self.rate);
        self.tokens = self.tokens.min(self.burst);
    }
}

/// Keys whose buckets are looked at for forgetting once this many are kept.
const KEYS_BEFORE_PRUNING: usize = 4096;

/// The fairness key rate limit (`fairness_key_rate_limit_default`): every key may dispatch
/// `rate × weight` tasks a second, its weight being the override for the key or else the
/// weight its task carries, with a burst of one second's worth (at least one task), as in
/// Temporal. A key whose bucket is full is not kept, so memory follows the keys that are
/// at or near their limit, not every key ever seen.
#[derive(Debug)]
pub(crate) struct KeyLimits {
    rate: f64,
    buckets: HashMap<String, DispatchLimit>,
}

impl KeyLimits {
    /// `rate` tasks per second for a key of weight 1 (0 pauses every key).
    pub(crate) fn new(rate: f64) -> Self {
        Self {
            rate: rate.max(0.0),
            buckets: HashMap::new(),
        }
    }

    /// Take one dispatch for `key` at `weight`. `Err(Some(at))`: none before `at`;
    /// `Err(None)`: none while the rate is 0.
    pub(crate) fn try_take(
        &mut self,
        key: &str,
        weight: f32,
        now: Instant,
    ) -> Result<(), Option<Instant>> {
        let rate = self.rate * f64::from(weight.max(0.001));
        if let Some(bucket) = self.buckets.get_mut(key) {
            if bucket.rate() != rate {
                bucket.set_rate(rate, now);
            }
            return bucket.try_take(now);
        }
        if self.buckets.len() >= KEYS_BEFORE_PRUNING {
            self.buckets.retain(|_, b| !b.is_full(now));
        }
        let mut bucket = DispatchLimit::new(rate, now);
        let taken = bucket.try_take(now);
        self.buckets.insert(key.to_owned(), bucket);
        taken
    }

    /// Give back a dispatch taken for `key` for a task that was not handed out.
    pub(crate) fn refund(&mut self, key: &str) {
        if let Some(bucket) = self.buckets.get_mut(key) {
            bucket.refund();
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

impl Rated for KeyLimits {
    fn rate(&self) -> f64 {
        self.rate
    }

    /// Change the rate; each key keeps the tokens it saved (up to its new burst).
    fn set_rate(&mut self, rate: f64, now: Instant) {
        let old = self.rate;
        self.rate = rate.max(0.0);
        for bucket in self.buckets.values_mut() {
            // A bucket's rate is the old rate times its key's weight.
            let weight = if old > 0.0 { bucket.rate() / old } else { 1.0 };
            bucket.set_rate(self.rate * weight, now);
        }
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

    #[test]
    fn each_key_gets_the_rate_times_its_weight() {
        let t0 = Instant::now();
        let mut keys = KeyLimits::new(2.0);
        // Weight 1: a burst of 2, then one every 0.5 s.
        assert!(keys.try_take("a", 1.0, t0).is_ok());
        assert!(keys.try_take("a", 1.0, t0).is_ok());
        assert_eq!(
            keys.try_take("a", 1.0, t0),
            Err(Some(t0 + Duration::from_millis(500)))
        );
        // Another key is not held back by the first.
        assert!(keys.try_take("b", 1.0, t0).is_ok());
        // Weight 3: six a second.
        let mut n = 0;
        for ms in (0..10_000).step_by(10) {
            if keys
                .try_take("heavy", 3.0, t0 + Duration::from_millis(ms))
                .is_ok()
            {
                n += 1;
            }
        }
        assert!((60..=67).contains(&n), "{n}");
        keys.refund("a");
        assert!(keys.try_take("a", 1.0, t0).is_ok(), "refunded");
        // A new rate applies to saved buckets, scaled by each key's weight.
        keys.set_rate(0.0, t0);
        assert_eq!(
            keys.try_take("a", 1.0, t0 + Duration::from_secs(5)),
            Err(None)
        );
        keys.set_rate(10.0, t0 + Duration::from_secs(5));
        assert_eq!(keys.rate(), 10.0);
        assert!(keys.try_take("a", 1.0, t0 + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut keys = KeyLimits::new(100.0);
        for i in 0..KEYS_BEFORE_PRUNING {
            assert!(keys.try_take(&format!("k{i}"), 1.0, t0).is_ok());
        }
        assert_eq!(keys.tracked(), KEYS_BEFORE_PRUNING);
        // A second later every bucket is full again: the next new key drops them.
        assert!(
            keys.try_take("new", 1.0, t0 + Duration::from_secs(1))
                .is_ok()
        );
        assert_eq!(keys.tracked(), 1);
    }
}
