//! One run from start to report: connect, start the workers, drive the load (open or closed
//! loop), drain, and add it all up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use temporalio_protos::temporal::api::workflowservice::v1::ShutdownWorkerRequest;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{Length, Load, MAX_DURATION, RunConfig};
use crate::client::{Clients, req};
use crate::metrics::{Group, Metrics};
use crate::nexus_setup;
use crate::report::Report;
use crate::scenario::{Fairness, nexus};
use crate::schedule::{RateSchedule, allocate_slots, weighted_sequence};
use crate::shared::Shared;
use crate::starter::{self, Start};
use crate::tracker::Tracker;
use crate::worker;

/// Unfinished workflows terminated at the end at most (the rest are left to the server).
const MAX_TERMINATIONS: usize = 2000;
/// The whole clean-up after the drain stays within this.
const CLEANUP_TIME: Duration = Duration::from_secs(5);

const PHASE_WARMUP: u8 = 0;
const PHASE_LOAD: u8 = 1;
const PHASE_DRAIN: u8 = 2;

pub async fn run(cfg: RunConfig) -> anyhow::Result<Report> {
    let clients = Clients::connect(&cfg.uri, cfg.connections, cfg.gzip).await?;
    if cfg.plan.register_namespaces {
        for ns in cfg.plan.namespace_names() {
            clients.ensure_namespace(ns).await?;
        }
    }
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let task_queue = cfg
        .task_queue
        .clone()
        .unwrap_or_else(|| format!("loadtest-{run_id}"));
    let mut endpoints = Vec::new();
    if cfg.plan.uses_nexus() {
        let nexus_queue = nexus::task_queue(&task_queue);
        for ns in cfg.plan.namespace_names() {
            let name = nexus::endpoint_name(&task_queue, ns);
            if let Some(created) = nexus_setup::ensure(&clients, &name, ns, &nexus_queue).await? {
                endpoints.push(created);
            }
        }
    }
    let identity = format!("temper-loadtest-{}-{run_id}", std::process::id());
    let t0 = Instant::now();
    let measure_start = t0 + cfg.warmup;
    let shared = Arc::new(Shared {
        clients,
        metrics: Metrics::new(measure_start),
        tracker: Tracker::default(),
        plan: cfg.plan.clone(),
        identity: identity.clone(),
        task_queue: task_queue.clone(),
        id_prefix: format!("loadtest-{run_id}"),
        sticky_queue: cfg.sticky.then(|| format!("{task_queue}-sticky-{run_id}")),
        history_cache: Default::default(),
    });
    for share in &cfg.plan.namespaces {
        shared.metrics.register(Group {
            namespace: &share.name,
            fairness_key: share.fairness.as_ref().map(|f| f.key.as_str()),
        });
    }

    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    worker::spawn(&shared, cfg.pollers, &workers, &stop_workers);

    let phase = Arc::new(AtomicU8::new(if cfg.warmup.is_zero() {
        PHASE_LOAD
    } else {
        PHASE_WARMUP
    }));
    let stop_progress = CancellationToken::new();
    let progress = (!cfg.quiet).then(|| {
        tokio::spawn(progress(
            shared.clone(),
            t0,
            phase.clone(),
            stop_progress.clone(),
        ))
    });
    {
        let phase = phase.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start.into()).await;
            let _ = phase.compare_exchange(
                PHASE_WARMUP,
                PHASE_LOAD,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        });
    }

    // The load phase ends at this time at the latest, whatever the length.
    let hard_end = match cfg.length {
        Length::Duration(d) => measure_start + d,
        Length::Iterations(_) => measure_start + MAX_DURATION,
    };
    let starts = TaskTracker::new();
    match cfg.load {
        Load::Rate(r) => {
            open_loop(
                &shared,
                r,
                cfg.length,
                t0,
                hard_end,
                cfg.max_in_flight,
                &starts,
            )
            .await;
        }
        Load::Concurrency(c) => closed_loop(&shared, c, cfg.length, hard_end, &starts).await,
    }
    let load_end = Instant::now();
    phase.store(PHASE_DRAIN, Ordering::Relaxed);
    let drain_deadline = tokio::time::Instant::from(load_end + cfg.drain);
    starts.close();
    let _ = tokio::time::timeout_at(drain_deadline, starts.wait()).await;
    shared.tracker.wait_empty(drain_deadline).await;

    // Whatever is still running now failed.
    let leftovers = shared.tracker.drain();
    let reason = format!("not finished within the drain timeout ({:?})", cfg.drain);
    for (_, w) in &leftovers {
        shared.metrics.failed(w.group(), w.measured, reason.clone());
    }
    let measured = shared.metrics.measured();
    let window_end = measured.last_end.unwrap_or(load_end).max(measure_start);
    let window = window_end.duration_since(measure_start);
    let cleanup = async {
        use futures::StreamExt;
        futures::stream::iter(leftovers.into_iter().take(MAX_TERMINATIONS))
            .for_each_concurrent(16, |(id, w)| {
                let shared = shared.clone();
                async move {
                    starter::terminate(
                        &shared,
                        &w.namespace,
                        &id,
                        "temper-loadtest: not finished within the drain timeout",
                    )
                    .await;
                }
            })
            .await;
        stop_workers.cancel();
        workers.close();
        workers.wait().await;
        for e in &endpoints {
            nexus_setup::delete(&shared.clients, e).await;
        }
        if let Some(sticky) = &shared.sticky_queue {
            for ns in shared.plan.namespace_names() {
                let _ = shared
                    .clients
                    .get()
                    .shutdown_worker(req(ShutdownWorkerRequest {
                        namespace: ns.to_string(),
                        sticky_task_queue: sticky.clone(),
                        identity: identity.clone(),
                        reason: "temper-loadtest finished".to_string(),
                        ..Default::default()
                    }))
                    .await;
            }
        }
    };
    let _ = tokio::time::timeout(CLEANUP_TIME, cleanup).await;
    stop_progress.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    Ok(Report::new(
        &cfg,
        &task_queue,
        &measured,
        window,
        &shared.metrics.live,
    ))
}

/// Where a start goes: a namespace and, with fairness-mix, a fairness key.
type Target = (Arc<str>, Option<Arc<Fairness>>);

/// The plan's shares as start targets, and their weights.
fn shares(shared: &Shared) -> (Vec<Target>, Vec<u32>) {
    shared
        .plan
        .namespaces
        .iter()
        .map(|n| {
            (
                (
                    Arc::<str>::from(n.name.as_str()),
                    n.fairness.clone().map(Arc::new),
                ),
                n.weight,
            )
        })
        .unzip()
}

/// Start workflows on a fixed cadence, whatever the server does; a start that could not go
/// out on time (in-flight cap, busy generator) still counts its latency from its slot.
async fn open_loop(
    shared: &Arc<Shared>,
    rate: f64,
    length: Length,
    t0: Instant,
    hard_end: Instant,
    max_in_flight: usize,
    starts: &TaskTracker,
) {
    let schedule = RateSchedule::new(rate);
    let (targets, weights) = shares(shared);
    let order = weighted_sequence(&weights);
    let cap = Arc::new(Semaphore::new(max_in_flight));
    let mut measured = 0u64;
    for i in 0u64.. {
        let intended = t0 + schedule.offset(i);
        if intended >= hard_end {
            break;
        }
        if let Length::Iterations(n) = length
            && measured >= n
        {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        let permit = tokio::select! {
            p = cap.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = tokio::time::sleep_until(hard_end.into()) => break,
        };
        if shared.metrics.is_measured(intended) {
            measured += 1;
        }
        let (namespace, fairness) = targets[order[(i % order.len() as u64) as usize]].clone();
        let shared = shared.clone();
        starts.spawn(async move {
            starter::start(
                &shared,
                Start {
                    namespace,
                    fairness,
                    seq: i,
                    intended,
                    done: None,
                    permit: Some(permit),
                },
            )
            .await;
        });
    }
}

/// Keep `concurrency` workflows in flight: each slot starts the next workflow when its last
/// one ends.
async fn closed_loop(
    shared: &Arc<Shared>,
    concurrency: u32,
    length: Length,
    hard_end: Instant,
    starts: &TaskTracker,
) {
    let (targets, weights) = shares(shared);
    let slots = allocate_slots(concurrency, &weights);
    let seq = Arc::new(AtomicU64::new(0));
    let claimed = Arc::new(AtomicU64::new(0));
    let load_done = CancellationToken::new();
    for (target, n) in targets.iter().zip(slots) {
        for _ in 0..n {
            starts.spawn(slot(
                shared.clone(),
                target.clone(),
                length,
                hard_end,
                seq.clone(),
                claimed.clone(),
                load_done.clone(),
            ));
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until(hard_end.into()) => {}
        _ = load_done.cancelled() => {}
    }
    load_done.cancel();
}

async fn slot(
    shared: Arc<Shared>,
    (namespace, fairness): Target,
    length: Length,
    hard_end: Instant,
    seq: Arc<AtomicU64>,
    claimed: Arc<AtomicU64>,
    load_done: CancellationToken,
) {
    loop {
        let intended = Instant::now();
        if load_done.is_cancelled() || intended >= hard_end {
            return;
        }
        let mut last = false;
        if let Length::Iterations(n) = length
            && shared.metrics.is_measured(intended)
        {
            let k = claimed.fetch_add(1, Ordering::Relaxed);
            if k >= n {
                load_done.cancel();
                return;
            }
            last = k + 1 == n;
        }
        let (done, finished) = oneshot::channel();
        let ok = starter::start(
            &shared,
            Start {
                namespace: namespace.clone(),
                fairness: fairness.clone(),
                seq: seq.fetch_add(1, Ordering::Relaxed),
                intended,
                done: Some(done),
                permit: None,
            },
        )
        .await;
        if last {
            load_done.cancel();
            return;
        }
        if !ok {
            // Do not hammer a server that refuses starts.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = load_done.cancelled() => return,
            }
            continue;
        }
        tokio::select! {
            _ = finished => {}
            _ = load_done.cancelled() => return,
        }
    }
}

/// One line a second on stderr.
async fn progress(shared: Arc<Shared>, t0: Instant, phase: Arc<AtomicU8>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut prev = shared.metrics.snapshot();
    let mut prev_at = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = shared.metrics.snapshot();
        let secs = prev_at.elapsed().as_secs_f64().max(0.001);
        prev_at = Instant::now();
        let label = match phase.load(Ordering::Relaxed) {
            PHASE_WARMUP => "warmup",
            PHASE_LOAD => "load",
            _ => "drain",
        };
        eprintln!(
            "[{:>6.1}s {label:<6}] started {} ({:.0}/s)  completed {} ({:.0}/s)  failed {}  start errors {}  in flight {}  e2e p50 {:.2} ms p99 {:.2} ms",
            t0.elapsed().as_secs_f64(),
            now.started,
            (now.started - prev.started) as f64 / secs,
            now.completed,
            (now.completed - prev.completed) as f64 / secs,
            now.failed,
            now.start_errors,
            shared.tracker.len(),
            now.interval_p50_ms,
            now.interval_p99_ms,
        );
        prev = now;
    }
}
