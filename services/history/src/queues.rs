//! The shard's transfer and timer queues. Tasks reach the processors in memory right after
//! their commit; on acquiring a shard the processors first load what the store still holds,
//! so nothing is lost across restarts. Finished tasks are deleted in ranges below the lowest
//! task still outstanding.
//!
//! A gate orders the writer's commits against the processors' own store calls: the writer
//! holds it from a commit until that commit's tasks are in the channels, so a processor that
//! holds it knows every committed task is either in the store or waiting in its channel.
//! Loads read the store without it (a shard with a large backlog must not stall its commits
//! while it reads) and then take it only to drain the channel: a task committed during the
//! read may be in both, and is kept once. Deleting timers needs it: a new timer may fire
//! before timers already queued, so a deletion bound computed without it could remove it from
//! the store before it arrives.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use prost::Message;
use temper_client::{HistoryClient, MatchingClient};
use temper_persistence::{ExecutionKey, TaskCategory, TaskKey};
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_types::NamespaceId;
use temper_workflow::{WorkflowError, activity, close, pb, start, timer, workflow_task};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::HistoryEngine;
use crate::error::HistoryError;
use crate::shard::ShardContext;
use crate::writer::fire_time;

type TransferBatch = Vec<(TaskKey, pb::TransferTask)>;
type TimerBatch = Vec<(TaskKey, pb::TimerTask)>;

/// Held by the writer from a commit until its tasks are sent, and by a processor while it
/// reads or deletes its tasks in the store (see the module comment).
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Where the writer hands freshly committed tasks.
pub struct QueueSinks {
    transfer: mpsc::UnboundedSender<TransferBatch>,
    timer: mpsc::UnboundedSender<TimerBatch>,
    gate: Gate,
}

/// A processor's end: the channel and the gate.
pub struct Inbox<T> {
    rx: mpsc::UnboundedReceiver<T>,
    gate: Gate,
}

pub struct QueueReceivers {
    pub(crate) transfer: Inbox<TransferBatch>,
    pub(crate) timer: Inbox<TimerBatch>,
}

pub fn queue_channels() -> (QueueSinks, QueueReceivers) {
    let (ttx, trx) = mpsc::unbounded_channel();
    let (mtx, mrx) = mpsc::unbounded_channel();
    let gate = Gate::default();
    (
        QueueSinks {
            transfer: ttx,
            timer: mtx,
            gate: gate.clone(),
        },
        QueueReceivers {
            transfer: Inbox {
                rx: trx,
                gate: gate.clone(),
            },
            timer: Inbox { rx: mrx, gate },
        },
    )
}

impl QueueSinks {
    /// Hold the gate across a commit and the sending of its tasks.
    pub(crate) async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    pub(crate) fn transfer(&self, t: TransferBatch) {
        if !t.is_empty() {
            let _ = self.transfer.send(t);
        }
    }

    pub(crate) fn timers(&self, t: TimerBatch) {
        if !t.is_empty() {
            let _ = self.timer.send(t);
        }
    }
}

/// Transfer (and, separately, timer) tasks one shard runs at once. Each running task is a
/// spawned future of tens of KiB (a heap profile put 512 per shard at about 300 MiB when
/// thousands of timers came due together); 64 keeps a burst's memory small and its timers no
/// later (docs/performance.md#open-workflows-and-memory).
const MAX_CONCURRENT_TASKS: usize = 64;
const ACK_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) fn key_of(ns: &str, wf: &str, run: &str) -> ExecutionKey {
    ExecutionKey {
        namespace_id: NamespaceId(ns.to_string()),
        workflow_id: wf.to_string(),
        run_id: run.to_string(),
    }
}

/// The transfer tasks of the shard: what the store holds, then what the writer sent that
/// is not among them.
///
/// The read runs without the gate, so commits go on meanwhile. Once it is done, the gate
/// is taken to drain the channel: every commit the read saw has sent its tasks by then (the
/// writer holds the gate from commit to send), and every task committed since this node
/// took the shard is either in the store or in the channel, so nothing is missed and the
/// keys the read returned are dropped from the channel's share. (The timer queue loads
/// through its window, [`TimerWindow::advance`].)
async fn load_transfer(
    shard: &ShardContext,
    inbox: &mut Inbox<TransferBatch>,
) -> Result<TransferBatch, HistoryError> {
    let mut tasks = load(
        shard,
        TaskCategory::Transfer,
        TaskKey::MIN,
        TaskKey::MAX,
        usize::MAX,
    )
    .await?;
    let _held = inbox.gate.lock().await;
    let mut seen: HashSet<TaskKey> = tasks.iter().map(|(k, _)| *k).collect();
    while let Ok(batch) = inbox.rx.try_recv() {
        tasks.extend(batch.into_iter().filter(|(k, _)| seen.insert(*k)));
    }
    Ok(tasks)
}

/// Load the first `limit` tasks of a category the store holds with
/// `exclusive_min < key < exclusive_max`.
async fn load<T: Message + Default>(
    shard: &ShardContext,
    category: TaskCategory,
    exclusive_min: TaskKey,
    exclusive_max: TaskKey,
    limit: usize,
) -> Result<Vec<(TaskKey, T)>, HistoryError> {
    let mut out = Vec::new();
    let mut from = exclusive_min;
    let mut read = 0;
    loop {
        let page_size = (limit - read).min(1000);
        if page_size == 0 {
            return Ok(out);
        }
        let page = shard
            .persistence
            .executions
            .get_tasks(shard.shard_id, category, from, exclusive_max, page_size)
            .await?;
        let n = page.len();
        read += n;
        for rec in page {
            from = rec.key;
            match T::decode(rec.data.as_slice()) {
                Ok(t) => out.push((rec.key, t)),
                Err(e) => {
                    tracing::error!(shard = %shard.shard_id, key = ?rec.key, error = %e, "undecodable task skipped")
                }
            }
        }
        if n < page_size {
            return Ok(out);
        }
    }
}

/// Tracks outstanding keys and deletes everything below the lowest.
struct Acker {
    outstanding: Mutex<BTreeSet<TaskKey>>,
    max_seen: Mutex<Option<TaskKey>>,
    /// Never delete from here on (the timer window's horizon: later timers may not have
    /// been seen).
    ceiling: Mutex<Option<TaskKey>>,
    acked: Mutex<TaskKey>,
    /// The last delete failed: it is retried every tick, and logged once at WARN until it
    /// works again (a store outage must not log twice a second for every shard).
    delete_failing: std::sync::atomic::AtomicBool,
}

impl Acker {
    fn new() -> Self {
        Self {
            outstanding: Mutex::new(BTreeSet::new()),
            max_seen: Mutex::new(None),
            ceiling: Mutex::new(None),
            acked: Mutex::new(TaskKey::MIN),
            delete_failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn add(&self, k: TaskKey) {
        self.outstanding.lock().expect("acker poisoned").insert(k);
        let mut m = self.max_seen.lock().expect("acker poisoned");
        if m.is_none_or(|m| k > m) {
            *m = Some(k);
        }
    }

    /// `k` is no longer held (it went back to the store): not outstanding, not done.
    fn forget(&self, k: &TaskKey) {
        self.outstanding.lock().expect("acker poisoned").remove(k);
    }

    /// Delete nothing at or past `k` from now on.
    fn ceiling(&self, k: TaskKey) {
        *self.ceiling.lock().expect("acker poisoned") = Some(k);
    }

    fn done(&self, k: &TaskKey) {
        self.outstanding.lock().expect("acker poisoned").remove(k);
        // A new timer can sort below the last deletion bound; once it is done, delete up to
        // the bound again, or it stays in the store for the next owner to fire again.
        let mut acked = self.acked.lock().expect("acker poisoned");
        if *k < *acked {
            *acked = TaskKey::MIN;
        }
    }

    /// The exclusive bound below which everything is done, if it moved.
    fn advance(&self) -> Option<TaskKey> {
        let low = self
            .outstanding
            .lock()
            .expect("acker poisoned")
            .first()
            .copied();
        let bound = match low {
            Some(k) => k,
            None => {
                let m = (*self.max_seen.lock().expect("acker poisoned"))?;
                key_after(m)
            }
        };
        let bound = match *self.ceiling.lock().expect("acker poisoned") {
            Some(c) => bound.min(c),
            None => bound,
        };
        let mut acked = self.acked.lock().expect("acker poisoned");
        if bound > *acked {
            *acked = bound;
            Some(bound)
        } else {
            None
        }
    }
}

async fn flush_acks(shard: &ShardContext, category: TaskCategory, acker: &Acker) {
    let pending = acker.outstanding.lock().expect("acker poisoned").len() as i64;
    let stats = &shard.stats;
    match category {
        TaskCategory::Timer => stats.timers_pending.store(pending, Ordering::Relaxed),
        _ => stats.transfer_pending.store(pending, Ordering::Relaxed),
    }
    let acked = *acker.acked.lock().expect("acker poisoned");
    if acked != TaskKey::MIN {
        match category {
            TaskCategory::Timer => {
                stats
                    .timer_ack_fire_time_ms
                    .store(acked.fire_time_ms, Ordering::Relaxed);
                stats
                    .timer_ack_task_id
                    .store(acked.task_id, Ordering::Relaxed);
            }
            _ => stats
                .transfer_ack_task_id
                .store(acked.task_id, Ordering::Relaxed),
        }
    }
    let Some(bound) = acker.advance() else {
        return;
    };
    let deleted = shard
        .persistence
        .executions
        .delete_tasks_before(
            shard.shard_id,
            temper_types::RangeId(shard.range.load(Ordering::Acquire)),
            category,
            bound,
        )
        .await;
    match deleted {
        Ok(()) => {
            if acker.delete_failing.swap(false, Ordering::Relaxed) {
                tracing::info!(shard = %shard.shard_id, ?category, "deleting acknowledged tasks works again");
            }
        }
        Err(e @ temper_persistence::StoreError::OwnershipLost { .. }) => {
            // Another node took the shard: its tasks are not ours to delete, nor to run.
            tracing::info!(shard = %shard.shard_id, ?category, error = %e,
                "another node took this shard (deleting acknowledged tasks was refused); stopping it");
            shard.cancel.cancel();
        }
        Err(e) => {
            if acker.delete_failing.swap(true, Ordering::Relaxed) {
                tracing::debug!(shard = %shard.shard_id, ?category, error = %e, "deleting acknowledged tasks failed again");
            } else {
                tracing::warn!(shard = %shard.shard_id, ?category, error = %e,
                    "deleting acknowledged tasks failed; retrying every tick, logged again when it works");
            }
            // Deleted again from the start on the next tick.
            *acker.acked.lock().expect("acker poisoned") = TaskKey::MIN;
        }
    }
}

/// Retry `f` with backoff until it succeeds, says the task is moot, or the shard closes.
async fn with_retries<F, Fut>(shard: &ShardContext, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), HistoryError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(()) | Err(HistoryError::ExecutionNotFound(_)) => return,
            Err(e) => {
                tracing::debug!(shard = %shard.shard_id, task = what, error = %e, "task failed; retrying");
                tokio::select! {
                    _ = shard.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Who the transfer queue talks to: matching, and the history service for tasks that act
/// on other workflows.
#[derive(Clone)]
pub(crate) struct Peers {
    pub matching: MatchingClient,
    pub engine: Weak<HistoryEngine>,
}

impl Peers {
    fn engine(&self) -> Result<Arc<HistoryEngine>, HistoryError> {
        self.engine.upgrade().ok_or_else(|| {
            HistoryError::Store(temper_persistence::StoreError::Unavailable(
                "history engine is shutting down".into(),
            ))
        })
    }

    fn history(&self) -> Result<HistoryClient, HistoryError> {
        self.engine
            .upgrade()
            .and_then(|e| e.history_client())
            .ok_or_else(|| {
                HistoryError::Store(temper_persistence::StoreError::Unavailable(
                    "history engine is shutting down".into(),
                ))
            })
    }
}

pub(crate) async fn run_transfer(
    shard: Arc<ShardContext>,
    peers: Peers,
    mut inbox: Inbox<TransferBatch>,
) {
    let acker = Arc::new(Acker::new());
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_TASKS));
    let initial = match load_transfer(&shard, &mut inbox).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(shard = %shard.shard_id, error = %e, "loading transfer tasks failed; closing shard");
            shard.cancel.cancel();
            return;
        }
    };
    let mut ack_tick = tokio::time::interval(ACK_INTERVAL);
    // Tasks wait here, as data, until a slot is free: a burst of thousands of tasks is not
    // thousands of spawned futures (each allocated and copied whole, most of them only to
    // wait for a slot).
    let mut waiting: VecDeque<(TaskKey, pb::TransferTask, tokio::time::Instant)> = VecDeque::new();
    let take = |batch: TransferBatch, waiting: &mut VecDeque<_>| {
        let arrived = tokio::time::Instant::now();
        for (key, task) in batch {
            acker.add(key);
            waiting.push_back((key, task, arrived));
        }
    };
    take(initial, &mut waiting);
    let mut spare: Option<OwnedSemaphorePermit> = None;
    loop {
        while !waiting.is_empty() {
            let Some(permit) = spare
                .take()
                .or_else(|| limit.clone().try_acquire_owned().ok())
            else {
                break;
            };
            let (key, task, arrived) = waiting.pop_front().expect("not empty");
            let (shard2, peers, acker) = (shard.clone(), peers.clone(), acker.clone());
            let work = async move {
                let _permit = permit;
                crate::metrics::task_latency("transfer", arrived.elapsed());
                with_retries(&shard2, "transfer", || {
                    process_transfer(&shard2, &peers, &task)
                })
                .await;
                acker.done(&key);
            };
            // Owned by the shard: stopping it ends the task wherever it waits.
            shard.tasks.spawn("transfer_task", work);
        }
        tokio::select! {
            _ = shard.cancel.cancelled() => return,
            b = inbox.rx.recv() => match b {
                Some(b) => take(b, &mut waiting),
                None => return,
            },
            p = limit.clone().acquire_owned(), if !waiting.is_empty() => match p {
                Ok(p) => spare = Some(p),
                Err(_) => return,
            },
            // No gate needed: transfer tasks arrive in task id order, so a task still on its
            // way is above every bound computed from the tasks already here.
            _ = ack_tick.tick() => flush_acks(&shard, TaskCategory::Transfer, &acker).await,
        }
    }
}

async fn process_transfer(
    shard: &ShardContext,
    peers: &Peers,
    task: &pb::TransferTask,
) -> Result<(), HistoryError> {
    let matching = &peers.matching;
    let key = key_of(&task.namespace_id, &task.workflow_id, &task.run_id);
    let execution = Some(WorkflowExecution {
        workflow_id: task.workflow_id.clone(),
        run_id: task.run_id.clone(),
    });
    match pb::TransferTaskKind::try_from(task.kind) {
        Ok(pb::TransferTaskKind::WorkflowTask) => {
            let ms = shard.snapshot(&key).await?;
            let queue = task.task_queue.clone().unwrap_or_default();
            let pending = ms.workflow_task.as_ref().is_some_and(|wt| {
                wt.scheduled_event_id == task.scheduled_event_id
                    && wt.started_event_id == 0
                    && wt.task_queue.as_ref().is_some_and(|q| q.name == queue.name)
            });
            if close::is_closed(&ms) || !pending {
                return Ok(());
            }
            let req = internal::AddWorkflowTaskRequest {
                namespace_id: task.namespace_id.clone(),
                execution,
                task_queue: Some(queue),
                scheduled_event_id: task.scheduled_event_id,
                schedule_to_start_timeout: task.schedule_to_start_timeout,
                attempt: task.attempt,
                directive: ms
                    .execution_info
                    .as_ref()
                    .map(temper_workflow::versioning::directive),
                priority: ms.execution_info.as_ref().and_then(|i| i.priority.clone()),
            };
            match matching.add_workflow_task(tonic::Request::new(req)).await {
                Ok(_) => Ok(()),
                Err(s) if temper_client::status::is_sticky_worker_unavailable(&s) => {
                    let scheduled = task.scheduled_event_id;
                    shard
                        .transact(&key, |txn| {
                            if let Some(t) = workflow_task::move_to_normal_queue(txn, scheduled) {
                                txn.add_transfer_task(t);
                            }
                            Ok(())
                        })
                        .await?;
                    Ok(())
                }
                Err(s) => Err(HistoryError::Store(
                    temper_persistence::StoreError::Unavailable(format!("matching: {s}")),
                )),
            }
        }
        Ok(pb::TransferTaskKind::ActivityTask) => {
            let ms = shard.snapshot(&key).await?;
            let pending = ms
                .activities
                .get(&task.scheduled_event_id)
                .is_some_and(|ai| ai.attempt == task.attempt && ai.started_time.is_none());
            if close::is_closed(&ms) || !pending {
                return Ok(());
            }
            let req = internal::AddActivityTaskRequest {
                namespace_id: task.namespace_id.clone(),
                execution,
                task_queue: task.task_queue.clone(),
                scheduled_event_id: task.scheduled_event_id,
                schedule_to_start_timeout: task.schedule_to_start_timeout,
                attempt: task.attempt,
                directive: ms
                    .execution_info
                    .as_ref()
                    .map(temper_workflow::versioning::directive),
                priority: temper_workflow::priority::merge(
                    ms.execution_info.as_ref().and_then(|i| i.priority.as_ref()),
                    ms.activities
                        .get(&task.scheduled_event_id)
                        .and_then(|ai| ai.priority.as_ref()),
                ),
            };
            matching
                .add_activity_task(tonic::Request::new(req))
                .await
                .map(|_| ())
                .map_err(|s| {
                    HistoryError::Store(temper_persistence::StoreError::Unavailable(format!(
                        "matching: {s}"
                    )))
                })
        }
        Ok(pb::TransferTaskKind::StartChild) => {
            crate::cross_workflow::start_child(
                shard,
                &peers.history()?,
                &key,
                task.scheduled_event_id,
            )
            .await
        }
        Ok(pb::TransferTaskKind::SignalExternal) => {
            crate::cross_workflow::signal_external(
                shard,
                &peers.history()?,
                &key,
                task.scheduled_event_id,
            )
            .await
        }
        Ok(pb::TransferTaskKind::CancelExternal) => {
            crate::cross_workflow::cancel_external(
                shard,
                &peers.history()?,
                &key,
                task.scheduled_event_id,
            )
            .await
        }
        Ok(pb::TransferTaskKind::CloseExecution) => {
            crate::cross_workflow::on_close(shard, &peers.history()?, &key).await
        }
        Ok(pb::TransferTaskKind::NexusStart) => {
            let engine = peers.engine()?;
            crate::nexus::send_start(&engine, shard, matching, &peers.history()?, &key, task).await
        }
        Ok(pb::TransferTaskKind::NexusCancel) => {
            let engine = peers.engine()?;
            crate::nexus::send_cancel(&engine, shard, matching, &key, task).await
        }
        Ok(pb::TransferTaskKind::CompletionCallbacks) => {
            crate::nexus::call_callbacks(shard, &peers.history()?, &key).await
        }
        Ok(pb::TransferTaskKind::UpdateCallbacks) => {
            crate::nexus::call_update_callbacks(shard, &peers.history()?, &key, &task.update_id)
                .await
        }
        Ok(pb::TransferTaskKind::ScheduleStart) => {
            crate::cross_workflow::schedule_starts(shard, &peers.history()?, &key).await
        }
        Ok(
            kind @ (pb::TransferTaskKind::ScheduleCancel | pb::TransferTaskKind::ScheduleTerminate),
        ) => {
            crate::cross_workflow::schedule_stop_other(
                &peers.history()?,
                &key,
                task.target.clone().unwrap_or_default(),
                kind == pb::TransferTaskKind::ScheduleTerminate,
            )
            .await
        }
        Ok(pb::TransferTaskKind::Unspecified) | Err(_) => Ok(()),
    }
}

/// How often the timer window moves on: shorter than the window (`[history]
/// timer_window_s`), so a timer is in memory before it is due, and short, so each move reads
/// few timers (the queue fires none while it reads).
fn window_step(window: Duration) -> Duration {
    (window / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// The first key at or after `at` (the window's exclusive end).
fn window_end(at: std::time::SystemTime) -> TaskKey {
    TaskKey {
        fire_time_ms: temper_workflow::time::millis(at),
        task_id: i64::MIN,
    }
}

/// The last key before `k`: the exclusive lower bound of a read that starts at `k`.
fn key_before(k: TaskKey) -> TaskKey {
    match k.task_id.checked_sub(1) {
        Some(task_id) => TaskKey { task_id, ..k },
        None => TaskKey {
            fire_time_ms: k.fire_time_ms.saturating_sub(1),
            task_id: i64::MAX,
        },
    }
}

/// The first key after `k`.
fn key_after(k: TaskKey) -> TaskKey {
    match k.task_id.checked_add(1) {
        Some(task_id) => TaskKey { task_id, ..k },
        None => TaskKey {
            fire_time_ms: k.fire_time_ms.saturating_add(1),
            task_id: i64::MIN,
        },
    }
}

/// The timers held in memory: every stored timer below `horizon` that is not done yet.
/// Timers at or past it are in the store only, and the acker is told never to delete that
/// far.
///
/// The horizon is the end of the time window (`[history] timer_window_s` from now), or
/// lower when the shard's share of `[history] max_timers_in_memory` is reached: then the
/// latest timers held go back to being in the store only, the horizon comes down to them
/// (`cut`), and the next ones are read as soon as the timers held fall to half the share.
/// (A timer already running when the horizon comes down below it is not deleted once done,
/// so it is read and fired again later: each timer checks the run's state when it fires, as
/// it does after a restart, and a second firing changes nothing.)
struct TimerWindow {
    pending: BTreeMap<TaskKey, pb::TimerTask>,
    acker: Arc<Acker>,
    horizon: TaskKey,
    /// The horizon is below the time window's end because the share was reached.
    cut: bool,
}

impl TimerWindow {
    fn new(acker: Arc<Acker>) -> Self {
        let window = Self {
            pending: BTreeMap::new(),
            acker,
            horizon: TaskKey::MIN,
            cut: false,
        };
        window.acker.ceiling(window.horizon);
        window
    }

    /// Timers from the writer or the store: held if below the horizon, else left to the
    /// store. Past `share`, the latest held timer goes back to the store only and the
    /// horizon comes down to it.
    fn take(&mut self, batch: impl IntoIterator<Item = (TaskKey, pb::TimerTask)>, share: usize) {
        for (k, t) in batch {
            if k >= self.horizon {
                continue;
            }
            self.acker.add(k);
            self.pending.insert(k, t);
            self.trim(share);
        }
    }

    /// Send the latest held timers back to the store until at most `share` are held (the
    /// share shrinks when the node takes more shards).
    fn trim(&mut self, share: usize) {
        while self.pending.len() > share {
            let (last, _) = self.pending.pop_last().expect("more than the share");
            self.acker.forget(&last);
            self.set_horizon(last);
            self.cut = true;
        }
    }

    fn set_horizon(&mut self, horizon: TaskKey) {
        self.horizon = horizon;
        self.acker.ceiling(horizon);
    }

    /// Whether to read the next timers now rather than at the next step: the share cut the
    /// window short and half of it is free again.
    fn wants_more(&self, share: usize) -> bool {
        self.cut && self.pending.len() <= share / 2
    }

    /// Move the window to `until`, loading the stored timers it now covers, as many as the
    /// share has room for.
    ///
    /// The read runs without the gate (commits go on while it reads). The writer's timers
    /// from the old horizon on were left to the store until now, and a timer committed during
    /// the read may or may not be in what it returned; so, under the gate, the channel is
    /// drained with the new horizon, then the read's timers are added (a key in both is held
    /// once). None of these timers was held before, so none has run yet.
    async fn advance(
        &mut self,
        shard: &ShardContext,
        inbox: &mut Inbox<TimerBatch>,
        until: TaskKey,
    ) -> Result<(), HistoryError> {
        if until <= self.horizon {
            return Ok(());
        }
        let share = shard.timer_share();
        let room = share.saturating_sub(self.pending.len());
        if room == 0 {
            // Short of `until`: read on as soon as half the share is free.
            self.cut = true;
            return Ok(());
        }
        let stored = load::<pb::TimerTask>(
            shard,
            TaskCategory::Timer,
            key_before(self.horizon),
            until,
            room,
        )
        .await?;
        // A full read may have left more below `until`: the window ends after what it read.
        let (horizon, cut) = match stored.last() {
            Some((last, _)) if stored.len() == room && key_after(*last) < until => {
                (key_after(*last), true)
            }
            _ => (until, false),
        };
        let _held = inbox.gate.lock().await;
        self.set_horizon(horizon);
        self.cut = cut;
        while let Ok(batch) = inbox.rx.try_recv() {
            self.take(batch, share);
        }
        self.take(stored, share);
        Ok(())
    }
}

pub(crate) async fn run_timers(
    shard: Arc<ShardContext>,
    peers: Peers,
    mut inbox: Inbox<TimerBatch>,
) {
    let acker = Arc::new(Acker::new());
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_TASKS));
    let mut window = TimerWindow::new(acker.clone());
    let until = window_end(shard.now() + shard.timer_window);
    match window.advance(&shard, &mut inbox, until).await {
        Ok(()) => {}
        Err(e) => {
            tracing::error!(shard = %shard.shard_id, error = %e, "loading timer tasks failed; closing shard");
            shard.cancel.cancel();
            return;
        }
    }
    let mut ack_tick = tokio::time::interval(ACK_INTERVAL);
    let step = window_step(shard.timer_window);
    let mut step_tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    // A due timer is spawned only with a free slot; until then it stays in the window, as
    // data (see `run_transfer`).
    let mut spare: Option<OwnedSemaphorePermit> = None;
    loop {
        let now = shard.now();
        let mut blocked = false;
        while let Some((k, _)) = window.pending.first_key_value() {
            if fire_time(k) > now {
                break;
            }
            let Some(permit) = spare
                .take()
                .or_else(|| limit.clone().try_acquire_owned().ok())
            else {
                blocked = true;
                break;
            };
            let (key, task) = window.pending.pop_first().expect("first exists");
            let work = {
                let (shard, peers, acker) = (shard.clone(), peers.clone(), acker.clone());
                async move {
                    let _permit = permit;
                    let late = shard
                        .now()
                        .duration_since(fire_time(&key))
                        .unwrap_or_default();
                    crate::metrics::task_latency("timer", late);
                    let fired_at = fire_time(&key);
                    with_retries(&shard, "timer", || {
                        process_timer(&shard, &peers, &task, fired_at)
                    })
                    .await;
                    acker.done(&key);
                }
            };
            // Owned by the shard: stopping it ends the task wherever it waits.
            shard.tasks.spawn("timer_task", work);
        }
        // The share cut the window short and half of it is free: read the next timers now,
        // not at the next step (a burst of due timers larger than the share).
        let share = shard.timer_share();
        window.trim(share);
        if window.wants_more(share) {
            let until = window_end(shard.now() + shard.timer_window);
            if let Err(e) = window.advance(&shard, &mut inbox, until).await {
                tracing::warn!(shard = %shard.shard_id, error = %e, "loading timers failed; will retry");
                // Retried at the next step, not at once.
                window.cut = false;
            }
        }
        // With every slot taken, the next due timer waits for a slot, not for its time.
        let wait = match window.pending.first_key_value() {
            _ if blocked => step,
            Some((k, _)) => fire_time(k).duration_since(now).unwrap_or_default(),
            None => step,
        };
        tokio::select! {
            _ = shard.cancel.cancelled() => return,
            b = inbox.rx.recv() => match b {
                Some(batch) => window.take(batch, share),
                None => return,
            },
            p = limit.clone().acquire_owned(), if blocked => match p {
                Ok(p) => spare = Some(p),
                Err(_) => return,
            },
            _ = tokio::time::sleep(wait) => {}
            _ = step_tick.tick() => {
                let until = window_end(shard.now() + shard.timer_window);
                if let Err(e) = window.advance(&shard, &mut inbox, until).await {
                    tracing::warn!(shard = %shard.shard_id, error = %e, "loading timers failed; will retry");
                }
            }
            _ = ack_tick.tick() => {
                // Under the gate, with every committed timer taken in first: a new timer may
                // sort below the bound the timers already here would give.
                let _held = inbox.gate.lock().await;
                while let Ok(batch) = inbox.rx.try_recv() {
                    window.take(batch, share);
                }
                flush_acks(&shard, TaskCategory::Timer, &acker).await;
            }
        }
    }
}

async fn process_timer(
    shard: &ShardContext,
    peers: &Peers,
    task: &pb::TimerTask,
    fired_at: std::time::SystemTime,
) -> Result<(), HistoryError> {
    let key = key_of(&task.namespace_id, &task.workflow_id, &task.run_id);
    let kind = pb::TimerTaskKind::try_from(task.kind).unwrap_or(pb::TimerTaskKind::Unspecified);
    if kind == pb::TimerTaskKind::DeleteHistory {
        return crate::api::delete::process(shard, &peers.history()?, &key).await;
    }
    if kind == pb::TimerTaskKind::ScheduleWake {
        let woke = shard
            .transact(&key, |txn| {
                temper_workflow::schedule::on_wake(txn, fired_at)
            })
            .await;
        return match woke {
            Ok(_) => Ok(()),
            // The scheduler refused its own state: retrying cannot help, and the schedule
            // stays describable for an operator to fix with UpdateSchedule.
            Err(HistoryError::Workflow(
                e @ (WorkflowError::InvalidArgument(_) | WorkflowError::FailedPrecondition(_)),
            )) => {
                tracing::warn!(workflow_id = %key.workflow_id, error = %e, "schedule could not wake up");
                Ok(())
            }
            Err(e) => Err(e),
        };
    }
    shard
        .transact(&key, |txn| {
            match kind {
                pb::TimerTaskKind::UserTimer => timer::on_fire(txn, &task.timer_id, task.event_id),
                pb::TimerTaskKind::ActivityTimeout | pb::TimerTaskKind::HeartbeatTimeout => {
                    activity::on_timeout(txn, task.event_id, task.attempt, task.timeout_type)
                }
                pb::TimerTaskKind::WorkflowTaskTimeout => {
                    workflow_task::on_timeout(txn, task.event_id, task.attempt, task.timeout_type)
                }
                pb::TimerTaskKind::WorkflowRunTimeout
                | pb::TimerTaskKind::WorkflowExecutionTimeout => close::on_run_timeout(txn),
                pb::TimerTaskKind::ActivityRetry => {
                    activity::on_retry_timer(txn, task.event_id, task.attempt)
                }
                pb::TimerTaskKind::WorkflowTaskRetry => {
                    workflow_task::on_retry_timer(txn, task.attempt)
                }
                pb::TimerTaskKind::WorkflowBackoff => start::on_backoff_timer(txn),
                pb::TimerTaskKind::NexusTimeout => {
                    temper_workflow::nexus::on_timeout(txn, task.event_id, task.timeout_type)
                }
                pb::TimerTaskKind::NexusRetry => {
                    temper_workflow::nexus::on_retry_timer(txn, task.event_id, task.attempt)
                }
                pb::TimerTaskKind::DeleteHistory
                | pb::TimerTaskKind::ScheduleWake
                | pb::TimerTaskKind::Unspecified => {}
            }
            Ok(())
        })
        .await?;
    Ok(())
}
