//! One task queue partition in memory: the pollers waiting on it, the tasks ready to hand
//! out, and (normal queues only) the state of its persisted backlog.
//!
//! Everything here is guarded by one `std::sync::Mutex` that is never held across an await:
//! store and history calls happen outside it. A task moves to a poller through a oneshot
//! channel wrapped in [`Dispatched`], which puts the task back if the poller is gone. Rule
//! for the code below: nothing that may drop a [`Dispatched`] (or a receiver holding one)
//! runs while the lock is held, because that drop takes the lock again.
//!
//! A child partition also keeps the permits that bound what it forwards to its root (polls
//! and task offers), and tells its backlog forwarder when tasks are ready (see `forward`).

mod backlog;
mod limit;
mod ready;
mod report;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use temper_persistence::{TaskQueueKey, TaskQueueStore};
use temper_types::Clock;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use backlog::WriteError;
use backlog::{Backlog, ReadStart};
use limit::{DispatchLimit, Rated, apply_rate};
use ready::{Pop, ReadyQueue};

use crate::config::MatchingConfig;
use crate::key::QueueKey;
use crate::pollers::{PollerHistory, PollerSeen};
use crate::rate::RateCounter;
use crate::task::{Dispatched, Origin, Outcome, Task, TaskInfo};

/// How often a poll waiting on a rate-limited queue looks again for a task the limit held
/// back (at most; sooner when the next dispatch is due sooner).
const LIMIT_RECHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// A partition's share of its task queue's UpdateTaskQueueConfig settings.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PartitionConfig {
    /// Tasks a second the partition hands out (`None`: no limit).
    pub rate: Option<f64>,
    /// Tasks a second each fairness key of weight 1 may have handed out (`None`: no limit).
    pub key_rate: Option<f64>,
    /// Fairness key -> the weight its tasks count with, whatever they carry.
    pub overrides: std::collections::HashMap<String, f32>,
    /// The queue's partitions, which share the workers' `max_tasks_per_second` (0 counts
    /// as 1).
    pub partitions: u32,
}

/// What every queue of one engine shares.
pub(crate) struct Context {
    pub store: Arc<dyn TaskQueueStore>,
    pub clock: Arc<dyn Clock>,
    pub config: MatchingConfig,
    /// Cancelled when the engine shuts down: pollers answer empty, background work stops.
    pub shutdown: CancellationToken,
    /// Background store work (batched writes, deletes); waited for on shutdown.
    pub tasks: TaskTracker,
}

impl Context {
    /// Run `fut` as an owned background task of the engine.
    pub(crate) fn spawn<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!("matching background task not started: no tokio runtime");
            return false;
        }
        self.tasks.spawn(fut);
        true
    }
}

/// What a poll got from [`TaskQueue::take`].
pub(crate) enum Wait {
    /// A task to start.
    Task(Dispatched),
    /// The deadline passed with no task.
    TimedOut,
    /// Woken without a task: the engine or this queue shut down, the queue lost its lease,
    /// or the worker said it is stopping.
    Woken,
    /// Nothing local, and the poll may go to the root partition now: it has left this
    /// queue's waiters, and holds one of the partition's forwarding permits.
    Forward(OwnedSemaphorePermit),
}

struct Waiter {
    id: u64,
    /// The poll's `worker_instance_key`, so ShutdownWorker can end that worker's polls.
    worker_instance_key: String,
    tx: oneshot::Sender<Dispatched>,
}

struct State {
    /// Pollers waiting for a task, oldest first. Never non-empty while `ready` or `queries`
    /// is.
    waiters: VecDeque<Waiter>,
    next_waiter_id: u64,
    /// Query tasks waiting for a poller, oldest first; handed out before `ready` tasks.
    /// Memory only: a query lives as long as its QueryWorkflow call.
    queries: VecDeque<Task>,
    /// Tasks in memory waiting for a poller, by priority and fairness (see `ready`).
    ready: ReadyQueue,
    /// The lease went to someone else: this queue is dead and must be re-created.
    lost: bool,
    /// Unloaded or shut down (sticky queues, on ShutdownWorker): no more adds or polls.
    closed: bool,
    last_poll: Option<Instant>,
    last_activity: Instant,
    pollers: PollerHistory,
    /// The deployment version of the last poller (worker versioning; a sticky queue's worker).
    poller_version: Option<temper_proto::temporal::api::deployment::v1::WorkerDeploymentVersion>,
    adds: RateCounter,
    dispatches: RateCounter,
    /// The persisted backlog; `None` for sticky queues.
    backlog: Option<Backlog>,
    /// This partition's dispatch limit, if any: its share of the queue rate limit
    /// (UpdateTaskQueueConfig), or else of the last poller's `max_tasks_per_second`.
    limit: Option<DispatchLimit>,
    /// Where `limit` comes from.
    limit_source: LimitSource,
    /// This partition's share of the queue rate limit of UpdateTaskQueueConfig.
    config_rate: Option<f64>,
    /// The last poll's `max_tasks_per_second` (activity workers), for the whole queue.
    worker_rate: Option<f64>,
    /// How many partitions the queue has (shares of the rates above).
    partitions: u32,
}

/// Where a partition's dispatch limit comes from (Temporal's `RateLimitSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitSource {
    /// No limit (Temporal's system default).
    System,
    /// UpdateTaskQueueConfig.
    Api,
    /// The workers' `max_tasks_per_second`.
    Worker,
}

/// One task queue partition.
pub(crate) struct TaskQueue {
    key: QueueKey,
    store_key: TaskQueueKey,
    ctx: Arc<Context>,
    state: Mutex<State>,
    /// Serializes lease renewals with ack-level saves, so that a save never runs into our own
    /// renewal and mistakes it for a lost lease.
    lease_io: tokio::sync::Mutex<()>,
    /// Polls this partition may have forwarded to its root at once.
    forward_polls: Arc<Semaphore>,
    /// Tasks this partition may be offering to its root at once.
    pub(crate) forward_tasks: Arc<Semaphore>,
    /// Told when a task lands in `ready`, or the queue closes (for the backlog forwarder).
    ready_notify: Notify,
}

impl std::fmt::Debug for TaskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskQueue").field("key", &self.key).finish()
    }
}

/// Removes a poller's waiter entry when its wait ends any way but by being handed a task
/// (including the poll's future being dropped).
struct WaiterGuard<'a> {
    queue: &'a TaskQueue,
    id: u64,
    armed: bool,
}

impl WaiterGuard<'_> {
    /// Remove the entry; `false` if it was already gone (a task or a wake-up was sent).
    fn remove(&mut self) -> bool {
        self.armed = false;
        let removed = {
            let mut st = self.queue.lock();
            st.waiters
                .iter()
                .position(|w| w.id == self.id)
                .and_then(|pos| st.waiters.remove(pos))
        };
        removed.is_some()
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.remove();
        }
    }
}

enum Step {
    Done(Wait),
    Read(backlog::ReadTicket),
    Wait {
        rx: oneshot::Receiver<Dispatched>,
        id: u64,
        wake_at: Instant,
    },
}

/// Why a waiting poll stopped waiting.
enum Woke {
    Sent(Result<Dispatched, oneshot::error::RecvError>),
    Timer,
    Forward(OwnedSemaphorePermit),
}

impl TaskQueue {
    fn with_backlog(key: QueueKey, ctx: Arc<Context>, backlog: Option<Backlog>) -> Arc<Self> {
        let now = Instant::now();
        let ttl = ctx.config.poller_history_ttl;
        Arc::new(Self {
            store_key: key.store_key(),
            key,
            state: Mutex::new(State {
                waiters: VecDeque::new(),
                next_waiter_id: 0,
                ready: ReadyQueue::default(),
                queries: VecDeque::new(),
                lost: false,
                closed: false,
                last_poll: None,
                last_activity: now,
                pollers: PollerHistory::new(ttl),
                poller_version: None,
                adds: RateCounter::new(now),
                dispatches: RateCounter::new(now),
                backlog,
                limit: None,
                limit_source: LimitSource::System,
                config_rate: None,
                worker_rate: None,
                partitions: 1,
            }),
            lease_io: tokio::sync::Mutex::new(()),
            forward_polls: Arc::new(Semaphore::new(ctx.config.max_forwarded_polls.max(1))),
            forward_tasks: Arc::new(Semaphore::new(ctx.config.max_forwarded_tasks.max(1))),
            ready_notify: Notify::new(),
            ctx,
        })
    }

    /// A sticky queue: memory only.
    pub(crate) fn new_sticky(key: QueueKey, ctx: Arc<Context>) -> Arc<Self> {
        Self::with_backlog(key, ctx, None)
    }

    pub(crate) fn key(&self) -> &QueueKey {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the queue; keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lock().lost
    }

    /// Remember a poll: who it was, and that the queue is alive.
    pub(crate) fn record_poll(&self, seen: &PollerSeen) {
        let now = Instant::now();
        let wall = self.ctx.clock.now();
        let mut st = self.lock();
        st.last_poll = Some(now);
        st.last_activity = now;
        st.pollers.record(seen, wall, now);
        st.poller_version = crate::versioning::poller_version(seen.deployment_options.as_ref());
        // As in Temporal, the last poll's limit is the workers' (none if it set none).
        if st.worker_rate != seen.max_tasks_per_second {
            st.worker_rate = seen.max_tasks_per_second;
            Self::refresh_limit_locked(&mut st, now);
        }
    }

    /// Bring the dispatch limit in line with its sources: the config's rate, else the
    /// workers', each shared by the partitions.
    fn refresh_limit_locked(st: &mut State, now: Instant) {
        let worker_share = st
            .worker_rate
            .filter(|r| r.is_finite())
            .map(|r| r.max(0.0) / f64::from(st.partitions.max(1)));
        let (rate, source) = match (st.config_rate, worker_share) {
            (Some(rate), _) => (Some(rate), LimitSource::Api),
            (None, Some(rate)) => (Some(rate), LimitSource::Worker),
            (None, None) => (None, LimitSource::System),
        };
        st.limit_source = source;
        apply_rate(&mut st.limit, rate, now, DispatchLimit::new);
    }

    /// The queue's dispatch limit as this partition applies it, for the whole queue (its
    /// share times the partitions; `None`: no limit), and where it comes from.
    pub(crate) fn effective_rate_limit(&self) -> (Option<f64>, LimitSource) {
        let st = self.lock();
        let total = st
            .limit
            .as_ref()
            .map(|l| l.rate() * f64::from(st.partitions.max(1)));
        (total, st.limit_source)
    }

    /// The deployment version of the worker that polled last (`None`: unversioned).
    pub(crate) fn poller_version(
        &self,
    ) -> Option<temper_proto::temporal::api::deployment::v1::WorkerDeploymentVersion> {
        self.lock().poller_version.clone()
    }

    /// Whether a worker polls this queue: one is waiting now or polled within the sticky
    /// window, and the queue was not shut down.
    pub(crate) fn has_live_poller(&self, now: Instant) -> bool {
        let window = self.ctx.config.sticky_poller_unavailable_window;
        let st = self.lock();
        !st.closed
            && !st.lost
            && (!st.waiters.is_empty()
                || st
                    .last_poll
                    .is_some_and(|t| now.saturating_duration_since(t) < window))
    }

    /// Hand `task` to the oldest waiting poller. Gives the task back if none takes it.
    // The task itself comes back, not an error: the caller stores it instead.
    #[allow(clippy::result_large_err)]
    fn offer_locked(self: &Arc<Self>, st: &mut State, mut task: Task) -> Result<(), Task> {
        if st.waiters.is_empty() {
            return Err(task);
        }
        // The queue rate limit counts every task handed out; queries are not tasks of the
        // queue's own and pass (as in Temporal). So does the task's fairness key's limit.
        let now = Instant::now();
        let limited = !task.is_query() && st.limit.is_some();
        if limited
            && let Some(limit) = st.limit.as_mut()
            && limit.try_take(now).is_err()
        {
            return Err(task);
        }
        let key_limited = !task.is_query() && st.ready.key_limited();
        if key_limited && st.ready.take_key(&task, now).is_err() {
            if limited && let Some(limit) = st.limit.as_mut() {
                limit.refund();
            }
            return Err(task);
        }
        while let Some(waiter) = st.waiters.pop_front() {
            match waiter.tx.send(Dispatched::new(task, self.clone())) {
                Ok(()) => return Ok(()),
                // That poller is gone; its guard has not removed it yet.
                Err(dispatched) => match dispatched.into_task() {
                    Some(t) => task = t,
                    None => return Ok(()),
                },
            }
        }
        if limited && let Some(limit) = st.limit.as_mut() {
            limit.refund();
        }
        if key_limited {
            st.ready.refund_key(&task);
        }
        Err(task)
    }

    /// Apply the task queue's UpdateTaskQueueConfig settings to this partition: its share of
    /// the queue rate limit (which replaces the workers' `max_tasks_per_second`) and of the
    /// fairness key rate limit, and the fairness weight overrides.
    pub(crate) fn apply_config(&self, config: &PartitionConfig) {
        let now = Instant::now();
        let mut st = self.lock();
        st.config_rate = config.rate;
        st.partitions = config.partitions.max(1);
        Self::refresh_limit_locked(&mut st, now);
        st.ready.set_key_rate_limit(config.key_rate, now);
        st.ready.set_weight_overrides(&config.overrides);
    }

    /// The rate limit this partition dispatches under, if any.
    #[cfg(test)]
    pub(crate) fn dispatch_limit(&self) -> Option<f64> {
        self.lock().limit.as_ref().map(DispatchLimit::rate)
    }

    /// Put a task that was not started back at the front, or give it to a waiting poller.
    fn requeue_locked(self: &Arc<Self>, st: &mut State, task: Task) {
        if st.lost || st.closed {
            // Nobody serves this queue any more. A backlog task is still in the store for
            // the next owner; a sticky task is covered by history's schedule-to-start timer.
            return;
        }
        if let Err(task) = self.offer_locked(st, task) {
            if task.is_query() {
                st.queries.push_front(task);
            } else {
                st.ready.push_front(task);
                self.ready_notify.notify_one();
            }
        }
    }

    /// Sync match: give a new task straight to a waiting poller. Gives the task back if no
    /// poller is waiting.
    // The task itself comes back, not an error: the caller stores it instead.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_sync_match(self: &Arc<Self>, task: Task) -> Result<(), Task> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.lost || st.closed {
            return Err(task);
        }
        st.last_activity = now;
        st.adds.record(now, 1);
        self.offer_locked(&mut st, task)
    }

    /// Keep a sticky task in memory until its worker polls. `false` if the queue is closed.
    pub(crate) fn hold(self: &Arc<Self>, info: TaskInfo) -> bool {
        let mut st = self.lock();
        if st.closed || st.lost {
            return false;
        }
        st.last_activity = Instant::now();
        let task = Task {
            info,
            origin: Origin::Memory,
        };
        if let Err(task) = self.offer_locked(&mut st, task) {
            st.ready.push_back(task);
        }
        true
    }

    /// Queue a query task for the next poller, ahead of every other task. `false` if the
    /// queue is closed or lost (the task is dropped, which its waiter sees).
    pub(crate) fn add_query(self: &Arc<Self>, task: Task) -> bool {
        let mut st = self.lock();
        if st.closed || st.lost {
            return false;
        }
        st.last_activity = Instant::now();
        // Queries whose callers gave up wait for no poller.
        st.queries.retain(|t| !t.is_abandoned_query());
        if let Err(task) = self.offer_locked(&mut st, task) {
            st.queries.push_back(task);
        }
        true
    }

    /// Whether a worker polled this queue within `window`, or one is waiting now.
    pub(crate) fn polled_within(&self, now: Instant, window: std::time::Duration) -> bool {
        let st = self.lock();
        !st.waiters.is_empty()
            || st
                .last_poll
                .is_some_and(|t| now.saturating_duration_since(t) < window)
    }

    /// The next query task whose caller still waits.
    fn pop_query_locked(self: &Arc<Self>, st: &mut State) -> Option<Dispatched> {
        while let Some(task) = st.queries.pop_front() {
            if !task.is_abandoned_query() {
                return Some(Dispatched::new(task, self.clone()));
            }
        }
        None
    }

    /// The next live query task (unless `tasks_only`), else the next unexpired ready task
    /// (dropping expired ones), highest priority first; with `limited`, only of a fairness
    /// key under its rate limit. `Err(Some(at))`: every ready task's key is at its limit
    /// until `at`; `Err(None)`: nothing to hand out.
    fn pop_ready_locked(
        self: &Arc<Self>,
        st: &mut State,
        tasks_only: bool,
        limited: bool,
    ) -> Result<Dispatched, Option<Instant>> {
        while !tasks_only && let Some(task) = st.queries.pop_front() {
            if !task.is_abandoned_query() {
                return Ok(Dispatched::new(task, self.clone()));
            }
        }
        let now = self.ctx.clock.now();
        loop {
            let task = match st.ready.pop(Instant::now(), limited) {
                Pop::Task(task) => task,
                Pop::Held(at) => return Err(at),
                Pop::Empty => return Err(None),
            };
            if task.info.is_expired(now) {
                tracing::debug!(queue = %self.key, workflow_id = %task.info.execution.workflow_id,
                    "dropping task past its schedule-to-start timeout");
                if limited {
                    st.ready.refund_key(&task);
                }
                if let Origin::Backlog(id) = task.origin {
                    self.ack_locked(st, task.info.priority.level, id);
                }
                continue;
            }
            return Ok(Dispatched::new(task, self.clone()));
        }
    }

    /// Wait until `deadline` for a task. The task leaves the queue only when it is handed
    /// over here; if the caller drops this future after that, the task goes back.
    ///
    /// With `forward_at`, a poll that is still waiting then (and gets a forwarding permit)
    /// stops waiting here and answers [`Wait::Forward`].
    pub(crate) async fn take(
        self: &Arc<Self>,
        deadline: Instant,
        worker_instance_key: &str,
        forward_at: Option<Instant>,
    ) -> Wait {
        loop {
            let step = {
                let mut st = self.lock();
                if st.lost || st.closed {
                    Step::Done(Wait::Woken)
                } else if let Some(query) = self.pop_query_locked(&mut st) {
                    Step::Done(Wait::Task(query))
                } else {
                    let now = Instant::now();
                    // A higher priority level with unread backlog is read before a task of
                    // a lower level is handed out.
                    match self.start_read_locked(&mut st, now) {
                        ReadStart::Read(ticket) => Step::Read(ticket),
                        start => {
                            // Under a queue rate limit a ready task waits for its turn.
                            let mut took = false;
                            let mut recheck = None;
                            if !st.ready.is_empty()
                                && let Some(limit) = st.limit.as_mut()
                            {
                                match limit.try_take(now) {
                                    Ok(()) => took = true,
                                    Err(next) => {
                                        recheck = Some(
                                            next.unwrap_or(now + LIMIT_RECHECK)
                                                .min(now + LIMIT_RECHECK),
                                        );
                                    }
                                }
                            }
                            let mut task = None;
                            if recheck.is_none() {
                                match self.pop_ready_locked(&mut st, true, true) {
                                    Ok(t) => task = Some(t),
                                    // Every ready task's fairness key is at its limit.
                                    Err(Some(at)) => recheck = Some(at.min(now + LIMIT_RECHECK)),
                                    Err(None) => {}
                                }
                            }
                            if let Some(task) = task {
                                Step::Done(Wait::Task(task))
                            } else {
                                if took && let Some(limit) = st.limit.as_mut() {
                                    limit.refund();
                                }
                                let mut wake_at = match start {
                                    ReadStart::RetryAt(at) => at.min(deadline),
                                    _ => deadline,
                                };
                                if st.limit.is_some() || st.ready.key_limited() {
                                    // A task a limit turns away now (here or when it
                                    // arrives) is taken when the next dispatch is due.
                                    wake_at = wake_at.min(recheck.unwrap_or(now + LIMIT_RECHECK));
                                }
                                let id = st.next_waiter_id;
                                st.next_waiter_id += 1;
                                let (tx, rx) = oneshot::channel();
                                st.waiters.push_back(Waiter {
                                    id,
                                    worker_instance_key: worker_instance_key.to_owned(),
                                    tx,
                                });
                                Step::Wait { rx, id, wake_at }
                            }
                        }
                    }
                }
            };
            match step {
                Step::Done(wait) => return wait,
                Step::Read(ticket) => {
                    self.read_page(ticket).await;
                }
                Step::Wait {
                    mut rx,
                    id,
                    wake_at,
                } => {
                    let mut guard = WaiterGuard {
                        queue: self,
                        id,
                        armed: true,
                    };
                    let forward = async {
                        match forward_at {
                            Some(at) if at < deadline => {
                                tokio::time::sleep_until(at).await;
                                self.forward_polls.clone().acquire_owned().await.ok()
                            }
                            _ => None,
                        }
                    };
                    let woke = tokio::select! {
                        r = &mut rx => Woke::Sent(r),
                        () = tokio::time::sleep_until(wake_at) => Woke::Timer,
                        () = self.ctx.shutdown.cancelled() => Woke::Timer,
                        Some(permit) = forward => Woke::Forward(permit),
                    };
                    let permit = match woke {
                        Woke::Sent(Ok(task)) => {
                            guard.armed = false;
                            return Wait::Task(task);
                        }
                        Woke::Sent(Err(_)) => {
                            guard.armed = false;
                            return Wait::Woken;
                        }
                        Woke::Forward(permit) => Some(permit),
                        Woke::Timer => None,
                    };
                    if !guard.remove() {
                        // Someone handed us a task (or woke us) just as we gave up.
                        if let Ok(task) = rx.try_recv() {
                            if !self.ctx.shutdown.is_cancelled() {
                                return Wait::Task(task);
                            }
                            drop(task);
                        } else if permit.is_some() {
                            // Woken to end the poll (ShutdownWorker): do not forward it.
                            return Wait::Woken;
                        }
                    }
                    drop(rx);
                    if self.ctx.shutdown.is_cancelled() || self.is_closed() {
                        return Wait::Woken;
                    }
                    if let Some(permit) = permit {
                        return Wait::Forward(permit);
                    }
                    if Instant::now() >= deadline {
                        return Wait::TimedOut;
                    }
                    // Woke early to retry a failed backlog read.
                }
            }
        }
    }

    /// Called once per dispatched task with what became of it.
    pub(crate) fn complete(self: &Arc<Self>, task: Task, outcome: Outcome) {
        let now = Instant::now();
        match task.origin {
            Origin::Sync(done) => {
                if outcome == Outcome::Started {
                    self.lock().dispatches.record(now, 1);
                }
                // The add call decides what to do with a failed sync match; if it went away
                // history retries the add.
                let _ = done.send(outcome);
            }
            Origin::Backlog(id) => {
                let mut st = self.lock();
                match outcome {
                    Outcome::Started | Outcome::Obsolete => {
                        if outcome == Outcome::Started {
                            st.dispatches.record(now, 1);
                        }
                        self.ack_locked(&mut st, task.info.priority.level, id);
                    }
                    Outcome::Failed => {
                        let task = Task {
                            info: task.info,
                            origin: Origin::Backlog(id),
                        };
                        self.requeue_locked(&mut st, task);
                    }
                }
            }
            Origin::Memory => {
                let mut st = self.lock();
                match outcome {
                    Outcome::Started => st.dispatches.record(now, 1),
                    Outcome::Obsolete => {}
                    Outcome::Failed => {
                        let task = Task {
                            info: task.info,
                            origin: Origin::Memory,
                        };
                        self.requeue_locked(&mut st, task);
                    }
                }
            }
            Origin::Query(offer) => match outcome {
                Outcome::Started => {
                    let _ = offer.delivered.send(());
                }
                // Dropping the offer tells its waiter the task cannot be delivered.
                Outcome::Obsolete => drop(offer),
                Outcome::Failed => {
                    let task = Task {
                        info: task.info,
                        origin: Origin::Query(offer),
                    };
                    let mut st = self.lock();
                    self.requeue_locked(&mut st, task);
                }
            },
        }
    }

    /// Shut the queue: wake its pollers empty and drop its in-memory tasks (ShutdownWorker
    /// on a sticky queue, or unloading an idle queue; a normal queue's tasks stay stored).
    pub(crate) fn close(&self) {
        let (waiters, ready, queries) = {
            let mut st = self.lock();
            st.closed = true;
            (
                std::mem::take(&mut st.waiters),
                std::mem::take(&mut st.ready),
                std::mem::take(&mut st.queries),
            )
        };
        self.ready_notify.notify_one();
        drop(waiters);
        drop(ready);
        drop(queries);
    }

    /// End the waiting polls of one worker (ShutdownWorker): they answer empty.
    pub(crate) fn cancel_polls_of(&self, worker_instance_key: &str) -> usize {
        let removed: Vec<Waiter> = {
            let mut st = self.lock();
            let (removed, kept): (Vec<Waiter>, Vec<Waiter>) = st
                .waiters
                .drain(..)
                .partition(|w| w.worker_instance_key == worker_instance_key);
            st.waiters = kept.into();
            removed
        };
        removed.len()
    }

    /// Closed or lost: this queue serves nobody any more.
    pub(crate) fn is_closed(&self) -> bool {
        let st = self.lock();
        st.closed || st.lost
    }

    /// Wait until a task is ready to hand out with no local poller waiting for it (reading
    /// the next backlog page if that is what it takes). `false`: the queue closed.
    pub(crate) async fn wait_ready(self: &Arc<Self>) -> bool {
        loop {
            let notified = self.ready_notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let step = {
                let mut st = self.lock();
                if st.lost || st.closed {
                    return false;
                }
                match self.start_read_locked(&mut st, Instant::now()) {
                    ReadStart::Read(ticket) => ReadStart::Read(ticket),
                    _ if !st.ready.is_empty() => return true,
                    start => start,
                }
            };
            match step {
                ReadStart::Read(ticket) => self.read_page(ticket).await,
                ReadStart::RetryAt(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                ReadStart::No => notified.await,
            }
        }
    }

    /// The next ready task (never a query), for the backlog forwarder to offer to the root.
    /// Like a poller's, it goes back to the front of the queue unless finished.
    pub(crate) fn pop_for_forwarding(self: &Arc<Self>) -> Option<Dispatched> {
        let mut st = self.lock();
        if st.lost || st.closed {
            return None;
        }
        // The root counts the rate limits of what it is offered.
        self.pop_ready_locked(&mut st, true, false).ok()
    }

    /// Nothing waits on, writes to or touched this queue for `ttl`: it can be unloaded.
    pub(crate) fn is_idle(&self, now: Instant, ttl: std::time::Duration) -> bool {
        let st = self.lock();
        if st.lost {
            return true;
        }
        let backlog_busy = st.backlog.as_ref().is_some_and(Backlog::is_busy);
        st.waiters.is_empty()
            && !backlog_busy
            && now.saturating_duration_since(st.last_activity) >= ttl
    }

    /// What a failed fenced write does, for tests that need it at a chosen moment.
    #[cfg(test)]
    pub(crate) fn mark_lost_for_test(&self) {
        self.mark_lost();
    }

    /// How many pollers are waiting right now.
    #[cfg(test)]
    pub(crate) fn waiting_pollers(&self) -> usize {
        self.lock().waiters.len()
    }
}
