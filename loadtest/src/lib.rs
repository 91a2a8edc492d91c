//! temper-loadtest: a load generator for any server that speaks the Temporal API (temper, or
//! a Temporal server), shaped like Temporal's omes.
//!
//! It is both the starter and the worker: raw gRPC long-poll loops on the workflow and
//! activity task queues answer each scenario's workflow tasks with a deterministic function
//! from history to commands ([`scenario::decide`]), so no SDK sits in the hot path and the
//! generator costs little next to the server it measures.
//!
//! Entry points: [`main_with_args`] (blocking; makes its own runtime) for a binary, and
//! [`run_with_args`] for callers already inside a tokio runtime, such as `temper loadtest`.

pub mod cli;
pub mod client;
pub mod fuzz;
pub mod history;
pub mod metrics;
pub mod nexus_setup;
pub mod nexus_worker;
pub mod report;
pub mod run;
pub mod scale;
pub mod scenario;
pub mod schedbench;
pub mod schedule;
pub mod shared;
pub mod soak;
pub mod starter;
pub mod stats;
pub mod tracker;
pub mod worker;

use std::ffi::OsString;
use std::fmt::Write as _;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Run the CLI with `args`: the arguments after the program (or `loadtest` subcommand) name,
/// e.g. `["run", "--scenario", "noop", "--concurrency", "10", "--duration", "10s"]`.
/// Builds a multi-threaded tokio runtime; call [`run_with_args`] from async code instead.
///
/// A usage error, `--help` and `--version` come back as a [`clap::Error`] inside the
/// `anyhow::Error`; print it with `clap::Error::exit` (help exits 0).
pub fn main_with_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("loadtest")
        .build()?;
    rt.block_on(run_with_args(args))
}

/// [`main_with_args`] for callers that are already in a tokio runtime.
pub async fn run_with_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = std::iter::once(OsString::from("temper-loadtest"))
        .chain(args.into_iter().map(Into::into))
        .collect();
    let cli = Cli::try_parse_from(argv.clone())?;
    match cli.command {
        Command::ListScenarios => {
            print!("{}", list_scenarios());
            Ok(())
        }
        Command::Run(args) => {
            let cfg = args.check()?;
            let report_path = cfg.report.clone();
            let report = run::run(cfg).await?;
            print!("{}", report.table());
            if let Some(path) = report_path {
                write_report(&path, &report)?;
            }
            Ok(())
        }
        Command::Fuzz(args) => {
            let report = fuzz::run(args).await?;
            print!("{}", report.table());
            if let Some(why) = report.healthy {
                return Err(fuzz::FuzzError::Unhealthy(why).into());
            }
            if report.bad_count() > 0 {
                return Err(fuzz::FuzzError::BadAnswers {
                    bad: report.bad_count(),
                }
                .into());
            }
            Ok(())
        }
        Command::Scale(args) => {
            let cfg = args.check()?;
            let report_path = cfg.report.clone();
            let report = scale::run(cfg).await?;
            print!("{}", report.table());
            if let Some(path) = report_path {
                write_report(&path, &report)?;
            }
            Ok(())
        }
        Command::Soak(args) => {
            let cfg = args.check()?;
            let report_path = cfg.report.clone();
            let report = soak::run(cfg).await?;
            print!("{}", report.table());
            if let Some(path) = report_path {
                write_report(&path, &report)?;
            }
            Ok(())
        }
        Command::Schedules(args) => {
            let command = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let cfg = args.check(command)?;
            let report_path = cfg.report.clone();
            let report = schedbench::run(cfg).await?;
            print!("{}", report.table());
            if let Some(path) = report_path {
                write_report(&path, &report)?;
            }
            Ok(())
        }
    }
}

fn write_report(path: &std::path::Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write the report to {}: {e}", path.display()))
}

/// What `list-scenarios` prints.
pub fn list_scenarios() -> String {
    let mut s = String::new();
    for sc in scenario::SCENARIOS {
        let _ = writeln!(s, "{:<22} {}", sc.name, sc.summary);
        for o in sc.options {
            let value = if o.default.parse::<u64>().is_ok() {
                "N"
            } else {
                "NAME"
            };
            let _ = writeln!(
                s,
                "{:<24}--option {}={value}  {} (default {})",
                "", o.name, o.help, o.default
            );
        }
    }
    let _ = writeln!(s, "\noptions for every scenario:");
    for o in scenario::RUN_OPTIONS {
        let _ = writeln!(
            s,
            "{:<24}--option {}=true|false  {} (default {})",
            "", o.name, o.help, o.default
        );
    }
    s
}
