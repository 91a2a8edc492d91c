//! A batch's progress and how it is paced. Progress is checkpointed as a signal to the batch's
//! own workflow after every page of targets (its JSON is Temporal's heartbeat details: page
//! token, page number, estimate, successes, failures), so a batch resumes after a restart from
//! the page after the last one it finished. No I/O here.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

/// The signal that carries a checkpoint to the batch's workflow.
pub const CHECKPOINT_SIGNAL: &str = "__temper_batch_progress";

/// How far a batch has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Where the next page of targets starts (empty: at the beginning).
    pub page_token: Vec<u8>,
    /// Pages finished.
    pub current_page: u64,
    /// How many targets the query matched when the batch started.
    pub total_estimate: i64,
    pub success: i64,
    pub failure: i64,
}

impl Progress {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "PageToken": hex(&self.page_token),
            "CurrentPage": self.current_page,
            "TotalEstimate": self.total_estimate,
            "SuccessCount": self.success,
            "ErrorCount": self.failure,
        })
    }

    /// A checkpoint read back; `None` if it is not one.
    pub fn from_json(v: &serde_json::Value) -> Option<Progress> {
        Some(Progress {
            page_token: unhex(v.get("PageToken")?.as_str()?)?,
            current_page: v.get("CurrentPage")?.as_u64()?,
            total_estimate: v.get("TotalEstimate")?.as_i64()?,
            success: v.get("SuccessCount")?.as_i64()?,
            failure: v.get("ErrorCount")?.as_i64()?,
        })
    }

    /// The stats Temporal puts in a finished batch's memo.
    pub fn stats_json(&self) -> serde_json::Value {
        json!({ "NumSuccess": self.success, "NumFailure": self.failure })
    }

    /// Successes and failures from a finished batch's stats memo.
    pub fn from_stats(v: &serde_json::Value) -> Option<(i64, i64)> {
        Some((
            v.get("NumSuccess")?.as_i64()?,
            v.get("NumFailure")?.as_i64()?,
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Targets per page: about one second of operations, so a checkpoint lands about once a
/// second, within bounds that keep the batch's own history short.
pub fn page_size(rps: f64) -> usize {
    // `as` saturates: a huge rps is capped below.
    (rps.ceil() as usize).clamp(20, 1000)
}

/// Spaces operations `1 / rps` apart, without bursts: the n-th operation may start at
/// `start + n / rps` at the earliest.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(rps: f64) -> Self {
        Pacer {
            period: Duration::from_secs_f64(1.0 / rps.max(0.001)),
            next: None,
        }
    }

    /// When the next operation may start, given the time now; reserves that slot.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let at = self.next.map_or(now, |n| n.max(now));
        self.next = Some(at + self.period);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_read_back() {
        let p = Progress {
            page_token: vec![0, 1, 0xab, 0xff],
            current_page: 3,
            total_estimate: 200,
            success: 150,
            failure: 2,
        };
        assert_eq!(Progress::from_json(&p.to_json()), Some(p.clone()));
        assert_eq!(Progress::from_json(&json!({"x": 1})), None);
        assert_eq!(Progress::from_stats(&p.stats_json()), Some((150, 2)));
        let mut bad = p.to_json();
        bad["PageToken"] = json!("abc");
        assert_eq!(Progress::from_json(&bad), None);
    }

    #[test]
    fn pages_are_about_a_second_of_work() {
        assert_eq!(page_size(50.0), 50);
        assert_eq!(page_size(1.0), 20);
        assert_eq!(page_size(0.5), 20);
        assert_eq!(page_size(1e9), 1000);
        assert_eq!(page_size(f64::INFINITY), 1000);
    }

    #[test]
    fn the_pacer_spaces_operations_without_bursts() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100.0);
        let slots: Vec<_> = (0..200).map(|_| p.reserve(t0)).collect();
        assert_eq!(slots[0], t0);
        // 200 operations at 100 per second span 1.99 s.
        let span = *slots.last().expect("200 slots") - t0;
        assert!(span >= Duration::from_millis(1980), "{span:?}");
        // After an idle spell the next operation may start at once, with no saved-up burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(later), later);
        assert_eq!(p.reserve(later), later + Duration::from_millis(10));
    }
}
