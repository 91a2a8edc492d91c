//! Runs one batch: pages through the runs its query matches (the visibility store's keyset
//! cursor), applies the operation to each at the batch's rate, checkpoints after every page
//! and, at the end, closes the batch's workflow with its stats ([`super::workflow`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use temper_client::HistoryClient;
use temper_persistence::VisibilityStore;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::workflowservice::v1::StartBatchOperationRequest;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use super::ops;
use super::progress::{Pacer, Progress, page_size};
use super::request::{self, Kind};
use super::workflow::{checkpoint, close, last_checkpoint, read_start};
use crate::namespaces::Namespaces;
use crate::visibility::{self, Lister};

/// Operations of one batch in flight at once (Temporal's `worker.batcherConcurrency`).
const CONCURRENCY: usize = 5;

/// What a runner needs from the frontend.
pub struct Deps {
    pub history: HistoryClient,
    pub visibility: Arc<dyn VisibilityStore>,
    pub namespaces: Arc<Namespaces>,
    /// Operations per second of a batch whose request does not say.
    pub default_rps: f64,
    /// This node's name, and this process's runners' name in checkpoints (`<node>/<uuid>`).
    pub node: String,
    pub owner: String,
}

/// One batch being run.
#[derive(Clone)]
pub struct Job {
    pub namespace_id: String,
    pub run_id: String,
    pub request: StartBatchOperationRequest,
    pub kind: Kind,
}

impl Job {
    pub(super) fn execution(&self) -> WorkflowExecution {
        WorkflowExecution {
            workflow_id: self.request.job_id.clone(),
            run_id: self.run_id.clone(),
        }
    }
}

/// What Describe can see of a batch this node is running.
pub struct Live {
    pub progress: Mutex<Progress>,
    /// Cancelled by StopBatchOperation.
    pub stop: CancellationToken,
}

enum End {
    Done(Progress),
    Failed(String),
    /// Stopped, closed by someone else, or this node is shutting down: leave the workflow be.
    Left,
}

/// Run a batch to its end. `resume` reads the last checkpoint from the workflow first.
pub async fn run(
    deps: Arc<Deps>,
    job: Job,
    live: Arc<Live>,
    resume: bool,
    shutdown: CancellationToken,
) {
    let end = tokio::select! {
        end = drive(&deps, &job, &live, resume) => end,
        _ = live.stop.cancelled() => End::Left,
        _ = shutdown.cancelled() => End::Left,
    };
    let outcome = match end {
        End::Done(p) => Ok(p),
        End::Failed(m) => Err(m),
        End::Left => return,
    };
    // Closing retries until it is done, the workflow closed otherwise, or shutdown.
    tokio::select! {
        _ = close(&deps, &job, outcome) => {}
        _ = live.stop.cancelled() => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Pause between retries of calls that failed for a reason that may pass (a shard moving).
pub(super) const RETRY: Duration = Duration::from_secs(1);

async fn drive(deps: &Deps, job: &Job, live: &Live, resume: bool) -> End {
    let started = loop {
        match read_start(
            &deps.history,
            &job.namespace_id,
            &job.request.namespace,
            job.execution(),
        )
        .await
        {
            Ok((_, started)) => break started,
            Err(s) if s.code() == Code::NotFound => return End::Left,
            Err(s) => {
                tracing::warn!(job_id = %job.request.job_id, error = %s, "batch: reading its start");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let query_text = request::adjusted_query(&job.request.visibility_query, job.kind, &started);
    let rps = request::rps(&job.request, deps.default_rps);
    let mut progress = if resume {
        loop {
            match last_checkpoint(&deps.history, job).await {
                Ok(p) => break p.unwrap_or_default(),
                Err(s) if s.code() == Code::NotFound => return End::Left,
                Err(s) => {
                    tracing::warn!(job_id = %job.request.job_id, error = %s, "batch: reading its checkpoint");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    } else {
        Progress::default()
    };
    let fresh = progress.current_page == 0 && progress.page_token.is_empty();
    let ns = match deps.namespaces.get(&job.request.namespace).await {
        Ok(ns) => ns,
        Err(s) => return End::Failed(s.message().to_owned()),
    };
    let attrs = visibility::registry(&ns);
    let source = if job.request.visibility_query.is_empty() {
        #[allow(deprecated)]
        let listed: Vec<WorkflowExecution> = if job.request.executions.is_empty() {
            job.request
                .target_executions
                .iter()
                .map(|e| WorkflowExecution {
                    workflow_id: e.business_id.clone(),
                    run_id: e.run_id.clone(),
                })
                .collect()
        } else {
            job.request.executions.clone()
        };
        Source::List(listed)
    } else {
        match visibility::parse(&query_text, &attrs) {
            Ok(q) => Source::Query(q),
            Err(s) => return End::Failed(s.message().to_owned()),
        }
    };
    if fresh {
        match &source {
            Source::List(l) => progress.total_estimate = i64::try_from(l.len()).unwrap_or(i64::MAX),
            Source::Query(query) => {
                let lister = Lister {
                    store: &deps.visibility,
                    namespace: &ns,
                    attrs: &attrs,
                    query,
                };
                match lister.count(false).await {
                    Ok((n, _)) => progress.total_estimate = i64::try_from(n).unwrap_or(i64::MAX),
                    Err(s) => return End::Failed(s.message().to_owned()),
                }
            }
        }
    }
    *lock(&live.progress) = progress.clone();
    // Claim the batch: from now on this runner's checkpoints are the newest.
    if let Err(end) = save(deps, job, &mut progress, false).await {
        return end;
    }
    let pacer = tokio::sync::Mutex::new(Pacer::new(rps));
    let size = page_size(rps);
    loop {
        let page = match &source {
            Source::List(l) => Ok(list_page(l, &progress.page_token, size)),
            Source::Query(query) => Lister {
                store: &deps.visibility,
                namespace: &ns,
                attrs: &attrs,
                query,
            }
            .page(size, &progress.page_token)
            .await
            .map(|(infos, next)| {
                (
                    infos.into_iter().filter_map(|i| i.execution).collect(),
                    next,
                )
            }),
        };
        let (targets, next) = match page {
            Ok(page) => page,
            Err(s) if s.code() == Code::InvalidArgument => {
                return End::Failed(s.message().to_owned());
            }
            Err(s) => {
                tracing::warn!(job_id = %job.request.job_id, error = %s, "batch: listing targets");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let (ok, failed) = apply_all(deps, job, live, &pacer, targets).await;
        progress.success += ok;
        progress.failure += failed;
        progress.current_page += 1;
        progress.page_token = next;
        *lock(&live.progress) = progress.clone();
        if progress.page_token.is_empty() {
            return End::Done(progress);
        }
        if let Err(end) = save(deps, job, &mut progress, true).await {
            return end;
        }
    }
}

/// Where a batch's targets come from.
enum Source {
    Query(temper_visibility::Query),
    /// An explicit list; its page token is the offset of the next page.
    List(Vec<WorkflowExecution>),
}

/// One page of an explicit list of runs, and the token of the next (empty at the end).
fn list_page(
    list: &[WorkflowExecution],
    token: &[u8],
    size: usize,
) -> (Vec<WorkflowExecution>, Vec<u8>) {
    let from = <[u8; 8]>::try_from(token)
        .map(|b| usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX))
        .unwrap_or(0)
        .min(list.len());
    let to = from.saturating_add(size).min(list.len());
    let next = if to < list.len() {
        (to as u64).to_be_bytes().to_vec()
    } else {
        Vec::new()
    };
    (list[from..to].to_vec(), next)
}

/// Checkpoint `progress` as this runner's. With `check`, first make sure no other runner has
/// taken the batch over since this one's last checkpoint; `Err` is how the batch ends when it
/// has, or when its workflow has closed.
async fn save(deps: &Deps, job: &Job, progress: &mut Progress, check: bool) -> Result<(), End> {
    loop {
        let r = async {
            if check
                && let Some(last) = last_checkpoint(&deps.history, job).await?
                && last.owner != deps.owner
            {
                return Ok(false);
            }
            progress.owner = deps.owner.clone();
            progress.at_ms = now_ms();
            checkpoint(&deps.history, job, progress).await?;
            Ok::<bool, Status>(true)
        }
        .await;
        match r {
            Ok(true) => return Ok(()),
            Ok(false) => {
                tracing::info!(job_id = %job.request.job_id, "batch: another node took it over");
                return Err(End::Left);
            }
            // The batch's workflow closed (stopped): nothing more to do.
            Err(s) if s.code() == Code::NotFound => return Err(End::Left),
            Err(s) => {
                tracing::warn!(job_id = %job.request.job_id, error = %s, "batch: checkpoint");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Wall-clock time for checkpoints, which other nodes read as a sign of life.
pub fn now_ms() -> i64 {
    temper_types::wall_clock_millis()
}

/// Apply the operation to `targets`, paced, a few at a time; the successes and failures.
async fn apply_all(
    deps: &Deps,
    job: &Job,
    live: &Live,
    pacer: &tokio::sync::Mutex<Pacer>,
    targets: Vec<WorkflowExecution>,
) -> (i64, i64) {
    let results: Vec<bool> = futures::stream::iter(targets)
        .map(|execution| async move {
            let at = pacer.lock().await.reserve(tokio::time::Instant::now());
            tokio::time::sleep_until(at).await;
            let target = ops::Target {
                namespace_id: &job.namespace_id,
                execution,
            };
            let ok = apply_with_retries(deps, job, target).await;
            let mut p = lock(&live.progress);
            if ok {
                p.success += 1;
            } else {
                p.failure += 1;
            }
            ok
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let ok = results.iter().filter(|ok| **ok).count() as i64;
    (ok, results.len() as i64 - ok)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Retries of one operation that failed for a reason that may pass (Temporal's default
/// `AttemptsOnRetryableError` is 50; temper waits between attempts, so fewer).
const ATTEMPTS: u32 = 5;

async fn apply_with_retries(deps: &Deps, job: &Job, target: ops::Target<'_>) -> bool {
    for attempt in 1..=ATTEMPTS {
        let t = ops::Target {
            namespace_id: target.namespace_id,
            execution: target.execution.clone(),
        };
        match ops::apply(&deps.history, &job.request, t).await {
            Ok(()) => return true,
            Err(s) => {
                let retryable = matches!(
                    s.code(),
                    Code::Unavailable
                        | Code::ResourceExhausted
                        | Code::Aborted
                        | Code::DeadlineExceeded
                        | Code::Internal
                        | Code::Unknown
                );
                tracing::debug!(job_id = %job.request.job_id, workflow_id = %target.execution.workflow_id, error = %s, attempt, "batch: operation failed");
                if !retryable || attempt == ATTEMPTS {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_lists_page_by_offset() {
        let list: Vec<WorkflowExecution> = (0..5)
            .map(|i| WorkflowExecution {
                workflow_id: format!("w{i}"),
                run_id: String::new(),
            })
            .collect();
        let (p1, t1) = list_page(&list, &[], 2);
        assert_eq!(p1.len(), 2);
        let (p2, t2) = list_page(&list, &t1, 2);
        assert_eq!(p2[0].workflow_id, "w2");
        let (p3, t3) = list_page(&list, &t2, 2);
        assert_eq!((p3.len(), t3.is_empty()), (1, true));
        assert_eq!(list_page(&list, &[], 10).0.len(), 5);
        assert_eq!(list_page(&list, &[1, 2, 3], 2).0[0].workflow_id, "w0");
    }
}
