//! `temper-loadtest soak`: a long run at a steady rate with a mix of scenarios, reported per
//! interval (a minute by default): throughput, failures, each scenario's latency, and the
//! server's CPU and RSS, so a leak or a slow drift shows as a trend.
//!
//! Each interval runs every scenario of the mix at once for the interval, each on its own
//! task queue kept for the whole soak (a task queue per interval would itself grow the
//! server's memory), then waits for their workflows to finish before the next one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser};
use serde::Serialize;

use crate::cli::{Cli, CliError, Command, bounds, parse_duration, target_uri};
use crate::schedbench::procstat;
use crate::stats::LatencySummary;

/// Clock ticks per second of `/proc/<pid>/stat`.
const TICKS_PER_S: f64 = 100.0;

#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The server's frontend, HOST:PORT (plain HTTP/2). Only this address is contacted.
    #[arg(long, default_value = "127.0.0.1:7233")]
    pub target: String,
    /// The server's process id, for its CPU time and RSS from /proc (same machine).
    #[arg(long, value_name = "PID")]
    pub server_pid: u32,
    /// How long to soak (at most 24h).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Duration,
    /// Workflows started per second in all, shared by the mix's weights.
    #[arg(long)]
    pub rate: f64,
    /// Scenarios and their weights, SCENARIO=WEIGHT,... (scenarios of list-scenarios that
    /// need no option; their defaults apply).
    #[arg(long, default_value = "noop=2,activity=2,timers=1,signals=1")]
    pub mix: String,
    /// One row per interval.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// No line on stderr per interval.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A checked `soak`.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub target: String,
    pub server_pid: u32,
    pub duration: Duration,
    pub interval: Duration,
    /// (scenario, starts per second).
    pub mix: Vec<(String, f64)>,
    pub report: Option<PathBuf>,
    pub quiet: bool,
}

impl SoakArgs {
    pub fn check(&self) -> Result<SoakConfig, CliError> {
        target_uri(&self.target)?;
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return Err(bounds(
                "duration",
                format!("{:?}", self.duration),
                "must be above 0 and at most 24h",
            ));
        }
        if self.interval < Duration::from_secs(5) || self.interval > self.duration {
            return Err(bounds(
                "interval",
                format!("{:?}", self.interval),
                "must be at least 5s and at most --duration",
            ));
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(bounds(
                "rate",
                self.rate,
                "must be above 0 and at most 10000",
            ));
        }
        let mut weights = Vec::new();
        for part in self.mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').unwrap_or((part, "1"));
            let w: f64 = w
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w > 0.0)
                .ok_or_else(|| bounds("mix", part, "a weight must be a number above 0"))?;
            if ![
                "noop",
                "activity",
                "sequential-activities",
                "parallel-activities",
                "timers",
                "signals",
                "child-workflows",
            ]
            .contains(&name)
            {
                return Err(bounds("mix", name, "not a scenario the soak runs"));
            }
            if weights.iter().any(|(n, _)| n == name) {
                return Err(bounds("mix", name, "named twice"));
            }
            weights.push((name.to_string(), w));
        }
        if weights.is_empty() {
            return Err(bounds("mix", &self.mix, "name at least one scenario"));
        }
        let total: f64 = weights.iter().map(|(_, w)| w).sum();
        Ok(SoakConfig {
            target: self.target.clone(),
            server_pid: self.server_pid,
            duration: self.duration,
            interval: self.interval,
            mix: weights
                .into_iter()
                .map(|(n, w)| (n, self.rate * w / total))
                .collect(),
            report: self.report.clone(),
            quiet: self.quiet,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub target: String,
    /// Starts per second of each scenario.
    pub mix: BTreeMap<String, f64>,
    pub interval_s: f64,
    pub intervals: Vec<Interval>,
    /// RSS growth per hour by least squares over the intervals' end RSS, MiB.
    pub rss_slope_mib_per_h: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Seconds since the soak began, at the interval's end.
    pub at_s: f64,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub start_errors: u64,
    pub workflows_per_s: f64,
    /// The server's CPU over the interval, in cores (1.0 = one core busy).
    pub server_cpu_cores: f64,
    pub server_rss_mib: f64,
    /// End-to-end latency per scenario.
    pub latency_ms: BTreeMap<String, LatencySummary>,
}

/// One interval: every scenario at its rate, at once.
async fn interval(cfg: &SoakConfig, queues: &BTreeMap<String, String>) -> anyhow::Result<Interval> {
    let runs = cfg.mix.iter().map(|(name, rate)| {
        let argv = [
            "temper-loadtest".to_string(),
            "run".into(),
            "--target".into(),
            cfg.target.clone(),
            "--scenario".into(),
            name.clone(),
            "--rate".into(),
            rate.to_string(),
            "--duration".into(),
            format!("{}ms", cfg.interval.as_millis()),
            "--drain".into(),
            "60s".into(),
            "--task-queue".into(),
            queues[name].clone(),
            "--quiet".into(),
        ];
        async move {
            let Command::Run(args) = Cli::try_parse_from(argv)?.command else {
                unreachable!("parsed as run")
            };
            let report = crate::run::run(args.check()?).await?;
            anyhow::Ok((name.clone(), report))
        }
    });
    let reports = futures::future::try_join_all(runs).await?;
    let mut out = Interval {
        at_s: 0.0,
        started: 0,
        completed: 0,
        failed: 0,
        start_errors: 0,
        workflows_per_s: 0.0,
        server_cpu_cores: 0.0,
        server_rss_mib: 0.0,
        latency_ms: BTreeMap::new(),
    };
    for (name, r) in reports {
        out.started += r.started;
        out.completed += r.completed;
        out.failed += r.failed;
        out.start_errors += r.start_errors;
        out.latency_ms.insert(name, r.latency_ms);
    }
    out.workflows_per_s = out.completed as f64 / cfg.interval.as_secs_f64();
    Ok(out)
}

/// Least-squares slope of `ys` against `xs`, per unit of x.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

pub async fn run(cfg: SoakConfig) -> anyhow::Result<SoakReport> {
    procstat::sample(cfg.server_pid)?;
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let queues: BTreeMap<String, String> = cfg
        .mix
        .iter()
        .map(|(n, _)| (n.clone(), format!("soak-{n}-{id}")))
        .collect();
    let began = Instant::now();
    let mut intervals = Vec::new();
    while began.elapsed() + cfg.interval / 2 < cfg.duration {
        let before = procstat::sample(cfg.server_pid)?;
        let mut row = interval(&cfg, &queues).await?;
        let after = procstat::sample(cfg.server_pid)?;
        let wall_s = (after.at_ns - before.at_ns) as f64 / 1e9;
        row.server_cpu_cores = (after.cpu_ticks.saturating_sub(before.cpu_ticks)) as f64
            / TICKS_PER_S
            / wall_s.max(1e-3);
        row.server_rss_mib = after.rss_kib as f64 / 1024.0;
        row.at_s = began.elapsed().as_secs_f64();
        if !cfg.quiet {
            eprintln!(
                "soak: {:>6.0} s  {:>7.1} wf/s  failed {}  cpu {:.2} cores  rss {:.1} MiB",
                row.at_s, row.workflows_per_s, row.failed, row.server_cpu_cores, row.server_rss_mib
            );
        }
        intervals.push(row);
    }
    let xs: Vec<f64> = intervals.iter().map(|r| r.at_s / 3600.0).collect();
    let ys: Vec<f64> = intervals.iter().map(|r| r.server_rss_mib).collect();
    Ok(SoakReport {
        target: cfg.target.clone(),
        mix: cfg.mix.iter().cloned().collect(),
        interval_s: cfg.interval.as_secs_f64(),
        rss_slope_mib_per_h: slope(&xs, &ys),
        intervals,
    })
}

impl SoakReport {
    /// The human table: a row per interval.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let names: Vec<&String> = self.mix.keys().collect();
        let _ = write!(
            s,
            "| min | wf/s | failed | server CPU (cores) | server RSS MiB |"
        );
        for n in &names {
            let _ = write!(s, " {n} p50 / p99 ms |");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|{}", "---|".repeat(5 + names.len()));
        for r in &self.intervals {
            let _ = write!(
                s,
                "| {:.0} | {:.1} | {} | {:.2} | {:.1} |",
                r.at_s / 60.0,
                r.workflows_per_s,
                r.failed + r.start_errors,
                r.server_cpu_cores,
                r.server_rss_mib
            );
            for n in &names {
                let l = r.latency_ms.get(*n).cloned().unwrap_or_default();
                let _ = write!(s, " {:.1} / {:.1} |", l.p50, l.p99);
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "RSS trend: {:+.1} MiB per hour (least squares over the intervals)",
            self.rss_slope_mib_per_h
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SoakArgs,
    }

    fn check(extra: &[&str]) -> Result<SoakConfig, CliError> {
        let argv = [
            "soak",
            "--server-pid",
            "1",
            "--duration",
            "1h",
            "--rate",
            "100",
        ]
        .into_iter()
        .chain(extra.iter().copied());
        Wrap::try_parse_from(argv).expect("parses").args.check()
    }

    #[test]
    fn the_rate_is_shared_by_weight() {
        let cfg = check(&["--mix", "noop=3,timers=1"]).expect("valid");
        assert_eq!(
            cfg.mix,
            vec![("noop".to_string(), 75.0), ("timers".to_string(), 25.0)]
        );
        let cfg = check(&[]).expect("the default mix");
        let total = cfg.mix.iter().map(|(_, r)| r).sum::<f64>();
        assert!((total - 100.0).abs() < 1e-9, "{total}");
        for bad in [
            vec!["--mix", "noop=0"],
            vec!["--mix", "nexus=1"],
            vec!["--mix", "noop=1,noop=2"],
            vec!["--mix", ""],
            vec!["--interval", "1s"],
            vec!["--interval", "2h"],
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_rss_trend_is_a_least_squares_slope() {
        assert_eq!(slope(&[0.0, 1.0, 2.0], &[10.0, 12.0, 14.0]), 2.0);
        assert_eq!(slope(&[0.0, 1.0, 2.0], &[10.0, 10.0, 10.0]), 0.0);
        assert_eq!(slope(&[1.0], &[5.0]), 0.0);
    }
}
