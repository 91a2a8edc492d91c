//! `temper-loadtest schedules`: the cost of many schedules in one namespace. It creates N
//! schedules with an interval spec whose action starts the `noop` workflow (the generator's
//! own worker completes each run in its first workflow task), measures the server process's
//! CPU and memory over a window, then lists the runs the schedules started and compares each
//! run's start time with its nominal time.

mod actions;
pub(crate) mod procstat;
mod report;
mod run;

pub use actions::{ActionStats, Expected, Run, analyse, split_workflow_id};
pub use procstat::{ServerUsage, usage};
pub use report::SchedulesReport;
pub use run::run;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cli::{CliError, bounds, parse_duration, target_uri};

pub const MAX_SCHEDULES: u32 = 100_000;

/// The overlap policy of every schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Overlap {
    AllowAll,
    Skip,
}

#[derive(Debug, Args)]
pub struct SchedulesArgs {
    /// The server's frontend, HOST:PORT (plain HTTP/2, no TLS). Only this address is
    /// contacted.
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub target: String,
    /// Namespace of the schedules and their runs.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// How many schedules to create.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub schedules: u32,
    /// The interval of every schedule's spec (whole seconds, at least 1 s). Intervals are
    /// anchored at the unix epoch, so all schedules fire at the same instants.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Overlap policy of the schedules.
    /// Spread the schedules' phases evenly over the interval (whole seconds) instead of
    /// giving them all phase 0, so their actions do not all fall on the same second.
    #[arg(long)]
    pub spread: bool,
    #[arg(long, value_enum, default_value_t = Overlap::AllowAll)]
    pub overlap: Overlap,
    /// CreateSchedule calls in flight while creating.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub create_concurrency: usize,
    /// Wait after the last schedule is created before the window starts.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The measured window: CPU, memory, and every nominal time inside it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// After the window, wait this long before listing the runs: a run that has not started
    /// by then counts as missing.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,
    /// The server's process id, for its CPU time and memory from /proc/PID (same machine).
    /// Without it only the actions are measured.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Do not run a worker: the runs stay open with their first workflow task unanswered.
    #[arg(long)]
    pub no_worker: bool,
    /// Leave the schedules in place at the end (default: delete them).
    #[arg(long)]
    pub keep_schedules: bool,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Task queue of the runs (default: a fresh loadtest-sched-<random> one).
    #[arg(long)]
    pub task_queue: Option<String>,
    /// Worker pollers on the task queue.
    #[arg(long, default_value_t = 8)]
    pub pollers: usize,
    /// gRPC connections to the server, used round robin.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Send and accept uncompressed messages (gzip is on by default).
    #[arg(long)]
    pub no_gzip: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A checked `schedules`.
#[derive(Debug, Clone)]
pub struct SchedulesConfig {
    pub target: String,
    pub uri: String,
    pub namespace: String,
    pub schedules: u32,
    pub interval_s: i64,
    pub spread: bool,
    pub overlap: Overlap,
    pub create_concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub grace: Duration,
    pub server_pid: Option<u32>,
    pub worker: bool,
    pub keep_schedules: bool,
    pub report: Option<PathBuf>,
    pub task_queue: Option<String>,
    pub pollers: usize,
    pub connections: usize,
    pub gzip: bool,
    pub quiet: bool,
    /// The command line, for the report.
    pub command: String,
}

impl SchedulesArgs {
    pub fn check(&self, command: String) -> Result<SchedulesConfig, CliError> {
        let uri = target_uri(&self.target)?;
        if !(1..=MAX_SCHEDULES).contains(&self.schedules) {
            return Err(bounds("schedules", self.schedules, "must be 1 to 100000"));
        }
        let interval_s = self.interval.as_secs();
        if interval_s == 0 || self.interval.subsec_nanos() != 0 || interval_s > 86_400 {
            return Err(bounds(
                "interval",
                format!("{:?}", self.interval),
                "must be whole seconds, 1 s to 24 h",
            ));
        }
        if self.duration < Duration::from_secs(1) || self.duration > crate::cli::MAX_DURATION {
            return Err(bounds(
                "duration",
                format!("{:?}", self.duration),
                "must be 1 s to 1 h",
            ));
        }
        for (flag, d) in [("warmup", self.warmup), ("grace", self.grace)] {
            if d > Duration::from_secs(600) {
                return Err(bounds(flag, format!("{d:?}"), "at most 10m"));
            }
        }
        if !(1..=1024).contains(&self.create_concurrency) {
            return Err(bounds(
                "create-concurrency",
                self.create_concurrency,
                "must be 1 to 1024",
            ));
        }
        if !(1..=256).contains(&self.pollers) {
            return Err(bounds("pollers", self.pollers, "must be 1 to 256"));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(bounds("connections", self.connections, "must be 1 to 64"));
        }
        if self.namespace.is_empty() {
            return Err(bounds("namespace", "\"\"", "must not be empty"));
        }
        if matches!(&self.task_queue, Some(q) if q.is_empty()) {
            return Err(bounds("task-queue", "\"\"", "must not be empty"));
        }
        Ok(SchedulesConfig {
            target: self.target.clone(),
            uri,
            namespace: self.namespace.clone(),
            schedules: self.schedules,
            interval_s: i64::try_from(interval_s).expect("at most 86400"),
            spread: self.spread,
            overlap: self.overlap,
            create_concurrency: self.create_concurrency,
            warmup: self.warmup,
            duration: self.duration,
            grace: self.grace,
            server_pid: self.server_pid,
            worker: !self.no_worker,
            keep_schedules: self.keep_schedules,
            report: self.report.clone(),
            task_queue: self.task_queue.clone(),
            pollers: self.pollers,
            connections: self.connections,
            gzip: !self.no_gzip,
            quiet: self.quiet,
            command,
        })
    }
}
