//! What a run measures. Counters for the live progress line cover every workflow; the
//! report's numbers cover only measured ones, those whose intended start time falls after
//! the warm-up.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stats::Histo;

/// Distinct failure reasons kept; the rest are counted under one "other" line.
const MAX_FAILURE_REASONS: usize = 32;

/// One namespace's measured numbers.
#[derive(Debug, Default, Clone)]
pub struct NamespaceMetrics {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub start_errors: u64,
    pub state_transitions: u64,
    pub end_to_end: Histo,
    /// StartWorkflowExecution calls (answered or refused), as the starter timed them.
    pub start_rpc: Histo,
    pub workflow_task_schedule_to_start: Histo,
    pub activity_task_schedule_to_start: Histo,
}

/// Where a measurement belongs: its namespace and, when the workflow was started with one,
/// its fairness key.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub namespace: &'a str,
    pub fairness_key: Option<&'a str>,
}

impl<'a> Group<'a> {
    /// A namespace, no fairness key.
    pub fn ns(namespace: &'a str) -> Self {
        Self {
            namespace,
            fairness_key: None,
        }
    }
}

/// Everything measured, as the report reads it.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    pub namespaces: BTreeMap<String, NamespaceMetrics>,
    /// The same numbers by fairness key (only workflows started with one); every such
    /// workflow is counted in its namespace too.
    pub fairness_keys: BTreeMap<String, NamespaceMetrics>,
    pub start_rpc: Histo,
    pub workflow_task_respond_rpc: Histo,
    /// How late each timer fired: its TimerFired event's time against its TimerStarted
    /// event's time plus its duration (both the server's clock).
    pub timer_lateness: Histo,
    pub failures: BTreeMap<String, u64>,
    /// When the last measured workflow ended (completed or failed).
    pub last_end: Option<Instant>,
}

impl Measured {
    pub fn total(&self) -> NamespaceMetrics {
        let mut t = NamespaceMetrics::default();
        for m in self.namespaces.values() {
            t.started += m.started;
            t.completed += m.completed;
            t.failed += m.failed;
            t.start_errors += m.start_errors;
            t.state_transitions += m.state_transitions;
            t.end_to_end.merge(&m.end_to_end);
            t.start_rpc.merge(&m.start_rpc);
            t.workflow_task_schedule_to_start
                .merge(&m.workflow_task_schedule_to_start);
            t.activity_task_schedule_to_start
                .merge(&m.activity_task_schedule_to_start);
        }
        t
    }
}

/// All-time counters for the progress line (warm-up included).
#[derive(Debug, Default)]
pub struct Live {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub start_errors: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Extra GetWorkflowExecutionHistory pages read (paged or uncached sticky histories).
    pub history_pages: AtomicU64,
    /// Sticky workflow tasks whose partial history was completed from the cache.
    pub sticky_hits: AtomicU64,
    /// Workflow tasks whose completion the server accepted.
    pub workflow_tasks: AtomicU64,
}

/// A progress line's view.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LiveSnapshot {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub start_errors: u64,
    pub poll_errors: u64,
    /// End-to-end p50 / p99 of workflows that completed since the previous snapshot.
    pub interval_p50_ms: f64,
    pub interval_p99_ms: f64,
}

pub struct Metrics {
    measure_start: Instant,
    pub live: Live,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    measured: Measured,
    interval_end_to_end: Histo,
}

impl Metrics {
    /// Workflows intended to start at or after `measure_start` are measured.
    pub fn new(measure_start: Instant) -> Self {
        Self {
            measure_start,
            live: Live::default(),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn measure_start(&self) -> Instant {
        self.measure_start
    }

    pub fn is_measured(&self, at: Instant) -> bool {
        at >= self.measure_start
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding the lock cannot leave the numbers half-updated in a way that
        // matters more than losing them, so a poisoned lock is used as is.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    pub fn start_rpc(&self, g: Group<'_>, measured: bool, latency: Duration) {
        if measured {
            self.with(|i| {
                i.measured.start_rpc.record(latency);
                each_entry(&mut i.measured, g, |m| m.start_rpc.record(latency));
            });
        }
    }

    pub fn started(&self, g: Group<'_>, measured: bool) {
        self.live.started.fetch_add(1, Ordering::Relaxed);
        if measured {
            self.with(|i| each_entry(&mut i.measured, g, |m| m.started += 1));
        }
    }

    pub fn start_error(&self, g: Group<'_>, measured: bool, reason: String) {
        self.live.start_errors.fetch_add(1, Ordering::Relaxed);
        if measured {
            self.with(|i| {
                each_entry(&mut i.measured, g, |m| m.start_errors += 1);
                add_failure(&mut i.measured.failures, format!("start: {reason}"));
            });
        }
    }

    pub fn completed(&self, g: Group<'_>, measured: bool, end_to_end: Duration, events: u64) {
        self.live.completed.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        self.with(|i| {
            i.interval_end_to_end.record(end_to_end);
            if measured {
                each_entry(&mut i.measured, g, |m| {
                    m.completed += 1;
                    m.state_transitions += events;
                    m.end_to_end.record(end_to_end);
                });
                i.measured.last_end = Some(now);
            }
        });
    }

    pub fn failed(&self, g: Group<'_>, measured: bool, reason: String) {
        self.live.failed.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if measured {
            self.with(|i| {
                each_entry(&mut i.measured, g, |m| m.failed += 1);
                add_failure(&mut i.measured.failures, reason);
                i.measured.last_end = Some(now);
            });
        }
    }

    /// A workflow task was answered: how long it waited in the queue (from the server's
    /// timestamps) and how long the answer took.
    pub fn workflow_task(
        &self,
        g: Group<'_>,
        schedule_to_start: Option<Duration>,
        respond: Duration,
    ) {
        if !self.is_measured(Instant::now()) {
            return;
        }
        self.with(|i| {
            i.measured.workflow_task_respond_rpc.record(respond);
            if let Some(d) = schedule_to_start {
                each_entry(&mut i.measured, g, |m| {
                    m.workflow_task_schedule_to_start.record(d);
                });
            }
        });
    }

    /// A timer fired this late (see [`Measured::timer_lateness`]).
    pub fn timer_fired(&self, lateness: Duration) {
        if self.is_measured(Instant::now()) {
            self.with(|i| i.measured.timer_lateness.record(lateness));
        }
    }

    pub fn activity_task(&self, g: Group<'_>, schedule_to_start: Option<Duration>) {
        if !self.is_measured(Instant::now()) {
            return;
        }
        if let Some(d) = schedule_to_start {
            self.with(|i| {
                each_entry(&mut i.measured, g, |m| {
                    m.activity_task_schedule_to_start.record(d);
                });
            });
        }
    }

    pub fn poll_error(&self) {
        self.live.poll_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The live counters, and the interval latency since the last call (which resets it).
    pub fn snapshot(&self) -> LiveSnapshot {
        let (p50, p99) = self.with(|i| {
            let h = &mut i.interval_end_to_end;
            let r = if h.count() == 0 {
                (0.0, 0.0)
            } else {
                (h.quantile_ms(0.5), h.quantile_ms(0.99))
            };
            h.reset();
            r
        });
        LiveSnapshot {
            started: self.live.started.load(Ordering::Relaxed),
            completed: self.live.completed.load(Ordering::Relaxed),
            failed: self.live.failed.load(Ordering::Relaxed),
            start_errors: self.live.start_errors.load(Ordering::Relaxed),
            poll_errors: self.live.poll_errors.load(Ordering::Relaxed),
            interval_p50_ms: p50,
            interval_p99_ms: p99,
        }
    }

    /// Make sure every namespace (and fairness key) of the run shows in the report, even one
    /// that got nothing.
    pub fn register(&self, g: Group<'_>) {
        self.with(|i| each_entry(&mut i.measured, g, |_| {}));
    }

    pub fn measured(&self) -> Measured {
        self.with(|i| i.measured.clone())
    }
}

fn entry<'a>(
    map: &'a mut BTreeMap<String, NamespaceMetrics>,
    name: &str,
) -> &'a mut NamespaceMetrics {
    if !map.contains_key(name) {
        map.insert(name.to_string(), NamespaceMetrics::default());
    }
    map.get_mut(name).expect("inserted above")
}

/// Apply `f` to the group's namespace entry and, if it has one, its fairness key's.
fn each_entry(m: &mut Measured, g: Group<'_>, f: impl Fn(&mut NamespaceMetrics)) {
    f(entry(&mut m.namespaces, g.namespace));
    if let Some(key) = g.fairness_key {
        f(entry(&mut m.fairness_keys, key));
    }
}

fn add_failure(failures: &mut BTreeMap<String, u64>, reason: String) {
    if failures.len() >= MAX_FAILURE_REASONS && !failures.contains_key(&reason) {
        *failures.entry("other reasons".to_string()).or_default() += 1;
    } else {
        *failures.entry(reason).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_left_out_of_the_measured_numbers() {
        let t0 = Instant::now();
        let m = Metrics::new(t0 + Duration::from_secs(5));
        assert!(!m.is_measured(t0));
        m.started(Group::ns("a"), false);
        m.completed(Group::ns("a"), false, Duration::from_millis(3), 4);
        m.started(Group::ns("a"), true);
        m.completed(Group::ns("a"), true, Duration::from_millis(7), 4);
        m.started(Group::ns("b"), true);
        m.failed(Group::ns("b"), true, "boom".to_string());
        let live = m.snapshot();
        assert_eq!((live.started, live.completed, live.failed), (3, 2, 1));
        let got = m.measured();
        let total = got.total();
        assert_eq!((total.started, total.completed, total.failed), (2, 1, 1));
        assert_eq!(total.state_transitions, 4);
        assert_eq!(total.end_to_end.count(), 1);
        assert_eq!(got.failures.get("boom"), Some(&1));
        assert_eq!(got.namespaces["a"].completed, 1);
        assert_eq!(got.namespaces["b"].failed, 1);
    }

    #[test]
    fn fairness_keys_are_counted_apart_and_in_their_namespace() {
        let m = Metrics::new(Instant::now());
        let a = Group {
            namespace: "default",
            fairness_key: Some("a"),
        };
        let b = Group {
            fairness_key: Some("b"),
            ..a
        };
        m.register(a);
        m.register(b);
        m.started(a, true);
        m.completed(a, true, Duration::from_millis(9), 5);
        m.activity_task(a, Some(Duration::from_millis(8)));
        m.started(b, true);
        m.completed(b, true, Duration::from_millis(2), 5);
        m.activity_task(b, Some(Duration::from_millis(1)));
        let got = m.measured();
        assert_eq!(got.namespaces.len(), 1);
        assert_eq!(got.namespaces["default"].completed, 2);
        assert_eq!(got.total().completed, 2, "a key does not count twice");
        let (ka, kb) = (&got.fairness_keys["a"], &got.fairness_keys["b"]);
        assert_eq!((ka.completed, kb.completed), (1, 1));
        assert!((ka.activity_task_schedule_to_start.quantile_ms(0.5) - 8.0).abs() < 0.01);
        assert!((kb.end_to_end.quantile_ms(0.5) - 2.0).abs() < 0.01);
    }

    #[test]
    fn snapshot_resets_the_interval_latency() {
        let m = Metrics::new(Instant::now());
        m.completed(Group::ns("a"), true, Duration::from_millis(10), 1);
        let s = m.snapshot();
        assert!((s.interval_p99_ms - 10.0).abs() < 0.02, "{s:?}");
        assert_eq!(m.snapshot().interval_p99_ms, 0.0);
    }

    #[test]
    fn failure_reasons_are_bounded() {
        let m = Metrics::new(Instant::now());
        for i in 0..100 {
            m.failed(Group::ns("a"), true, format!("reason {i}"));
        }
        let f = m.measured().failures;
        assert!(f.len() <= MAX_FAILURE_REASONS + 1);
        assert_eq!(f.values().sum::<u64>(), 100);
    }
}
