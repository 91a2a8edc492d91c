//! The command line: `run`, `schedules`, `fuzz`, `scale`, `soak` and `list-scenarios`, with every value checked against hard
//! bounds before anything is sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::scenario::{self, Plan, RUN_OPTIONS, ScenarioError};

pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_ITERATIONS: u64 = 10_000_000;
pub const MAX_WARMUP: Duration = Duration::from_secs(600);
pub const MAX_DRAIN: Duration = Duration::from_secs(600);
pub const MAX_RATE: f64 = 100_000.0;
pub const MAX_CONCURRENCY: u32 = 100_000;

#[derive(Debug, Parser)]
#[command(
    name = "temper-loadtest",
    about = "Load generator for servers that speak the Temporal API (temper, Temporal)",
    long_about = "Load generator for servers that speak the Temporal API (temper, Temporal).\n\n\
        It is the starter and the worker at once: raw gRPC poll loops answer the scenario's \
        workflow and activity tasks, so no SDK sits in the hot path."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once from the command line; boxing the larger subcommand would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate load against a server and report throughput and latency.
    Run(RunArgs),
    /// List the scenarios and their options.
    ListScenarios,
    /// Create many schedules and measure the server's CPU and memory and how late each
    /// action starts.
    Schedules(crate::schedbench::SchedulesArgs),
    /// Send arbitrary and mutated requests to every WorkflowService and OperatorService
    /// RPC; fail on any INTERNAL, UNKNOWN or dropped connection, or an unhealthy server.
    Fuzz(crate::fuzz::FuzzArgs),
    /// Open many workflows that wait on timers in a temper server this command runs, and
    /// measure its memory, disk, restart time, latency and timer lateness against their
    /// number.
    Scale(crate::scale::ScaleArgs),
    /// A long run at a steady rate with a mix of scenarios, reported per minute: throughput,
    /// failures, latency, and the server's CPU and RSS (to show nothing leaks).
    Soak(crate::soak::SoakArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("load").required(true).args(["rate", "concurrency"])))]
#[command(group(ArgGroup::new("length").required(true).args(["duration", "iterations"])))]
pub struct RunArgs {
    /// The server's frontend, HOST:PORT (plain HTTP/2, no TLS). Only this address is
    /// contacted.
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub target: String,
    /// Namespace to run in (tenant-mix uses its own loadtest-ns-N namespaces).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Scenario name (see list-scenarios).
    #[arg(long)]
    pub scenario: String,
    /// Scenario option KEY=VALUE; repeat for several.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
    /// Open loop: start this many workflows per second on a fixed cadence (latency counts
    /// from each start's intended time).
    #[arg(long, value_name = "STARTS_PER_S")]
    pub rate: Option<f64>,
    /// Closed loop: keep this many workflows in flight.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// How long to generate load after the warm-up (e.g. 500ms, 30s, 5m; at most 1h).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How many workflows to start after the warm-up (at most 10,000,000).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Load before measuring, left out of the numbers.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How long to wait for workflows still running when the load stops; the ones left
    /// then count as failed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Task queue for workflows and activities (default: a fresh loadtest-<random> one).
    #[arg(long)]
    pub task_queue: Option<String>,
    /// Pollers per task queue kind (workflow, activity, and sticky when on) and namespace.
    #[arg(long, default_value_t = 8)]
    pub pollers: usize,
    /// gRPC connections to the server, used round robin.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Send and accept uncompressed messages (gzip is on by default).
    #[arg(long)]
    pub no_gzip: bool,
    /// Open loop: most workflows in flight; further starts wait (and their latency shows
    /// the wait).
    #[arg(long, default_value_t = 100_000)]
    pub max_in_flight: usize,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CliError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("--{flag} {value}: {reason}")]
    OutOfBounds {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "--target {0:?}: expected HOST:PORT or http://HOST:PORT (plain HTTP/2; TLS is not supported)"
    )]
    Target(String),
    #[error("--option {key}={value}: {reason}")]
    RunOption {
        key: String,
        value: String,
        reason: String,
    },
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    Rate(f64),
    Concurrency(u32),
}

/// When the load stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Duration(Duration),
    Iterations(u64),
}

/// A checked `run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: String,
    /// `http://host:port`.
    pub uri: String,
    pub plan: Plan,
    pub sticky: bool,
    pub load: Load,
    pub length: Length,
    pub warmup: Duration,
    pub drain: Duration,
    pub report: Option<PathBuf>,
    pub task_queue: Option<String>,
    pub pollers: usize,
    pub connections: usize,
    pub gzip: bool,
    pub max_in_flight: usize,
    pub quiet: bool,
}

/// A flag's value out of its bounds (every subcommand's checks use it).
pub(crate) fn bounds(flag: &'static str, value: impl std::fmt::Display, reason: &str) -> CliError {
    CliError::OutOfBounds {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

impl RunArgs {
    pub fn check(&self) -> Result<RunConfig, CliError> {
        let uri = target_uri(&self.target)?;
        let load = match (self.rate, self.concurrency) {
            (Some(r), _) if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) => {
                return Err(bounds("rate", r, "must be above 0 and at most 100000"));
            }
            (Some(r), _) => Load::Rate(r),
            (None, Some(c)) if c == 0 || c > MAX_CONCURRENCY => {
                return Err(bounds("concurrency", c, "must be 1 to 100000"));
            }
            (None, Some(c)) => Load::Concurrency(c),
            (None, None) => unreachable!("clap requires --rate or --concurrency"),
        };
        let length = match (self.duration, self.iterations) {
            (Some(d), _) if d.is_zero() || d > MAX_DURATION => {
                return Err(bounds(
                    "duration",
                    format!("{d:?}"),
                    "must be above 0 and at most 1h",
                ));
            }
            (Some(d), _) => Length::Duration(d),
            (None, Some(n)) if n == 0 || n > MAX_ITERATIONS => {
                return Err(bounds("iterations", n, "must be 1 to 10000000"));
            }
            (None, Some(n)) => Length::Iterations(n),
            (None, None) => unreachable!("clap requires --duration or --iterations"),
        };
        if self.warmup > MAX_WARMUP {
            return Err(bounds(
                "warmup",
                format!("{:?}", self.warmup),
                "at most 10m",
            ));
        }
        if self.drain > MAX_DRAIN {
            return Err(bounds("drain", format!("{:?}", self.drain), "at most 10m"));
        }
        if !(1..=256).contains(&self.pollers) {
            return Err(bounds("pollers", self.pollers, "must be 1 to 256"));
        }
        if !(1..=64).contains(&self.connections) {
            return Err(bounds("connections", self.connections, "must be 1 to 64"));
        }
        if !(1..=1_000_000).contains(&self.max_in_flight) {
            return Err(bounds(
                "max-in-flight",
                self.max_in_flight,
                "must be 1 to 1000000",
            ));
        }
        if self.namespace.is_empty() {
            return Err(bounds("namespace", "\"\"", "must not be empty"));
        }
        if matches!(&self.task_queue, Some(q) if q.is_empty()) {
            return Err(bounds("task-queue", "\"\"", "must not be empty"));
        }
        let mut options: BTreeMap<String, String> = self.options.iter().cloned().collect();
        let sticky = match options.remove("sticky").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(CliError::RunOption {
                    key: "sticky".into(),
                    value: other.into(),
                    reason: "must be true or false".into(),
                });
            }
        };
        debug_assert!(RUN_OPTIONS.iter().any(|o| o.name == "sticky"));
        let plan = scenario::plan(&self.scenario, &options, &self.namespace)?;
        Ok(RunConfig {
            target: self.target.clone(),
            uri,
            plan,
            sticky,
            load,
            length,
            warmup: self.warmup,
            drain: self.drain,
            report: self.report.clone(),
            task_queue: self.task_queue.clone(),
            pollers: self.pollers,
            connections: self.connections,
            gzip: !self.no_gzip,
            max_in_flight: self.max_in_flight,
            quiet: self.quiet,
        })
    }
}

/// `HOST:PORT` or `http://HOST:PORT` to a URI; nothing else (no TLS, no paths).
pub fn target_uri(target: &str) -> Result<String, CliError> {
    let bad = || CliError::Target(target.to_string());
    let rest = target.strip_prefix("http://").unwrap_or(target);
    if rest.contains("://") || rest.contains('/') || rest.is_empty() {
        return Err(bad());
    }
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad());
    }
    Ok(format!("http://{rest}"))
}

/// `KEY=VALUE`.
pub fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `250ms`, `5s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s, 5m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs > 10.0 * 86_400.0 {
        return Err(format!("{s:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunConfig, String> {
        let cli = Cli::try_parse_from(
            ["temper-loadtest", "run"]
                .iter()
                .chain(args.iter())
                .copied(),
        )
        .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(r) => r.check().map_err(|e| e.to_string()),
            Command::ListScenarios
            | Command::Schedules(_)
            | Command::Fuzz(_)
            | Command::Scale(_)
            | Command::Soak(_) => Err("not run".into()),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(
            target_uri("127.0.0.1:7233").as_deref(),
            Ok("http://127.0.0.1:7233")
        );
        assert_eq!(
            target_uri("http://localhost:1").as_deref(),
            Ok("http://localhost:1")
        );
        assert_eq!(target_uri("[::1]:7233").as_deref(), Ok("http://[::1]:7233"));
        for bad in [
            "https://x:1",
            "x",
            "x:0",
            ":7233",
            "x:1/path",
            "::1:7233",
            "",
        ] {
            assert!(target_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_run_needs_a_load_and_a_length_within_bounds() {
        let ok = run(&[
            "--scenario",
            "noop",
            "--concurrency",
            "4",
            "--iterations",
            "10",
        ])
        .expect("valid");
        assert_eq!(ok.load, Load::Concurrency(4));
        assert_eq!(ok.length, Length::Iterations(10));
        assert_eq!(ok.uri, "http://127.0.0.1:7233");
        assert!(ok.gzip && !ok.sticky);
        assert!(run(&["--scenario", "noop", "--iterations", "10"]).is_err());
        assert!(run(&["--scenario", "noop", "--rate", "5"]).is_err());
        assert!(
            run(&[
                "--scenario",
                "noop",
                "--rate",
                "5",
                "--concurrency",
                "1",
                "--duration",
                "1s"
            ])
            .is_err()
        );
        let too_long = run(&["--scenario", "noop", "--rate", "5", "--duration", "2h"]);
        assert!(too_long.expect_err("over 1h").contains("at most 1h"));
        assert!(
            run(&[
                "--scenario",
                "noop",
                "--rate",
                "5",
                "--iterations",
                "10000001"
            ])
            .is_err()
        );
        assert!(run(&["--scenario", "noop", "--rate", "0", "--iterations", "1"]).is_err());
        assert!(
            run(&[
                "--scenario",
                "noop",
                "--rate",
                "1",
                "--iterations",
                "1",
                "--drain",
                "1h"
            ])
            .is_err()
        );
    }

    #[test]
    fn options_reach_the_scenario_and_sticky_the_run() {
        let c = run(&[
            "--scenario",
            "timers",
            "--option",
            "count=2",
            "--option",
            "sticky=true",
            "--rate",
            "10",
            "--duration",
            "3s",
        ])
        .expect("valid");
        assert!(c.sticky);
        assert_eq!(c.plan.params.count, 2);
        assert_eq!(c.plan.params.duration_ms, 100);
        let e = run(&[
            "--scenario",
            "noop",
            "--option",
            "count=2",
            "--rate",
            "1",
            "--duration",
            "1s",
        ])
        .expect_err("noop has no options");
        assert!(e.contains("no option \"count\""), "{e}");
        let e =
            run(&["--scenario", "nope", "--rate", "1", "--duration", "1s"]).expect_err("unknown");
        assert!(e.contains("unknown scenario"), "{e}");
    }
}
