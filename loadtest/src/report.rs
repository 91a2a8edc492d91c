//! The end of a run: the JSON report and the table printed on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Length, Load, RunConfig};
use std::sync::atomic::Ordering;

use crate::metrics::{Live, Measured, NamespaceMetrics};
use crate::stats::LatencySummary;

/// The JSON report. `latency_ms` is the end-to-end workflow latency; the other histograms sit
/// beside it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub options: BTreeMap<String, String>,
    pub target: String,
    pub task_queue: String,
    pub sticky: bool,
    /// `open` (rate) or `closed` (concurrency).
    pub mode: &'static str,
    pub rate: Option<f64>,
    pub concurrency: Option<u32>,
    pub iterations: Option<u64>,
    pub warmup_s: f64,
    /// Workflows whose start the server acknowledged (after the warm-up).
    pub started: u64,
    pub completed: u64,
    /// Failed workflows: failed themselves, rejected, or unfinished at the drain timeout.
    pub failed: u64,
    /// Start RPCs that failed (those workflows never started).
    pub start_errors: u64,
    /// From the end of the warm-up until the last measured workflow ended.
    pub duration_s: f64,
    pub workflows_per_s: f64,
    pub started_per_s: f64,
    pub failed_per_s: f64,
    /// History events of the completed workflows (children included).
    pub state_transitions: u64,
    pub state_transitions_per_s: f64,
    /// End-to-end latency: from the intended start to the acknowledged completion.
    pub latency_ms: LatencySummary,
    pub start_latency_ms: LatencySummary,
    pub workflow_task_schedule_to_start_ms: LatencySummary,
    pub activity_task_schedule_to_start_ms: LatencySummary,
    pub workflow_task_respond_ms: LatencySummary,
    /// How late timers fired (server clock), for scenarios with timers.
    pub timer_lateness_ms: LatencySummary,
    pub namespaces: BTreeMap<String, NamespaceReport>,
    /// The same numbers by fairness key (fairness-mix); absent when no workflow had one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fairness_keys: BTreeMap<String, NamespaceReport>,
    pub failures: BTreeMap<String, u64>,
    pub poll_errors: u64,
    /// Counts over the whole run, warm-up included (for costs per workflow, such as the
    /// server's CPU time over the run).
    pub including_warmup: Totals,
    /// History pages read with GetWorkflowExecutionHistory beyond what polls carried.
    pub history_pages_fetched: u64,
    /// Sticky tasks answered from the history cache.
    pub sticky_cache_hits: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Totals {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub start_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceReport {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub start_errors: u64,
    pub workflows_per_s: f64,
    pub state_transitions_per_s: f64,
    pub latency_ms: LatencySummary,
    pub start_latency_ms: LatencySummary,
    pub workflow_task_schedule_to_start_ms: LatencySummary,
    pub activity_task_schedule_to_start_ms: LatencySummary,
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        ((n as f64 / secs) * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn ns_report(m: &NamespaceMetrics, secs: f64) -> NamespaceReport {
    NamespaceReport {
        started: m.started,
        completed: m.completed,
        failed: m.failed,
        start_errors: m.start_errors,
        workflows_per_s: per_s(m.completed, secs),
        state_transitions_per_s: per_s(m.state_transitions, secs),
        latency_ms: m.end_to_end.summary(),
        start_latency_ms: m.start_rpc.summary(),
        workflow_task_schedule_to_start_ms: m.workflow_task_schedule_to_start.summary(),
        activity_task_schedule_to_start_ms: m.activity_task_schedule_to_start.summary(),
    }
}

impl Report {
    pub fn new(
        cfg: &RunConfig,
        task_queue: &str,
        measured: &Measured,
        window: Duration,
        live: &Live,
    ) -> Self {
        let secs = (window.as_secs_f64() * 1000.0).round() / 1000.0;
        let t = measured.total();
        Report {
            scenario: cfg.plan.scenario.clone(),
            options: cfg.plan.options.clone(),
            target: cfg.target.clone(),
            task_queue: task_queue.to_string(),
            sticky: cfg.sticky,
            mode: match cfg.load {
                Load::Rate(_) => "open",
                Load::Concurrency(_) => "closed",
            },
            rate: match cfg.load {
                Load::Rate(r) => Some(r),
                Load::Concurrency(_) => None,
            },
            concurrency: match cfg.load {
                Load::Concurrency(c) => Some(c),
                Load::Rate(_) => None,
            },
            iterations: match cfg.length {
                Length::Iterations(n) => Some(n),
                Length::Duration(_) => None,
            },
            warmup_s: cfg.warmup.as_secs_f64(),
            started: t.started,
            completed: t.completed,
            failed: t.failed,
            start_errors: t.start_errors,
            duration_s: secs,
            workflows_per_s: per_s(t.completed, secs),
            started_per_s: per_s(t.started, secs),
            failed_per_s: per_s(t.failed, secs),
            state_transitions: t.state_transitions,
            state_transitions_per_s: per_s(t.state_transitions, secs),
            latency_ms: t.end_to_end.summary(),
            start_latency_ms: measured.start_rpc.summary(),
            workflow_task_schedule_to_start_ms: t.workflow_task_schedule_to_start.summary(),
            activity_task_schedule_to_start_ms: t.activity_task_schedule_to_start.summary(),
            workflow_task_respond_ms: measured.workflow_task_respond_rpc.summary(),
            timer_lateness_ms: measured.timer_lateness.summary(),
            namespaces: measured
                .namespaces
                .iter()
                .map(|(k, v)| (k.clone(), ns_report(v, secs)))
                .collect(),
            fairness_keys: measured
                .fairness_keys
                .iter()
                .map(|(k, v)| (k.clone(), ns_report(v, secs)))
                .collect(),
            failures: measured.failures.clone(),
            poll_errors: live.poll_errors.load(Ordering::Relaxed),
            including_warmup: Totals {
                started: live.started.load(Ordering::Relaxed),
                completed: live.completed.load(Ordering::Relaxed),
                failed: live.failed.load(Ordering::Relaxed),
                start_errors: live.start_errors.load(Ordering::Relaxed),
            },
            history_pages_fetched: live.history_pages.load(Ordering::Relaxed),
            sticky_cache_hits: live.sticky_hits.load(Ordering::Relaxed),
        }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let opts: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let load = match (self.rate, self.concurrency) {
            (Some(r), _) => format!("open loop, {r} starts/s"),
            (_, Some(c)) => format!("closed loop, {c} in flight"),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "scenario {}{}  target {}  {load}{}",
            self.scenario,
            if opts.is_empty() {
                String::new()
            } else {
                format!(" ({})", opts.join(", "))
            },
            self.target,
            if self.sticky { "  sticky" } else { "" },
        );
        let _ = writeln!(
            s,
            "workflows  started {}  completed {}  failed {}  start errors {}  in {:.2} s",
            self.started, self.completed, self.failed, self.start_errors, self.duration_s
        );
        let _ = writeln!(
            s,
            "throughput {:.1} workflows/s  {:.1} state transitions/s  (started {:.1}/s, failed {:.1}/s)",
            self.workflows_per_s,
            self.state_transitions_per_s,
            self.started_per_s,
            self.failed_per_s
        );
        let _ = writeln!(
            s,
            "\n{:<36} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "max"
        );
        let mut row = |name: &str, l: &LatencySummary| {
            let _ = writeln!(
                s,
                "{name:<36} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                l.count, l.p50, l.p90, l.p99, l.max
            );
        };
        row("end to end", &self.latency_ms);
        row("start RPC", &self.start_latency_ms);
        row(
            "workflow task schedule-to-start",
            &self.workflow_task_schedule_to_start_ms,
        );
        row(
            "activity task schedule-to-start",
            &self.activity_task_schedule_to_start_ms,
        );
        row("workflow task respond RPC", &self.workflow_task_respond_ms);
        if self.namespaces.len() > 1 {
            write_groups(
                &mut s,
                ("namespace", 20),
                10,
                &self.namespaces,
                &[("wft s2s p99", |n| n.workflow_task_schedule_to_start_ms.p99)],
            );
        }
        if !self.fairness_keys.is_empty() {
            write_groups(
                &mut s,
                ("fairness key", 14),
                8,
                &self.fairness_keys,
                &[
                    ("act s2s p50", |n| n.activity_task_schedule_to_start_ms.p50),
                    ("act s2s p99", |n| n.activity_task_schedule_to_start_ms.p99),
                ],
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "\nfailures");
            for (why, n) in &self.failures {
                let _ = writeln!(s, "{n:>8}  {why}");
            }
        }
        if self.poll_errors > 0 {
            let _ = writeln!(s, "\npoll / history errors: {}", self.poll_errors);
        }
        if self.sticky || self.history_pages_fetched > 0 {
            let _ = writeln!(
                s,
                "\nhistory pages fetched {}  sticky cache hits {}",
                self.history_pages_fetched, self.sticky_cache_hits
            );
        }
        s
    }
}

/// A column of a group table beyond the shared ones: its heading and its value.
type Column = (&'static str, fn(&NamespaceReport) -> f64);

/// A table with a row per group (namespace or fairness key): the counts, the throughput and
/// the end-to-end latency, then `extra` columns. `heading` names the first column and gives
/// its width; `rate_width` is the width of the wf/s column.
fn write_groups(
    s: &mut String,
    (heading, width): (&str, usize),
    rate_width: usize,
    groups: &BTreeMap<String, NamespaceReport>,
    extra: &[Column],
) {
    let _ = write!(
        s,
        "\n{heading:<width$} {:>8} {:>9} {:>7} {:>rate_width$} {:>9} {:>9}",
        "started", "completed", "failed", "wf/s", "e2e p50", "e2e p99"
    );
    for (column, _) in extra {
        let _ = write!(s, " {column:>12}");
    }
    s.push('\n');
    for (name, n) in groups {
        let _ = write!(
            s,
            "{name:<width$} {:>8} {:>9} {:>7} {:>rate_width$.1} {:>9.2} {:>9.2}",
            n.started, n.completed, n.failed, n.workflows_per_s, n.latency_ms.p50, n.latency_ms.p99
        );
        for (_, value) in extra {
            let _ = write!(s, " {:>12.2}", value(n));
        }
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50: f64, p99: f64) -> LatencySummary {
        LatencySummary {
            count: 3,
            p50,
            p90: p99,
            p99,
            max: p99,
            mean: p50,
        }
    }

    fn group(completed: u64, p50: f64) -> NamespaceReport {
        NamespaceReport {
            started: completed + 1,
            completed,
            failed: 1,
            start_errors: 0,
            workflows_per_s: completed as f64 / 2.0,
            state_transitions_per_s: completed as f64 * 5.0,
            latency_ms: latency(p50, p50 * 3.0),
            start_latency_ms: latency(p50 / 10.0, p50 / 3.0),
            workflow_task_schedule_to_start_ms: latency(p50 / 4.0, p50 / 2.0),
            activity_task_schedule_to_start_ms: latency(p50 / 8.0, p50 / 5.0),
        }
    }

    #[test]
    fn the_table_has_a_row_per_namespace_and_per_fairness_key() {
        let groups = |names: [&str; 2]| {
            names
                .iter()
                .zip([group(30, 12.5), group(10, 4.25)])
                .map(|(n, g)| (n.to_string(), g))
                .collect::<BTreeMap<_, _>>()
        };
        let report = Report {
            scenario: "fairness-mix".into(),
            options: [("flood_factor".to_string(), "3".to_string())].into(),
            target: "127.0.0.1:7233".into(),
            task_queue: "tq".into(),
            sticky: false,
            mode: "open",
            rate: Some(20.0),
            concurrency: None,
            iterations: None,
            warmup_s: 0.0,
            started: 42,
            completed: 40,
            failed: 2,
            start_errors: 0,
            duration_s: 2.0,
            workflows_per_s: 20.0,
            started_per_s: 21.0,
            failed_per_s: 1.0,
            state_transitions: 400,
            state_transitions_per_s: 200.0,
            latency_ms: latency(10.0, 30.0),
            start_latency_ms: latency(1.0, 2.0),
            workflow_task_schedule_to_start_ms: latency(2.0, 4.0),
            activity_task_schedule_to_start_ms: latency(3.0, 6.0),
            workflow_task_respond_ms: latency(0.5, 1.5),
            timer_lateness_ms: LatencySummary::default(),
            namespaces: groups(["loadtest-ns-0", "loadtest-ns-1"]),
            fairness_keys: groups(["a", "b"]),
            failures: [("timed out".to_string(), 2)].into(),
            poll_errors: 0,
            including_warmup: Totals {
                started: 42,
                completed: 40,
                failed: 2,
                start_errors: 0,
            },
            history_pages_fetched: 0,
            sticky_cache_hits: 0,
        };
        let expected = concat!(
            "\nnamespace             started completed  failed       wf/s   e2e p50   e2e p99  wft s2s p99\n",
            "loadtest-ns-0              31        30       1       15.0     12.50     37.50         6.25\n",
            "loadtest-ns-1              11        10       1        5.0      4.25     12.75         2.12\n",
            "\nfairness key    started completed  failed     wf/s   e2e p50   e2e p99  act s2s p50  act s2s p99\n",
            "a                    31        30       1     15.0     12.50     37.50         1.56         2.50\n",
            "b                    11        10       1      5.0      4.25     12.75         0.53         0.85\n",
            "\nfailures\n",
        );
        let table = report.table();
        assert!(table.contains(expected), "{table}");
    }
}
