//! Overload control: keep the node out of saturation by pacing new work, so that what one
//! namespace sends beyond the node's capacity waits in its own admission queue instead of in
//! every queue behind the frontend.
//!
//! Fair admission ([`crate::admission`]) bounds how many requests bringing new work run at
//! once, but a start is cheap next to the work it brings (workflow tasks, activities,
//! timers): a flood that is admitted a few at a time still brings more work than the node
//! serves, the runtime's run queue and the store's writer fill up, and every namespace's
//! requests wait in them. What shows that is the scheduling lag: how late a task that
//! sleeps a few milliseconds runs again, behind every runnable task ahead of it. A probe
//! measures it every [`PROBE`]; each [`WINDOW`], a [`Controller`] compares the median of the
//! window's lags with the target and sets the rate at which new work is admitted ([`Bucket`]): over the target, a
//! tenth below the rate admitted lately; well under it, a little higher each window, and no
//! rate at all once the limit no longer binds.
//!
//! Requests beyond the rate wait in their namespace's queue and are served in turn. A
//! namespace that took less than its share of the last window's places is let in ahead of
//! the queue (the bucket may owe a few tokens, paid back by the namespaces that wait), so a
//! quiet namespace's requests are not delayed by the pace a flood brought on.

use std::sync::Weak;
use std::time::Duration;
// tokio's clock, so tests can pause it.
use tokio::time::Instant;

use crate::admission::Admission;

/// How often the probe measures the lag and hands out paced places.
pub const PROBE: Duration = Duration::from_millis(5);
/// How often the controller adjusts the rate.
pub const WINDOW: Duration = Duration::from_millis(100);
/// The lowest target: an idle node's lag is about 1 ms (the timer's resolution), so a lower
/// target would read an idle node as saturated and pace it down to nothing (measured: with
/// a 1.5 ms target, 47% CPU and a rate near the floor).
pub const MIN_TARGET: Duration = Duration::from_millis(2);
/// The rate never goes below this (new requests per second on this node).
pub const MIN_RATE: f64 = 5.0;
/// The admitted rate, as new-work requests per second on this node (0 when not limited).
pub const RATE_GAUGE: &str = "temper_frontend_admission_rate_limit";
/// The median scheduling lag of the last window, in milliseconds.
pub const LAG_GAUGE: &str = "temper_frontend_scheduling_lag_ms";

/// A token bucket whose rate the controller sets; no rate: every take succeeds.
#[derive(Debug)]
pub struct Bucket {
    rate: Option<f64>,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn unlimited(now: Instant) -> Self {
        Self {
            rate: None,
            tokens: 0.0,
            last: now,
        }
    }

    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// At most a few probes' worth of tokens are kept, so a paused bucket does not let a
    /// burst through.
    fn capacity(rate: f64) -> f64 {
        (rate * 4.0 * PROBE.as_secs_f64()).max(1.0)
    }

    pub fn set_rate(&mut self, rate: Option<f64>, now: Instant) {
        self.refill(now);
        if let Some(r) = rate {
            self.tokens = self.tokens.min(Self::capacity(r));
        }
        self.rate = rate;
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(Self::capacity(rate));
        }
        self.last = self.last.max(now);
    }

    /// Take a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate.is_none() {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Take a token even if none is there yet, owing at most a few probes' worth; false
    /// when that much is owed already.
    pub fn take_owing(&mut self, now: Instant) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        self.refill(now);
        if self.tokens > -Self::capacity(rate) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Give back a token taken for a request that went away.
    pub fn refund(&mut self) {
        if let Some(rate) = self.rate {
            self.tokens = (self.tokens + 1.0).min(Self::capacity(rate));
        }
    }
}

/// Additive-increase, multiplicative-decrease on the admitted rate, driven by the lag.
#[derive(Debug)]
pub struct Controller {
    target: Duration,
    /// The rate admitted lately (requests per second), smoothed over about a second.
    admitted_rate: f64,
    /// Windows in a row in which the limit did not bind (nobody waited).
    unbound_windows: u32,
}

impl Controller {
    /// `target` is raised to [`MIN_TARGET`] if below it.
    pub fn new(target: Duration) -> Self {
        Self {
            target: target.max(MIN_TARGET),
            admitted_rate: 0.0,
            unbound_windows: 0,
        }
    }

    /// One window: its median lag, the requests admitted in it, and whether any waited at its
    /// end. Returns the new rate (`None`: no limit).
    pub fn observe(
        &mut self,
        current: Option<f64>,
        lag: Duration,
        admitted: u64,
        window: Duration,
        waiting: bool,
    ) -> Option<f64> {
        let rate_now = admitted as f64 / window.as_secs_f64().max(1e-3);
        self.admitted_rate = if self.admitted_rate == 0.0 {
            rate_now
        } else {
            0.8 * self.admitted_rate + 0.2 * rate_now
        };
        self.unbound_windows = if waiting {
            0
        } else {
            self.unbound_windows.saturating_add(1)
        };
        if lag > self.target {
            // Saturated: below what was admitted lately (and below the current limit).
            let base = current.map_or(self.admitted_rate, |c| {
                c.min(self.admitted_rate.max(c * 0.5))
            });
            return Some((base * 0.9).max(MIN_RATE));
        }
        let rate = current?;
        if self.unbound_windows >= 10 && rate > 2.0 * self.admitted_rate {
            // A second without anybody waiting, and far above what comes: no limit.
            return None;
        }
        if lag * 2 < self.target {
            Some(rate * 1.05 + 1.0)
        } else {
            Some(rate)
        }
    }
}

/// The middle of the window's lags: one long stall (a page fault, a large allocation) is not
/// saturation, a run queue that stays long is.
fn median(lags: &mut [Duration]) -> Duration {
    if lags.is_empty() {
        return Duration::ZERO;
    }
    let mid = lags.len() / 2;
    *lags.select_nth_unstable(mid).1
}

/// Measure the lag and drive `admission` until it is dropped.
pub(crate) fn spawn_probe(admission: Weak<Admission>, target: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime: overload control is off");
        return;
    };
    runtime.spawn(async move {
        let mut controller = Controller::new(target);
        let mut window_start = Instant::now();
        let mut lags: Vec<Duration> = Vec::with_capacity(32);
        loop {
            let before = Instant::now();
            tokio::time::sleep(PROBE).await;
            // Woken on time, the task still waits behind every runnable task: how late it
            // runs is how long a request's next step waits for a core right now.
            let now = Instant::now();
            lags.push(now.saturating_duration_since(before).saturating_sub(PROBE));
            let Some(admission) = admission.upgrade() else {
                return;
            };
            admission.dispatch_paced(now);
            let window = now.saturating_duration_since(window_start);
            if window >= WINDOW {
                let lag = median(&mut lags);
                let (admitted, waiting, current) = admission.take_window();
                let rate = controller.observe(current, lag, admitted, window, waiting);
                if rate != current {
                    admission.set_rate(rate, now);
                    tracing::debug!(?rate, lag_ms = lag.as_secs_f64() * 1e3, "admission rate");
                }
                metrics::gauge!(RATE_GAUGE).set(rate.unwrap_or(0.0));
                metrics::gauge!(LAG_GAUGE).set(lag.as_secs_f64() * 1e3);
                window_start = now;
                lags.clear();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_unlimited_bucket_always_gives() {
        let now = Instant::now();
        let mut b = Bucket::unlimited(now);
        assert!((0..10_000).all(|_| b.try_take(now)));
    }

    #[test]
    fn a_bucket_gives_its_rate_and_keeps_no_large_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::unlimited(t0);
        b.set_rate(Some(1000.0), t0);
        // Over one second, taking at every millisecond: about 1000 tokens.
        let mut got = 0;
        for i in 1..=1000u32 {
            let now = t0 + MS * i;
            while b.try_take(now) {
                got += 1;
            }
        }
        assert!((990..=1001).contains(&got), "{got}");
        // Idle for ten seconds: no more than the small capacity is waiting.
        let later = t0 + Duration::from_secs(11);
        let mut burst = 0;
        while b.try_take(later) {
            burst += 1;
        }
        assert!(burst <= 20, "a burst of {burst} after idling");
        b.refund();
        assert!(b.try_take(later), "a refunded token can be taken again");
    }

    #[test]
    fn saturation_lowers_the_rate_below_what_was_admitted() {
        let mut c = Controller::new(3 * MS);
        // 400 admitted in 100 ms (4000/s), lag 10 ms: limit below 4000/s.
        let r = c
            .observe(None, 10 * MS, 400, 100 * MS, false)
            .expect("limited");
        assert!((3500.0..=3700.0).contains(&r), "{r}");
        // Still saturated: lower again.
        let r2 = c
            .observe(Some(r), 10 * MS, 300, 100 * MS, true)
            .expect("limited");
        assert!(r2 < r, "{r2} after {r}");
        // Never below the floor.
        let mut rate = Some(r2);
        for _ in 0..200 {
            rate = c.observe(rate, 50 * MS, 0, 100 * MS, true);
        }
        assert_eq!(rate, Some(MIN_RATE));
    }

    #[test]
    fn a_quiet_node_raises_the_rate_and_then_lifts_the_limit() {
        let mut c = Controller::new(4 * MS);
        let mut rate = c.observe(None, 10 * MS, 100, 100 * MS, true);
        let first = rate.expect("limited");
        // Lag low, requests still waiting: the rate climbs.
        for _ in 0..5 {
            rate = c.observe(rate, MS, (first / 10.0) as u64, 100 * MS, true);
        }
        assert!(rate.expect("still limited") > first);
        // Lag between half the target and the target: held.
        let held = c.observe(rate, 3 * MS, 10, 100 * MS, true);
        assert_eq!(held, rate);
        // Nobody waits and little comes: after a second the limit goes.
        let mut windows = 0;
        while rate.is_some() {
            rate = c.observe(rate, MS, 1, 100 * MS, false);
            windows += 1;
            assert!(windows < 100, "the limit never lifted");
        }
        assert!(windows >= 10, "lifted after {windows} windows");
    }

    #[test]
    fn a_target_under_the_timer_resolution_is_raised() {
        let mut c = Controller::new(MS / 2);
        // An idle node's lag (about 1 ms) is not saturation.
        assert_eq!(c.observe(None, MS + MS / 4, 10, 100 * MS, false), None);
        assert!(c.observe(None, 3 * MS, 10, 100 * MS, false).is_some());
    }

    #[test]
    fn without_saturation_there_is_no_limit() {
        let mut c = Controller::new(4 * MS);
        for _ in 0..50 {
            assert_eq!(c.observe(None, MS, 500, 100 * MS, false), None);
        }
    }
}
