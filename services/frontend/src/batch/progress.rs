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
    /// The runner that wrote the checkpoint: `<node name>/<process instance>`.
    pub owner: String,
    /// When it was written, milliseconds since 1970.
    pub at_ms: i64,
}

impl Progress {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "PageToken": hex(&self.page_token),
            "CurrentPage": self.current_page,
            "TotalEstimate": self.total_estimate,
            "SuccessCount": self.success,
            "ErrorCount": self.failure,
            "Owner": self.owner,
            "UpdatedAtMs": self.at_ms,
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
            owner: v
                .get("Owner")
                .and_then(|o| o.as_str())
                .unwrap_or_default()
                .to_owned(),
            at_ms: v.get("UpdatedAtMs").and_then(|t| t.as_i64()).unwrap_or(0),
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

/// Targets per page: about one second of operations, so a checkpoint (which is also the
/// runner's sign of life) lands about once a second, and at most 1000.
pub fn page_size(rps: f64) -> usize {
    // `as` saturates: a huge rps is capped below.
    (rps.ceil() as usize).clamp(1, 1000)
}

/// How long a batch may go without a checkpoint before another node takes it over: 30 s, or
/// three pages at its rate if those take longer.
pub fn stale_after_ms(rps: f64) -> i64 {
    let page_ms = page_size(rps) as f64 * 1000.0 / rps.max(0.001);
    (3.0 * page_ms).max(30_000.0).min(i64::MAX as f64) as i64
}

/// The node part of a checkpoint's owner.
pub fn owner_node(owner: &str) -> &str {
    owner.rsplit_once('/').map_or(owner, |(node, _)| node)
}

/// Whether `node`, which does not run a running batch, should take it over: the batch's
/// runner was an earlier process of this node (it restarted), or has not checkpointed for
/// `stale_ms` (the node running it died). `last` is the newest checkpoint; without one the
/// batch's start time stands in.
pub fn may_take_over(
    last: Option<&Progress>,
    started_ms: i64,
    now_ms: i64,
    node: &str,
    stale_ms: i64,
) -> bool {
    match last {
        Some(p) if !p.owner.is_empty() && owner_node(&p.owner) == node => true,
        Some(p) => now_ms.saturating_sub(p.at_ms) > stale_ms,
        None => now_ms.saturating_sub(started_ms) > stale_ms,
    }
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
            owner: "node-a/123".into(),
            at_ms: 1_700_000_000_000,
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
        assert_eq!(page_size(1.0), 1);
        assert_eq!(page_size(0.5), 1);
        assert_eq!(page_size(1e9), 1000);
        assert_eq!(page_size(f64::INFINITY), 1000);
    }

    #[test]
    fn a_batch_is_taken_over_after_its_runner_restarted_or_went_quiet() {
        let stale = stale_after_ms(50.0);
        assert_eq!(stale, 30_000);
        // Three pages of one operation at one every 100 s.
        assert_eq!(stale_after_ms(0.01), 300_000);
        let cp = |owner: &str, at_ms| Progress {
            owner: owner.into(),
            at_ms,
            ..Default::default()
        };
        let now = 1_000_000;
        // Another node's runner checkpointed recently: leave it be.
        assert!(!may_take_over(
            Some(&cp("b/1", now - 1000)),
            0,
            now,
            "a",
            stale
        ));
        // It went quiet.
        assert!(may_take_over(
            Some(&cp("b/1", now - 31_000)),
            0,
            now,
            "a",
            stale
        ));
        // An earlier process of this node ran it: at once.
        assert!(may_take_over(
            Some(&cp("a/0", now - 10)),
            0,
            now,
            "a",
            stale
        ));
        assert!(may_take_over(
            Some(&cp("127.0.0.1:7233/x", now)),
            0,
            now,
            "127.0.0.1:7233",
            stale
        ));
        // No checkpoint yet: judged by the batch's start.
        assert!(!may_take_over(None, now - 1000, now, "a", stale));
        assert!(may_take_over(None, now - 40_000, now, "a", stale));
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
