//! What `scale` reports: one row per count of open workflows.

use std::fmt::Write as _;

use serde::Serialize;

use super::server::Gauges;
use crate::stats::LatencySummary;

#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// The extra `start-dev` arguments every server ran with.
    pub server_args: Vec<String>,
    pub counts: Vec<CountReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CountReport {
    pub open_workflows: u64,
    /// Starting them and answering their first workflow tasks.
    pub fill_s: f64,
    pub fill_per_s: f64,
    /// From spawning the process to its health endpoint saying ready.
    pub ready_first_ms: f64,
    pub ready_after_restart_ms: f64,
    /// RSS after the first noop run, before any open workflow.
    pub rss_empty_mib: f64,
    pub rss_fill_peak_mib: f64,
    /// After the fill, the higher of before and after the noop run.
    pub rss_filled_mib: f64,
    /// Right after the restart was ready, and after the noop run that followed.
    pub rss_restarted_mib: f64,
    pub rss_restarted_noop_mib: f64,
    /// While the due timers fired and their workflows completed.
    pub rss_fire_peak_mib: f64,
    /// Growth of the store's files over the fill, per open workflow.
    pub disk_bytes_per_workflow: f64,
    pub noop_p99_empty_ms: f64,
    pub noop_p99_filled_ms: f64,
    pub noop_p99_restarted_ms: f64,
    /// Workflows whose timers came due at one instant after the restart.
    pub due: u64,
    pub due_completed: u64,
    pub all_due_completed: bool,
    /// How late those timers fired, by the server's event times.
    pub timer_lateness_ms: LatencySummary,
    /// The server's memory gauges after the fill, and after the restart's noop run.
    pub gauges_filled: Gauges,
    pub gauges_restarted: Gauges,
}

impl ScaleReport {
    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        if !self.server_args.is_empty() {
            let _ = writeln!(s, "server arguments: {}", self.server_args.join(" "));
        }
        let _ = writeln!(
            s,
            "| open workflows | fill /s | RSS MiB: empty / fill peak / filled / restarted / after noop / firing peak | disk B per workflow | timers in memory / cache MiB, filled | same, restarted | ready after restart ms | noop p99 ms: empty / filled / restarted | due timers fired | lateness ms p50 / p99 / max |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        for c in &self.counts {
            let l = &c.timer_lateness_ms;
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {:.0} | {} | {} | {:.0} | {:.1} / {:.1} / {:.1} | {}/{} | {:.0} / {:.0} / {:.0} |",
                c.open_workflows,
                c.fill_per_s,
                c.rss_empty_mib,
                c.rss_fill_peak_mib,
                c.rss_filled_mib,
                c.rss_restarted_mib,
                c.rss_restarted_noop_mib,
                c.rss_fire_peak_mib,
                c.disk_bytes_per_workflow,
                c.gauges_filled.cell(),
                c.gauges_restarted.cell(),
                c.ready_after_restart_ms,
                c.noop_p99_empty_ms,
                c.noop_p99_filled_ms,
                c.noop_p99_restarted_ms,
                c.due_completed,
                c.due,
                l.p50,
                l.p99,
                l.max
            );
        }
        s
    }
}

impl Gauges {
    fn cell(&self) -> String {
        let show =
            |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
        format!(
            "{} / {}",
            show(self.timers_in_memory, 0),
            show(self.cache_mib, 1)
        )
    }
}
