//! When to start workflows and in which namespace: the open-loop cadence and how load is
//! split between namespaces. Pure arithmetic, so it is tested without a clock.

use std::time::Duration;

/// Open loop: start `i` is due at `i / rate` seconds after the start of the run, computed
/// from `i` (not by adding intervals) so that rounding never drifts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSchedule {
    per_second: f64,
}

impl RateSchedule {
    /// `per_second` must be positive and finite (the CLI checks).
    pub fn new(per_second: f64) -> Self {
        Self { per_second }
    }

    /// When start `i` is due, from the start of the run.
    pub fn offset(&self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.per_second)
    }

    /// How many starts are due at `elapsed` (the starts with offset <= elapsed).
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.per_second).floor() as u64 + 1
    }
}

/// Latency measured from when the request was meant to go out, not from when it did: a
/// generator that fell behind (a stalled server, a full in-flight cap) would otherwise hide
/// the wait from its own numbers (coordinated omission).
pub fn latency_from_intended(intended: Duration, finished: Duration) -> Duration {
    finished.saturating_sub(intended)
}

/// A repeating sequence of namespace indexes in which index `i` appears `weights[i]` times,
/// spread out (smooth weighted round robin), so any window of the sequence carries close to
/// the weighted share of each namespace.
pub fn weighted_sequence(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let (best, _) = current
            .iter()
            .enumerate()
            .max_by_key(|&(i, &c)| (c, std::cmp::Reverse(i)))
            .expect("at least one namespace");
        current[best] -= total;
        out.push(best);
    }
    out
}

/// Closed loop: split `slots` workflows in flight between namespaces by weight, giving every
/// namespace at least one while there are enough slots (largest remainder).
pub fn allocate_slots(slots: u32, weights: &[u32]) -> Vec<u32> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    let floor_one = slots as usize >= n;
    let mut out: Vec<u32> = weights
        .iter()
        .map(|&w| {
            let share = (u64::from(slots) * u64::from(w) / total.max(1)) as u32;
            if floor_one { share.max(1) } else { share }
        })
        .collect();
    // Remainders, biggest first (ties to the lower index), until the slots are used up.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| {
        let rem = (u64::from(slots) * u64::from(weights[i])) % total.max(1);
        (std::cmp::Reverse(rem), i)
    });
    let mut assigned: u32 = out.iter().sum();
    let mut k = 0;
    while assigned < slots {
        out[order[k % n]] += 1;
        assigned += 1;
        k += 1;
    }
    // The floor of one may have handed out too many: take back from the biggest.
    while assigned > slots {
        let (biggest, _) = out
            .iter()
            .enumerate()
            .max_by_key(|&(i, &s)| (s, std::cmp::Reverse(i)))
            .expect("at least one namespace");
        out[biggest] -= 1;
        assigned -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_offsets_follow_a_fixed_cadence_without_drift() {
        let s = RateSchedule::new(4.0);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(250));
        assert_eq!(s.offset(6), Duration::from_millis(1500));
        let s = RateSchedule::new(3.0);
        // A million intervals of a third of a second are exactly 333,333.33 s, not the sum
        // of a million rounded intervals.
        let far = s.offset(1_000_000);
        let want = Duration::from_secs_f64(1_000_000.0 / 3.0);
        assert!(far.abs_diff(want) < Duration::from_micros(1), "{far:?}");
    }

    #[test]
    fn due_by_counts_the_starts_whose_time_has_come() {
        let s = RateSchedule::new(10.0);
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_millis(99)), 1);
        assert_eq!(s.due_by(Duration::from_millis(100)), 2);
        assert_eq!(s.due_by(Duration::from_secs(1)), 11);
    }

    #[test]
    fn latency_counts_from_the_intended_start() {
        // At 10/s the server stalls for a second: starts 1..=10 go out late, all at 1.0 s,
        // and finish 5 ms later. From the intended time they waited up to a second.
        let s = RateSchedule::new(10.0);
        let sent = Duration::from_secs(1);
        let done = sent + Duration::from_millis(5);
        let lat: Vec<u128> = (1..=10)
            .map(|i| latency_from_intended(s.offset(i), done).as_millis())
            .collect();
        assert_eq!(lat, vec![905, 805, 705, 605, 505, 405, 305, 205, 105, 5]);
        // Measured from when they were sent, every one would claim 5 ms.
        assert_eq!(latency_from_intended(sent, done), Duration::from_millis(5));
        // A finish before the intended time (clock skew) is zero, never negative.
        assert_eq!(
            latency_from_intended(Duration::from_secs(2), Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn weighted_sequence_spreads_the_flooding_namespace() {
        let seq = weighted_sequence(&[10, 1, 1]);
        assert_eq!(seq.len(), 12);
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 10);
        assert_eq!(seq.iter().filter(|&&i| i == 1).count(), 1);
        assert_eq!(seq.iter().filter(|&&i| i == 2).count(), 1);
        // The small namespaces are not bunched at one end.
        let p1 = seq.iter().position(|&i| i == 1).expect("present");
        let p2 = seq.iter().position(|&i| i == 2).expect("present");
        assert!(p1.abs_diff(p2) >= 4, "{seq:?}");
        assert_eq!(weighted_sequence(&[1]), vec![0]);
        assert_eq!(weighted_sequence(&[1, 1, 1]), vec![0, 1, 2]);
    }

    #[test]
    fn slots_split_by_weight_with_at_least_one_each() {
        assert_eq!(allocate_slots(12, &[10, 1, 1]), vec![10, 1, 1]);
        assert_eq!(allocate_slots(10, &[10, 1, 1]), vec![8, 1, 1]);
        assert_eq!(allocate_slots(3, &[10, 1, 1]), vec![1, 1, 1]);
        assert_eq!(allocate_slots(2, &[10, 1, 1]), vec![2, 0, 0]);
        assert_eq!(allocate_slots(7, &[1]), vec![7]);
        assert_eq!(allocate_slots(100, &[1, 1, 1]), vec![34, 33, 33]);
        for slots in 0..50 {
            let a = allocate_slots(slots, &[10, 3, 1, 1]);
            assert_eq!(a.iter().sum::<u32>(), slots, "{slots}: {a:?}");
        }
    }
}
