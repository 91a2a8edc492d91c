//! One `schedules` run: connect, start the worker, create the schedules, measure the window,
//! list the runs, delete the schedules, and add it all up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use temporalio_protos::temporal::api::common::v1::WorkflowType;
use temporalio_protos::temporal::api::enums::v1::{ScheduleOverlapPolicy, WorkflowExecutionStatus};
use temporalio_protos::temporal::api::schedule::v1::{
    IntervalSpec, Schedule, ScheduleAction, SchedulePolicies, ScheduleSpec, schedule_action,
};
use temporalio_protos::temporal::api::workflow::v1::NewWorkflowExecutionInfo;
use temporalio_protos::temporal::api::workflowservice::v1::{
    CreateScheduleRequest, DeleteScheduleRequest, ListWorkflowExecutionsRequest,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::procstat::{self, Sample, now_ns};
use super::{ActionStats, Expected, Overlap, Run, SchedulesConfig, SchedulesReport};
use crate::client::{Clients, req, retry, status_reason, with_timeout};
use crate::metrics::Metrics;
use crate::scenario::{self, WorkflowKind, WorkflowParams, normal_queue, proto_duration};
use crate::shared::Shared;
use crate::tracker::Tracker;
use crate::worker;

/// Runs listed per ListWorkflowExecutions page.
const PAGE_SIZE: i32 = 1000;
/// Deadline of one page (a loaded SQLite visibility store is slow to answer).
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How close to an action a sampling second counts as busy (see `procstat::usage`).
const BUSY_MARGIN: Duration = Duration::from_secs(1);
/// Deletes in flight at the end.
const DELETE_CONCURRENCY: usize = 32;

pub async fn run(cfg: SchedulesConfig) -> anyhow::Result<SchedulesReport> {
    if let Some(pid) = cfg.server_pid {
        // Fail before creating anything if the process cannot be read.
        procstat::sample(pid)?;
    }
    let clients = Clients::connect(&cfg.uri, cfg.connections, cfg.gzip).await?;
    clients.ensure_namespace(&cfg.namespace).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let task_queue = cfg
        .task_queue
        .clone()
        .unwrap_or_else(|| format!("loadtest-sched-{run_id}"));
    let identity = format!("temper-loadtest-{}-{run_id}", std::process::id());
    let shared = Arc::new(Shared {
        clients,
        metrics: Metrics::new(Instant::now()),
        tracker: Tracker::default(),
        plan: scenario::plan("noop", &BTreeMap::new(), &cfg.namespace)?,
        identity: identity.clone(),
        task_queue: task_queue.clone(),
        id_prefix: format!("loadtest-{run_id}"),
        sticky_queue: None,
        history_cache: Default::default(),
    });
    let workers = TaskTracker::new();
    let stop_workers = CancellationToken::new();
    if cfg.worker {
        worker::spawn(&shared, cfg.pollers, &workers, &stop_workers);
    }
    let own_cpu_start = procstat::own_cpu_ticks();

    // Create.
    let create_started = Instant::now();
    let results: Vec<(u32, Result<(), String>)> = futures::stream::iter(0..cfg.schedules)
        .map(|i| {
            let shared = shared.clone();
            let request = create_request(&cfg, &run_id, &task_queue, &identity, i);
            async move {
                let r = retry(|| {
                    let mut c = shared.clients.get();
                    let r = req(request.clone());
                    async move { c.create_schedule(r).await }
                })
                .await;
                (i, r.map(|_| ()).map_err(|s| status_reason(&s)))
            }
        })
        .buffer_unordered(cfg.create_concurrency)
        .inspect(|(i, _)| {
            if !cfg.quiet && (i + 1) % 1000 == 0 {
                eprintln!("created about {} schedules", i + 1);
            }
        })
        .collect()
        .await;
    let create_s = create_started.elapsed().as_secs_f64();
    let mut create_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut action_ids = BTreeMap::new();
    for (i, r) in results {
        match r {
            Ok(()) => {
                action_ids.insert(action_workflow_id(&run_id, i), phase_s(&cfg, i));
            }
            Err(why) => *create_errors.entry(why).or_default() += 1,
        }
    }
    if !cfg.quiet {
        eprintln!(
            "created {} schedules in {create_s:.1} s; warm-up {:?}, then a {:?} window",
            action_ids.len(),
            cfg.warmup,
            cfg.duration
        );
    }
    tokio::time::sleep(cfg.warmup).await;

    // Measure.
    let window_start_ns = now_ns();
    let mut samples: Vec<Sample> = Vec::new();
    let mut sampling_error = None;
    let window_end = Instant::now() + cfg.duration;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(pid) = cfg.server_pid {
            match procstat::sample(pid) {
                Ok(s) => {
                    if !cfg.quiet
                        && samples.len().is_multiple_of(10)
                        && let Some(prev) = samples.last()
                    {
                        progress_line(prev, &s, window_start_ns);
                    }
                    samples.push(s);
                }
                Err(e) => {
                    sampling_error = Some(e.to_string());
                    break;
                }
            }
        }
        if Instant::now() >= window_end {
            break;
        }
    }
    let window_end_ns = now_ns();
    if let Some(e) = sampling_error {
        anyhow::bail!("the server process went away during the window: {e}");
    }
    tokio::time::sleep(cfg.grace).await;

    // Stop the schedules before listing: a server still taking actions answers a big listing
    // slowly (Temporal's SQLite visibility took over 10 s a page).
    let delete_errors = if cfg.keep_schedules {
        0
    } else {
        delete_all(&shared, &cfg, &run_id, &identity).await
    };
    // List what the schedules started.
    let runs = list_runs(&shared, &cfg.namespace, &task_queue).await?;
    stop_workers.cancel();
    workers.close();
    workers.wait().await;
    let own_cpu_s = match (own_cpu_start, procstat::own_cpu_ticks()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0),
        _ => None,
    };

    let expected = Expected {
        action_ids,
        interval_s: cfg.interval_s,
        from_s: ceil_s(window_start_ns),
        to_s: ceil_s(window_end_ns),
    };
    let actions: ActionStats = super::analyse(&expected, &runs);
    let mut busy: Vec<i128> = expected
        .times()
        .into_iter()
        .map(|t| i128::from(t) * 1_000_000_000)
        .chain(runs.iter().map(|r| r.start_ns))
        .chain(runs.iter().filter_map(|r| r.close_ns))
        .collect();
    let server = cfg
        .server_pid
        .map(|pid| procstat::usage(pid, &samples, &mut busy, BUSY_MARGIN));
    Ok(SchedulesReport::new(
        &cfg,
        &task_queue,
        expected.action_ids.len() as u64,
        create_errors,
        create_s,
        (window_start_ns, window_end_ns),
        expected.times().len() as u64,
        server,
        own_cpu_s,
        actions,
        runs.len() as u64,
        delete_errors,
    ))
}

fn ceil_s(ns: i128) -> i64 {
    i64::try_from(ns.div_euclid(1_000_000_000) + i128::from(ns.rem_euclid(1_000_000_000) != 0))
        .unwrap_or(i64::MAX)
}

/// Schedule `i`'s phase: 0, or with `--spread` its share of the interval, so the schedules'
/// actions are spread evenly over it in whole seconds.
fn phase_s(cfg: &SchedulesConfig, i: u32) -> i64 {
    if cfg.spread {
        i64::from(i) * cfg.interval_s / i64::from(cfg.schedules)
    } else {
        0
    }
}

fn schedule_id(run_id: &str, i: u32) -> String {
    format!("loadtest-sched-{run_id}-{i}")
}

/// The action's workflow id; each run's id is this plus `-<nominal time>`.
fn action_workflow_id(run_id: &str, i: u32) -> String {
    format!("loadtest-schedwf-{run_id}-{i}")
}

fn create_request(
    cfg: &SchedulesConfig,
    run_id: &str,
    task_queue: &str,
    identity: &str,
    i: u32,
) -> CreateScheduleRequest {
    let overlap = match cfg.overlap {
        Overlap::AllowAll => ScheduleOverlapPolicy::AllowAll,
        Overlap::Skip => ScheduleOverlapPolicy::Skip,
    };
    let interval = Duration::from_secs(u64::try_from(cfg.interval_s).unwrap_or(1));
    CreateScheduleRequest {
        namespace: cfg.namespace.clone(),
        schedule_id: schedule_id(run_id, i),
        schedule: Some(Schedule {
            spec: Some(ScheduleSpec {
                interval: vec![IntervalSpec {
                    interval: Some(proto_duration(interval)),
                    phase: (phase_s(cfg, i) > 0).then(|| {
                        proto_duration(Duration::from_secs(
                            u64::try_from(phase_s(cfg, i)).unwrap_or(0),
                        ))
                    }),
                }],
                ..Default::default()
            }),
            action: Some(ScheduleAction {
                action: Some(schedule_action::Action::StartWorkflow(
                    NewWorkflowExecutionInfo {
                        workflow_id: action_workflow_id(run_id, i),
                        workflow_type: Some(WorkflowType {
                            name: WorkflowKind::Noop.type_name().to_string(),
                        }),
                        task_queue: Some(normal_queue(task_queue)),
                        input: Some(WorkflowParams::default().to_payloads()),
                        ..Default::default()
                    },
                )),
            }),
            policies: Some(SchedulePolicies {
                overlap_policy: overlap as i32,
                ..Default::default()
            }),
            state: None,
        }),
        initial_patch: None,
        identity: identity.to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        memo: None,
        search_attributes: None,
    }
}

fn ts_ns(t: Option<&prost_wkt_types::Timestamp>) -> Option<i128> {
    t.map(|t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
        .filter(|ns| *ns > 0)
}

/// Every run on the task queue (only this benchmark's schedules start runs there).
async fn list_runs(shared: &Shared, namespace: &str, task_queue: &str) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    let mut token = Vec::new();
    loop {
        let request = ListWorkflowExecutionsRequest {
            namespace: namespace.to_string(),
            page_size: PAGE_SIZE,
            next_page_token: token.clone(),
            query: format!("TaskQueue = '{task_queue}'"),
        };
        let mut attempt = 0;
        let page = loop {
            attempt += 1;
            let r = shared
                .clients
                .get()
                .list_workflow_executions(with_timeout(request.clone(), LIST_TIMEOUT))
                .await;
            match r {
                Ok(page) => break page.into_inner(),
                Err(s) if attempt < 3 && s.code() != tonic::Code::InvalidArgument => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(s) => {
                    anyhow::bail!("ListWorkflowExecutions: {}", status_reason(&s));
                }
            }
        };
        for e in page.executions {
            let Some(start_ns) = ts_ns(e.start_time.as_ref()) else {
                continue;
            };
            let execution = e.execution.unwrap_or_default();
            runs.push(Run {
                workflow_id: execution.workflow_id,
                run_id: execution.run_id,
                start_ns,
                close_ns: ts_ns(e.close_time.as_ref()),
                completed: e.status == WorkflowExecutionStatus::Completed as i32,
            });
        }
        if page.next_page_token.is_empty() {
            return Ok(runs);
        }
        token = page.next_page_token;
    }
}

async fn delete_all(
    shared: &Arc<Shared>,
    cfg: &SchedulesConfig,
    run_id: &str,
    identity: &str,
) -> u64 {
    futures::stream::iter(0..cfg.schedules)
        .map(|i| {
            let request = DeleteScheduleRequest {
                namespace: cfg.namespace.clone(),
                schedule_id: schedule_id(run_id, i),
                identity: identity.to_string(),
            };
            async move {
                retry(|| {
                    let mut c = shared.clients.get();
                    let r = req(request.clone());
                    async move { c.delete_schedule(r).await }
                })
                .await
                .is_err()
            }
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await as u64
}

/// A progress line every ten samples: the server's CPU and RSS over the last second.
fn progress_line(prev: &Sample, cur: &Sample, start_ns: i128) {
    let dt = (cur.at_ns - prev.at_ns) as f64 / 1e9;
    let cpu = cur.cpu_ticks.saturating_sub(prev.cpu_ticks) as f64 / 100.0 / dt * 100.0;
    eprintln!(
        "{:>5.0} s  server CPU {cpu:>6.1}% of a core  RSS {:.1} MiB",
        (cur.at_ns - start_ns) as f64 / 1e9,
        cur.rss_kib as f64 / 1024.0
    );
}
