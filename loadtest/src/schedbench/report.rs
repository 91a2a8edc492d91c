//! The `schedules` report: JSON (`--report`) and the table on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{ActionStats, Overlap, SchedulesConfig, ServerUsage};

#[derive(Debug, Clone, Serialize)]
pub struct SchedulesReport {
    /// The command line as given.
    pub command: String,
    pub target: String,
    pub namespace: String,
    pub task_queue: String,
    pub schedules: u32,
    pub interval_s: i64,
    pub overlap: &'static str,
    /// Whether the phases were spread over the interval (`--spread`).
    pub spread: bool,
    /// Whether the generator's worker completed the runs.
    pub worker: bool,
    pub created: u64,
    pub create_errors: BTreeMap<String, u64>,
    pub create_s: f64,
    pub creates_per_s: f64,
    /// The measured window, unix seconds (fractional).
    pub window_start_unix_s: f64,
    pub window_end_unix_s: f64,
    /// Distinct nominal times (of any schedule) inside the window.
    pub nominal_times: u64,
    /// The server process over the window (with `--server-pid`).
    pub server: Option<ServerUsage>,
    /// The generator's own CPU seconds over the whole run (it shares the machine).
    pub loadtest_cpu_s: Option<f64>,
    pub actions: ActionStats,
    /// Runs on the task queue when listed (inside and outside the window).
    pub runs_listed: u64,
    pub delete_errors: u64,
}

impl SchedulesReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &SchedulesConfig,
        task_queue: &str,
        created: u64,
        create_errors: BTreeMap<String, u64>,
        create_s: f64,
        window_ns: (i128, i128),
        nominal_times: u64,
        server: Option<ServerUsage>,
        loadtest_cpu_s: Option<f64>,
        actions: ActionStats,
        runs_listed: u64,
        delete_errors: u64,
    ) -> Self {
        Self {
            command: cfg.command.clone(),
            target: cfg.target.clone(),
            namespace: cfg.namespace.clone(),
            task_queue: task_queue.to_string(),
            schedules: cfg.schedules,
            interval_s: cfg.interval_s,
            overlap: match cfg.overlap {
                Overlap::AllowAll => "allow-all",
                Overlap::Skip => "skip",
            },
            spread: cfg.spread,
            worker: cfg.worker,
            created,
            create_errors,
            create_s: (create_s * 100.0).round() / 100.0,
            creates_per_s: if create_s > 0.0 {
                (created as f64 / create_s * 10.0).round() / 10.0
            } else {
                0.0
            },
            window_start_unix_s: window_ns.0 as f64 / 1e9,
            window_end_unix_s: window_ns.1 as f64 / 1e9,
            nominal_times,
            server,
            loadtest_cpu_s,
            actions,
            runs_listed,
            delete_errors,
        }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "command    {}", self.command);
        let _ = writeln!(
            s,
            "schedules  {} x every {} s{}, overlap {}, {}  target {}  namespace {}",
            self.schedules,
            self.interval_s,
            if self.spread {
                ", phases spread over the interval"
            } else {
                ""
            },
            self.overlap,
            if self.worker {
                "runs completed by the generator's worker"
            } else {
                "no worker (runs stay open)"
            },
            self.target,
            self.namespace
        );
        let _ = writeln!(
            s,
            "created    {} in {:.1} s ({:.1}/s), {} errors",
            self.created,
            self.create_s,
            self.creates_per_s,
            self.create_errors.values().sum::<u64>()
        );
        for (why, n) in &self.create_errors {
            let _ = writeln!(s, "{n:>10}  {why}");
        }
        let _ = writeln!(
            s,
            "window     {:.1} s, {} nominal times",
            self.window_end_unix_s - self.window_start_unix_s,
            self.nominal_times
        );
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}%"));
        if let Some(u) = &self.server {
            let _ = writeln!(
                s,
                "\nserver pid {}  CPU (percent of one core)  overall {}  idle {} over {:.0} s  busy {} over {:.0} s  ({:.1} CPU-s)",
                u.pid,
                pct(Some(u.cpu_pct)),
                pct(u.idle_cpu_pct),
                u.idle_s,
                pct(u.busy_cpu_pct),
                u.busy_s,
                u.cpu_s
            );
            let _ = writeln!(
                s,
                "server RSS (MiB)  start {:.1}  end {:.1}  max {:.1}  peak since start (VmHWM) {:.1}",
                u.rss_start_mib, u.rss_end_mib, u.rss_max_mib, u.rss_peak_mib
            );
        }
        if let Some(own) = self.loadtest_cpu_s {
            let _ = writeln!(s, "generator CPU {own:.1} s over the whole run");
        }
        let a = &self.actions;
        let _ = writeln!(
            s,
            "\nactions    expected {}  taken {}  missing {}  duplicates {}  listed twice {}  unexpected {}  late > 1 s {}  early {}  not completed {}",
            a.expected,
            a.taken,
            a.missing,
            a.duplicates,
            a.listed_twice,
            a.unexpected,
            a.late_over_1s,
            a.early,
            a.not_completed
        );
        let l = &a.lateness_ms;
        let _ = writeln!(
            s,
            "{:<36} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "lateness (ms)", "count", "p50", "p90", "p99", "max"
        );
        let _ = writeln!(
            s,
            "{:<36} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            "start time - nominal time", l.count, l.p50, l.p90, l.p99, l.max
        );
        let _ = writeln!(
            s,
            "\nruns listed {}  schedule delete errors {}",
            self.runs_listed, self.delete_errors
        );
        s
    }
}
