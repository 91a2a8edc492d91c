//! One `scale` run: for each count, a fresh server and the phases the module comment lists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ScaleConfig;
use super::report::{CountReport, ScaleReport};
use super::server::Server;
use crate::cli::{Cli, Command};
use crate::client::Clients;
use crate::metrics::Metrics;
use crate::scenario::{self, WorkflowParams};
use crate::schedbench::procstat::now_ns;
use crate::shared::Shared;
use crate::starter::{self, Start};
use crate::tracker::Tracker;
use crate::worker;

/// The timer of the workflows that do not come due in the run.
const LONG_WAIT: Duration = Duration::from_secs(3600);
/// Starts per second assumed before any was measured (a debug build on two cores does more).
const ASSUMED_FILL_RATE: f64 = 200.0;
/// Workflows whose fill rate is measured before the due instant is chosen.
const RATE_PROBE: u64 = 200;
/// How often RSS is read while filling and while the timers fire.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
const POLLERS: usize = 8;
const CONNECTIONS: usize = 4;

fn say(quiet: bool, msg: impl AsRef<str>) {
    if !quiet {
        eprintln!("scale: {}", msg.as_ref());
    }
}

pub async fn run(cfg: ScaleConfig) -> anyhow::Result<ScaleReport> {
    let (root, _temp) = match &cfg.work_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = std::env::temp_dir().join(format!(
                "temper-scale-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ));
            (t.clone(), Some(RemoveOnDrop(t)))
        }
    };
    let mut counts = Vec::new();
    for &n in &cfg.counts {
        let dir = root.join(format!("n-{n}"));
        let report = measure(&cfg, n, &dir).await?;
        say(cfg.quiet, format!("{n}: {report:?}"));
        counts.push(report);
    }
    Ok(ScaleReport {
        server_args: cfg.server_args.clone(),
        counts,
    })
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Samples the server's RSS until stopped; the highest, in MiB.
fn sample_peak(pid: u32) -> (CancellationToken, tokio::task::JoinHandle<f64>) {
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = 0.0f64;
        loop {
            if let Ok(sample) = crate::schedbench::procstat::sample(pid) {
                peak = peak.max(sample.rss_kib as f64 / 1024.0);
            }
            tokio::select! {
                _ = s.cancelled() => return peak,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    });
    (stop, task)
}

async fn peak_of(sampler: (CancellationToken, tokio::task::JoinHandle<f64>)) -> f64 {
    sampler.0.cancel();
    sampler.1.await.unwrap_or(0.0)
}

/// New `noop` workflows at the configured rate; their end-to-end p99 in ms.
async fn noop_p99(cfg: &ScaleConfig, target: &str) -> anyhow::Result<f64> {
    let argv = [
        "temper-loadtest".to_string(),
        "run".into(),
        "--target".into(),
        target.into(),
        "--scenario".into(),
        "noop".into(),
        "--rate".into(),
        cfg.noop_rate.to_string(),
        "--duration".into(),
        format!("{}ms", cfg.noop_duration.as_millis()),
        "--drain".into(),
        "30s".into(),
        "--quiet".into(),
    ];
    let Command::Run(args) = Cli::try_parse_from(argv)?.command else {
        unreachable!("parsed as run")
    };
    let report = crate::run::run(args.check()?).await?;
    if report.failed > 0 || report.start_errors > 0 {
        bail!(
            "noop workflows failed ({} failed, {} start errors): {:?}",
            report.failed,
            report.start_errors,
            report.failures
        );
    }
    Ok(report.latency_ms.p99)
}

fn shared_for(
    clients: Clients,
    task_queue: &str,
    prefix: String,
    params: WorkflowParams,
) -> anyhow::Result<Arc<Shared>> {
    let mut plan = scenario::plan("timers", &BTreeMap::new(), "default")?;
    plan.params = params;
    Ok(Arc::new(Shared {
        clients,
        metrics: Metrics::new(Instant::now()),
        tracker: Tracker::default(),
        plan,
        identity: format!("temper-loadtest-scale-{}", std::process::id()),
        task_queue: task_queue.to_string(),
        id_prefix: prefix,
        sticky_queue: None,
        history_cache: Default::default(),
    }))
}

/// Start workflows `0..n` of `shared` (`concurrency` at once); how many started.
async fn start_all(shared: &Arc<Shared>, n: u64, concurrency: usize) -> u64 {
    let ns: Arc<str> = Arc::from("default");
    futures::stream::iter(0..n)
        .map(|seq| {
            let (shared, ns) = (shared.clone(), ns.clone());
            async move {
                starter::start(
                    &shared,
                    Start {
                        namespace: ns,
                        fairness: None,
                        seq,
                        intended: Instant::now(),
                        done: None,
                        permit: None,
                    },
                )
                .await
            }
        })
        .buffer_unordered(concurrency)
        .fold(0u64, |acc, ok| async move { acc + u64::from(ok) })
        .await
}

/// Wait until the worker has answered `tasks` workflow tasks, or `limit` passed.
async fn wait_tasks(shared: &Shared, tasks: u64, limit: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    while shared.metrics.live.workflow_tasks.load(Ordering::Relaxed) < tasks {
        if Instant::now() > until {
            bail!(
                "only {} of {tasks} workflow tasks answered within {limit:?}",
                shared.metrics.live.workflow_tasks.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn measure(cfg: &ScaleConfig, n: u64, dir: &std::path::Path) -> anyhow::Result<CountReport> {
    let q = cfg.quiet;
    let _ = std::fs::remove_dir_all(dir);
    let mut server = Server::new(&cfg.server_bin, dir, &cfg.server_args)?;
    let first_ready = server.start().await?;
    let target = server.target();
    let uri = format!("http://{target}");
    say(
        q,
        format!("{n}: server ready in {first_ready:?}; noop on the empty store"),
    );
    let noop_empty = noop_p99(cfg, &target).await?;
    let rss_empty = server.rss_mib()?;
    let disk_empty = server.disk_bytes();

    // Fill: the long waiters first (their pace sets the due instant), then the due ones.
    let due = cfg.due.unwrap_or((n / 2).min(100_000)).min(n);
    let long = n - due;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let task_queue = format!("scale-{run_id}");
    let waiters = shared_for(
        Clients::connect(&uri, CONNECTIONS, true).await?,
        &task_queue,
        format!("scale-{run_id}-wait"),
        WorkflowParams {
            count: 1,
            duration_ms: LONG_WAIT.as_millis() as u64,
            ..Default::default()
        },
    )?;
    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    worker::spawn(&waiters, POLLERS, &workers, &stop_workers);
    let pid = server.pid().context("running")?;
    let sampler = sample_peak(pid);
    let fill_started = Instant::now();
    say(q, format!("{n}: filling {long} workflows with 1 h timers"));
    let started_long = start_all(&waiters, long, cfg.fill_concurrency).await;
    let fill_limit = Duration::from_secs(120 + n / 50);
    wait_tasks(&waiters, started_long, fill_limit).await?;
    let rate = if long >= RATE_PROBE {
        long as f64 / fill_started.elapsed().as_secs_f64()
    } else {
        ASSUMED_FILL_RATE
    };
    // After the due fill: two noop runs, a restart and its settling.
    let after_fill = cfg.noop_duration * 2 + Duration::from_secs(10) + cfg.fire_margin;
    let due_in = Duration::from_secs_f64(due as f64 / rate * 1.25) + after_fill;
    let due_at_ns = now_ns() + due_in.as_nanos() as i128;
    let due_at_ms = u64::try_from(due_at_ns / 1_000_000).unwrap_or(0);
    let duers = shared_for(
        Clients::connect(&uri, CONNECTIONS, true).await?,
        &task_queue,
        format!("scale-{run_id}-due"),
        WorkflowParams {
            count: 1,
            until_ms: due_at_ms,
            ..Default::default()
        },
    )?;
    say(
        q,
        format!("{n}: filling {due} workflows due in {due_in:?} (fill rate {rate:.0}/s)"),
    );
    let started_due = start_all(&duers, due, cfg.fill_concurrency).await;
    wait_tasks(&waiters, started_long + started_due, fill_limit).await?;
    let fill_s = fill_started.elapsed().as_secs_f64();
    stop_workers.cancel();
    workers.close();
    workers.wait().await;
    let rss_fill_peak = peak_of(sampler).await;
    let started = started_long + started_due;
    if started < n {
        bail!("only {started} of {n} workflows started");
    }
    // The gauges are refreshed every second or so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_filled = server.rss_mib()?;
    let gauges_filled = server.gauges().await;
    let disk = server.disk_bytes();
    say(
        q,
        format!("{n}: filled in {fill_s:.1} s; noop with {n} open"),
    );
    let noop_filled = noop_p99(cfg, &target).await?;
    let rss_after_noop = server.rss_mib()?;

    say(q, format!("{n}: restarting"));
    server.stop().await?;
    let restart_ready = server.start().await?;
    let rss_restarted = server.rss_mib()?;
    let noop_restarted = noop_p99(cfg, &target).await?;
    let rss_restarted_noop = server.rss_mib()?;
    let gauges_restarted = server.gauges().await;

    // The due timers.
    let wait = due_at_ns - now_ns();
    if wait < 1_000_000_000 {
        bail!(
            "the timers came due {:.1} s before the measurements ended: raise --fire-margin",
            -wait as f64 / 1e9
        );
    }
    say(
        q,
        format!(
            "{n}: waiting {:.0} s for {due} timers due at once",
            wait as f64 / 1e9
        ),
    );
    tokio::time::sleep(Duration::from_nanos(wait as u64) - Duration::from_millis(500)).await;
    let pid = server.pid().context("running")?;
    let sampler = sample_peak(pid);
    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    worker::spawn(&duers, POLLERS, &workers, &stop_workers);
    let fire_limit = Duration::from_secs(120 + due / 50);
    let deadline = tokio::time::Instant::now() + fire_limit;
    let all_due_completed = duers.tracker.wait_empty(deadline).await;
    stop_workers.cancel();
    workers.close();
    workers.wait().await;
    let rss_fire_peak = peak_of(sampler).await;
    let measured = duers.metrics.measured();
    let completed = duers.metrics.live.completed.load(Ordering::Relaxed);
    let lateness = measured.timer_lateness.summary();
    server.stop().await?;
    Ok(CountReport {
        open_workflows: n,
        fill_s,
        fill_per_s: n as f64 / fill_s,
        ready_first_ms: first_ready.as_secs_f64() * 1e3,
        ready_after_restart_ms: restart_ready.as_secs_f64() * 1e3,
        rss_empty_mib: rss_empty,
        rss_fill_peak_mib: rss_fill_peak,
        rss_filled_mib: rss_filled.max(rss_after_noop),
        rss_restarted_mib: rss_restarted,
        rss_restarted_noop_mib: rss_restarted_noop,
        rss_fire_peak_mib: rss_fire_peak,
        disk_bytes_per_workflow: disk.saturating_sub(disk_empty) as f64 / n as f64,
        noop_p99_empty_ms: noop_empty,
        noop_p99_filled_ms: noop_filled,
        noop_p99_restarted_ms: noop_restarted,
        due,
        due_completed: completed,
        all_due_completed,
        timer_lateness_ms: lateness,
        gauges_filled,
        gauges_restarted,
    })
}
