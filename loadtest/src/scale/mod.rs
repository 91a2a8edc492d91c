//! `temper-loadtest scale`: memory against the number of open workflows. For each count N
//! it starts a fresh `temper server start-dev` on a SQLite file, measures new `noop`
//! workflows' latency on the empty store, opens N workflows that each wait on a timer,
//! measures the server's RSS while filling and after, the disk bytes per workflow and the
//! `noop` latency with N open, restarts the server (time until it is ready, RSS and latency
//! again), then lets the last `--due` of the N workflows' timers come due at one instant and
//! measures how late they fire. The other workflows wait an hour.
//!
//! It runs the server itself (the binary given with `--server-bin`, on 127.0.0.1 only) so it
//! can restart it; see `docs/performance.md#open-workflows-and-memory`.

mod report;
mod run;
mod server;

pub use report::{CountReport, ScaleReport};
pub use run::run;
pub use server::Gauges;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{CliError, bounds, parse_duration};

pub const MAX_COUNT: u64 = 10_000_000;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The temper binary to run (`server start-dev` on a SQLite file in --work-dir).
    #[arg(long, value_name = "PATH")]
    pub server_bin: PathBuf,
    /// Counts of open workflows to measure, each on a fresh store, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    pub counts: Vec<u64>,
    /// How many of each count's workflows have their timer come due at one instant after
    /// the restart (the last ones started); the others wait an hour, and their fill rate
    /// sets the instant. Default: half the count, at most 100,000.
    #[arg(long, value_name = "N")]
    pub due: Option<u64>,
    /// StartWorkflowExecution calls in flight while filling.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub fill_concurrency: usize,
    /// New `noop` workflows per second while latency is measured.
    #[arg(long, default_value_t = 500.0)]
    pub noop_rate: f64,
    /// How long each `noop` measurement lasts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub noop_duration: Duration,
    /// Added to the estimate of when the measurements after the fill end, to place the due
    /// instant after them.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub fire_margin: Duration,
    /// An extra argument for `temper server start-dev` (repeat for several), e.g.
    /// `--server-arg=--dynamic-config-value --server-arg=temper.history.cacheBudgetMib=16`.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Where the stores go (default: a new temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A checked `scale`.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    pub server_bin: PathBuf,
    pub counts: Vec<u64>,
    /// `None`: half of each count, at most 100,000.
    pub due: Option<u64>,
    pub fill_concurrency: usize,
    pub noop_rate: f64,
    pub noop_duration: Duration,
    pub fire_margin: Duration,
    pub server_args: Vec<String>,
    pub work_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub quiet: bool,
}

impl ScaleArgs {
    pub fn check(&self) -> Result<ScaleConfig, CliError> {
        if self.counts.is_empty() {
            return Err(bounds("counts", "", "give at least one count"));
        }
        if let Some(c) = self.counts.iter().find(|c| !(1..=MAX_COUNT).contains(*c)) {
            return Err(bounds("counts", c, "each must be 1 to 10000000"));
        }
        if !(1..=1024).contains(&self.fill_concurrency) {
            return Err(bounds(
                "fill-concurrency",
                self.fill_concurrency,
                "must be 1 to 1024",
            ));
        }
        if !(self.noop_rate.is_finite() && self.noop_rate > 0.0 && self.noop_rate <= 10_000.0) {
            return Err(bounds(
                "noop-rate",
                self.noop_rate,
                "must be above 0 and at most 10000",
            ));
        }
        if self.noop_duration.is_zero() || self.noop_duration > Duration::from_secs(600) {
            return Err(bounds(
                "noop-duration",
                format!("{:?}", self.noop_duration),
                "must be above 0 and at most 10m",
            ));
        }
        if self.fire_margin > Duration::from_secs(3600) {
            return Err(bounds(
                "fire-margin",
                format!("{:?}", self.fire_margin),
                "must be at most 1h",
            ));
        }
        Ok(ScaleConfig {
            server_bin: self.server_bin.clone(),
            counts: self.counts.clone(),
            due: self.due,
            fill_concurrency: self.fill_concurrency,
            noop_rate: self.noop_rate,
            noop_duration: self.noop_duration,
            fire_margin: self.fire_margin,
            server_args: self.server_args.clone(),
            work_dir: self.work_dir.clone(),
            report: self.report.clone(),
            quiet: self.quiet,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ScaleArgs,
    }

    fn check(extra: &[&str]) -> Result<ScaleConfig, CliError> {
        let argv = ["scale", "--server-bin", "temper"]
            .into_iter()
            .chain(extra.iter().copied());
        Wrap::try_parse_from(argv).expect("parses").args.check()
    }

    #[test]
    fn counts_and_server_arguments_are_read_and_bounded() {
        let cfg = check(&[
            "--counts",
            "10,20000",
            "--server-arg=--dynamic-config-value",
            "--server-arg=temper.history.cacheBudgetMib=4",
        ])
        .expect("valid");
        assert_eq!(cfg.counts, vec![10, 20_000]);
        assert_eq!(
            cfg.server_args,
            vec![
                "--dynamic-config-value".to_string(),
                "temper.history.cacheBudgetMib=4".to_string()
            ]
        );
        assert!(check(&["--counts", "0"]).is_err());
        assert!(check(&["--counts", "10000001"]).is_err());
        assert!(check(&["--fill-concurrency", "0"]).is_err());
        assert!(check(&["--noop-rate", "0"]).is_err());
        assert!(check(&["--noop-duration", "0s"]).is_err());
    }
}
