//! One history shard owned by this node: its mutable-state cache with a lock per execution,
//! and the transaction primitive every workflow-changing API uses: load, apply, commit through
//! the shard's group-commit writer, then publish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prost::Message;
use temper_client::MatchingClient;
use temper_persistence::{
    CommitError, ConflictKind, CurrentExecution, CurrentRunCondition, CurrentRunWrite,
    ExecutionKey, Persistence, run_state,
};
use temper_proto::temporal::api::history::v1::{History, HistoryEvent};
use temper_types::{Clock, NamespaceId, ShardId, new_run_id};
use temper_workflow::transaction::{self, Applied, Write};
use temper_workflow::{Limits, Mutation, Txn, WorkflowError, pb, speculative};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::error::HistoryError;
use crate::event_log::EventLog;
use crate::retention::Retention;
use crate::tasks::TaskSet;
use crate::updates::RunUpdates;
use crate::writer::{CommitRequest, DeleteRequest, NewRunWrite, WriterRequest, branch_of};

/// The cached part of one execution. `None` state: not loaded yet.
#[derive(Default)]
pub struct Cached {
    state: Option<(pb::MutableState, i64)>,
    /// The encoded size of `state` (what it takes in the store).
    state_bytes: usize,
    /// The whole history of the run, once something needed it.
    pub events: Option<EventLog>,
    /// Admitted updates and their waiters; in memory only, dropped with `state`.
    pub updates: RunUpdates,
}

/// Memory of a cached run beyond what its state and history hold on the heap: the entry
/// itself (its decoded state is inline, and prost keeps every nested message inline, so
/// that is several KiB even for an empty state), the key and the map's slot.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = std::mem::size_of::<ExecutionEntry>() + 256;
/// What a decoded mutable state holds on the heap, against its encoded size (strings,
/// maps and repeated fields with their headers, spare capacity and the allocator's
/// rounding). Calibrated with `temper-loadtest scale` against RSS (docs/performance.md).
const DECODED_STATE_FACTOR: usize = 4;

impl Cached {
    pub fn state(&self) -> Option<&(pb::MutableState, i64)> {
        self.state.as_ref()
    }

    /// Replace the state (`None`: drop it, to be loaded again).
    pub fn set_state(&mut self, state: Option<(pb::MutableState, i64)>) {
        self.state_bytes = state.as_ref().map_or(0, |(ms, _)| ms.encoded_len());
        self.state = state;
    }

    /// About how much memory this run takes in the cache.
    fn approx_bytes(&self) -> usize {
        ENTRY_OVERHEAD_BYTES
            + self.state_bytes * DECODED_STATE_FACTOR
            + self.events.as_ref().map_or(0, EventLog::bytes)
    }
}

/// The run cache's memory budget for the whole node, shared by its shards: each shard
/// keeps its cached runs within its share (the budget divided by the shards running here).
#[derive(Debug)]
pub struct CacheBudget {
    limit: usize,
    /// Shards running on this node.
    shards: std::sync::atomic::AtomicUsize,
    /// Shards this node is to run (the controller's targets): while they start, a shard's
    /// share of what the node holds is already the share it will have.
    expected_shards: std::sync::atomic::AtomicUsize,
    /// Bytes of every cached run on the node (also exported as a gauge).
    used: std::sync::atomic::AtomicUsize,
}

impl CacheBudget {
    pub fn new(limit_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit_bytes,
            shards: Default::default(),
            expected_shards: Default::default(),
            used: Default::default(),
        })
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes cached on the node now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn share(&self) -> usize {
        self.limit / self.shards.load(Ordering::Relaxed).max(1)
    }

    /// The node is to run `n` shards from now on.
    pub(crate) fn expect_shards(&self, n: usize) {
        self.expected_shards.store(n, Ordering::Relaxed);
    }

    /// The shards a node-wide bound is split among: those running, or those it is to run
    /// if more.
    fn sharing(&self) -> usize {
        self.shards
            .load(Ordering::Relaxed)
            .max(self.expected_shards.load(Ordering::Relaxed))
            .max(1)
    }

    pub(crate) fn shard_started(&self) {
        self.shards.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn shard_stopped(&self) {
        let _ = self
            .shards
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// Where a cached run's bytes are counted: its shard's cache and the node's budget.
struct CacheAccount {
    shard: std::sync::atomic::AtomicUsize,
    node: Arc<CacheBudget>,
}

impl CacheAccount {
    fn add(&self, n: usize) {
        self.shard.fetch_add(n, Ordering::Relaxed);
        self.node.used.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.shard.fetch_sub(n, Ordering::Relaxed);
        self.node.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One execution in the cache: its lock, and a watch that ticks with `next_event_id` after
/// every commit (history long polls wait on it).
pub struct ExecutionEntry {
    lock: tokio::sync::Mutex<Cached>,
    pub changes: watch::Sender<i64>,
    /// The run has closed (evicted first when the cache is full).
    pub closed: AtomicBool,
    /// What this run counts in `account` (its size when its lock was last released).
    bytes: std::sync::atomic::AtomicUsize,
    account: Arc<CacheAccount>,
}

impl ExecutionEntry {
    fn new(account: Arc<CacheAccount>) -> Self {
        let (tx, _) = watch::channel(0);
        account.add(ENTRY_OVERHEAD_BYTES);
        Self {
            lock: tokio::sync::Mutex::new(Cached::default()),
            changes: tx,
            closed: AtomicBool::new(false),
            bytes: std::sync::atomic::AtomicUsize::new(ENTRY_OVERHEAD_BYTES),
            account,
        }
    }

    /// Lock the run's cached part; its size is counted again when the guard goes.
    pub async fn lock(&self) -> CachedGuard<'_> {
        CachedGuard {
            slot: self.lock.lock().await,
            entry: self,
        }
    }
}

impl Drop for ExecutionEntry {
    fn drop(&mut self) {
        self.account.sub(*self.bytes.get_mut());
    }
}

/// A locked [`Cached`]; releasing it counts the run's new size.
pub struct CachedGuard<'a> {
    slot: tokio::sync::MutexGuard<'a, Cached>,
    entry: &'a ExecutionEntry,
}

impl std::ops::Deref for CachedGuard<'_> {
    type Target = Cached;
    fn deref(&self) -> &Cached {
        &self.slot
    }
}

impl std::ops::DerefMut for CachedGuard<'_> {
    fn deref_mut(&mut self) -> &mut Cached {
        &mut self.slot
    }
}

impl Drop for CachedGuard<'_> {
    fn drop(&mut self) {
        let now = self.slot.approx_bytes();
        let before = self.entry.bytes.swap(now, Ordering::Relaxed);
        if now > before {
            self.entry.account.add(now - before);
        } else {
            self.entry.account.sub(before - now);
        }
    }
}

/// A refusal that depends on what the run's state says (not on the request alone): from a
/// cached state, it is given only once the shard is known to be still this node's.
fn answers_from_state(e: &WorkflowError) -> bool {
    match e {
        WorkflowError::NotFound(_)
        | WorkflowError::AlreadyCompleted
        | WorkflowError::FailedPrecondition(_)
        | WorkflowError::WorkflowNotReady(_)
        | WorkflowError::StaleState(_)
        | WorkflowError::Internal(_) => true,
        WorkflowError::InvalidArgument(_)
        | WorkflowError::ResourceExhausted(_)
        | WorkflowError::Unavailable(_) => false,
    }
}

/// What a committed transaction produced.
pub struct Updated<R> {
    pub value: R,
    /// The state after the transaction.
    pub state: pb::MutableState,
    /// The events it wrote, with task ids.
    pub events: Vec<HistoryEvent>,
}

const MAX_CONFLICT_RETRIES: usize = 5;
/// The run cache of a shard, within its share of the node's [`CacheBudget`]. Past it, a
/// sweep evicts runs nobody is using, closed ones first, down to three quarters of the
/// share; the store has everything the cache holds. A sweep visits every entry, so when
/// most of the cache is in use (a burst of thousands of runs at once) the next sweep waits
/// until the cache has doubled: sweeps cost O(1) per insert, not O(entries).
struct RunCache {
    runs: HashMap<ExecutionKey, Arc<ExecutionEntry>>,
    account: Arc<CacheAccount>,
    /// The size in bytes at which the next sweep happens (at least the share).
    sweep_at: usize,
}

impl RunCache {
    fn new(budget: Arc<CacheBudget>) -> Self {
        Self {
            runs: HashMap::new(),
            account: Arc::new(CacheAccount {
                shard: Default::default(),
                node: budget,
            }),
            sweep_at: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.account.shard.load(Ordering::Relaxed)
    }

    fn make_room(&mut self) {
        let share = self.account.node.share();
        let used = self.bytes();
        if used < self.sweep_at.max(share) {
            return;
        }
        let target = share / 4 * 3;
        let mut left = used;
        for closed_only in [true, false] {
            self.runs.retain(|_, e| {
                let evict = left > target
                    && Arc::strong_count(e) == 1
                    && (!closed_only || e.closed.load(Ordering::Relaxed));
                if evict {
                    left = left.saturating_sub(e.bytes.load(Ordering::Relaxed));
                }
                !evict
            });
        }
        let used = self.bytes();
        self.sweep_at = if used <= target { share } else { used * 2 };
    }
}

pub struct ShardContext {
    pub shard_id: ShardId,
    pub persistence: Persistence,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    cache: Mutex<RunCache>,
    writer: mpsc::Sender<WriterRequest>,
    /// The node's cache budget, for the shard's share (and told when the shard stops).
    budget: Arc<CacheBudget>,
    /// Timers due within this window are held in memory; later ones wait in the store.
    pub(crate) timer_window: Duration,
    /// The node's bound on timers held in memory (see [`ShardContext::timer_share`]).
    max_timers: usize,
    /// How long closed runs are kept, per namespace.
    retention: Arc<Retention>,
    /// Cancelled when the shard is lost or closed.
    pub cancel: CancellationToken,
    /// The shard's background work (see [`ShardContext::stop`]); `cancel` is its token.
    pub(crate) tasks: TaskSet,
    /// Speculative workflow tasks go to matching straight from here.
    pub matching: MatchingClient,
    /// Where the shard's queues are, for `temper admin shard describe`.
    pub(crate) stats: QueueStats,
    /// The range id this context writes under (the writer renews it).
    pub(crate) range: Arc<AtomicI64>,
    /// When the store last confirmed this node owns the shard (acquisition, ownership
    /// checks): the instant the confirming read or CAS was sent.
    confirmed_at: Mutex<tokio::time::Instant>,
    /// The read lease: for this long after `confirmed_at` the cache answers reads as it is;
    /// later, a read from the cache first confirms ownership in the store. A node taking
    /// the shard from another waits as long before its first commit (see
    /// [`crate::ShardControl::read_lease`]), so a read a stale owner answers from its cache
    /// never misses a commit of the new owner.
    read_lease: Duration,
}

impl Drop for ShardContext {
    fn drop(&mut self) {
        self.budget.shard_stopped();
    }
}

/// How a node's history keeps memory independent of the number of open runs.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// The run cache's budget for the whole node.
    pub cache_budget: Arc<CacheBudget>,
    /// Timers due within this window are held in memory; the rest wait in the store.
    pub timer_window: Duration,
    /// At most this many timers held in memory by the node, shared by its shards: past a
    /// shard's share, its latest timers wait in the store too, however soon they are due.
    pub max_timers: usize,
}

/// The default run cache budget of a node.
pub const DEFAULT_CACHE_BUDGET_BYTES: usize = 64 << 20;
/// The default timer window.
pub const DEFAULT_TIMER_WINDOW: Duration = Duration::from_secs(600);
/// The default bound on the timers a node holds in memory.
pub const DEFAULT_MAX_TIMERS: usize = 32_768;
/// A shard holds at least this many timers, whatever its share of the node's bound.
const MIN_TIMERS_PER_SHARD: usize = 8;

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            cache_budget: CacheBudget::new(DEFAULT_CACHE_BUDGET_BYTES),
            // Seconds in this crate's tests, so they exercise timers outside the window.
            timer_window: if cfg!(test) {
                Duration::from_secs(2)
            } else {
                DEFAULT_TIMER_WINDOW
            },
            max_timers: DEFAULT_MAX_TIMERS,
        }
    }
}

/// Queue positions of a shard, updated as its queues acknowledge tasks.
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    pub transfer_ack_task_id: AtomicI64,
    pub timer_ack_fire_time_ms: AtomicI64,
    pub timer_ack_task_id: AtomicI64,
    pub transfer_pending: AtomicI64,
    pub timers_pending: AtomicI64,
}

impl ShardContext {
    /// How many timers this shard may hold in memory now: its share of the node's bound
    /// among the shards the node runs (or is starting).
    pub(crate) fn timer_share(&self) -> usize {
        (self.max_timers / self.budget.sharing()).max(MIN_TIMERS_PER_SHARD)
    }

    /// How long the namespace keeps closed runs (cached; no store read on most calls).
    pub async fn retention_of(&self, ns: &NamespaceId) -> Duration {
        self.retention.of(ns).await
    }

    // The shard's collaborators, passed once by the controller that creates it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shard_id: ShardId,
        persistence: Persistence,
        limits: Limits,
        clock: Arc<dyn Clock>,
        writer: mpsc::Sender<WriterRequest>,
        retention: Arc<Retention>,
        tasks: TaskSet,
        matching: MatchingClient,
        memory: &MemoryConfig,
        confirmed_at: tokio::time::Instant,
        read_lease: Duration,
    ) -> Self {
        let budget = memory.cache_budget.clone();
        let timer_window = memory.timer_window;
        let max_timers = memory.max_timers;
        budget.shard_started();
        Self {
            shard_id,
            persistence,
            limits,
            clock,
            cache: Mutex::new(RunCache::new(budget.clone())),
            budget,
            timer_window,
            max_timers,
            writer,
            retention,
            cancel: tasks.token().clone(),
            tasks,
            matching,
            stats: QueueStats::default(),
            range: Arc::new(AtomicI64::new(0)),
            confirmed_at: Mutex::new(confirmed_at),
            read_lease,
        }
    }

    /// The store confirmed this node still owns the shard, by a read sent at `sent`.
    pub(crate) fn confirmed(&self, sent: tokio::time::Instant) {
        let mut at = self.confirmed_at.lock().expect("poisoned");
        *at = (*at).max(sent);
    }

    /// Whether the read lease holds: the cache may answer without asking the store.
    fn lease_holds(&self) -> bool {
        self.unconfirmed_for() < self.read_lease
    }

    /// Before the cache answers once the read lease has run out: confirm in the store that
    /// this node still owns the shard (renewing the lease), or stop the shard and answer
    /// "not owned" so the caller asks the new owner.
    async fn renew_lease(&self) -> Result<(), HistoryError> {
        let sent = tokio::time::Instant::now();
        if self.still_owned().await? {
            self.confirmed(sent);
            return Ok(());
        }
        tracing::warn!(shard = %self.shard_id,
            "another node took this shard (found when its read lease ran out); stopping it");
        self.cancel.cancel();
        Err(HistoryError::ShardNotOwned(self.shard_id.0))
    }

    /// How long since the store last confirmed this node owns the shard.
    pub(crate) fn unconfirmed_for(&self) -> Duration {
        self.confirmed_at.lock().expect("poisoned").elapsed()
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// Stop the shard and wait until its writer, its queues and every task they started have
    /// ended. Calls answer "not owned" from the start; the writer finishes a batch it is
    /// writing, everything else is dropped where it waits.
    pub(crate) async fn stop(&self) {
        self.tasks.stop().await;
    }

    pub fn entry(&self, key: &ExecutionKey) -> Arc<ExecutionEntry> {
        let mut cache = self.cache.lock().expect("cache mutex poisoned");
        if let Some(e) = cache.runs.get(key) {
            return e.clone();
        }
        cache.make_room();
        let e = Arc::new(ExecutionEntry::new(cache.account.clone()));
        cache.runs.insert(key.clone(), e.clone());
        e
    }

    /// Commits waiting for the writer (tests use it to line up a group commit).
    pub(crate) fn queued_commits(&self) -> usize {
        self.writer.max_capacity() - self.writer.capacity()
    }

    fn forget(&self, key: &ExecutionKey) {
        self.cache
            .lock()
            .expect("cache mutex poisoned")
            .runs
            .remove(key);
    }

    /// The current run of a workflow id, from the store.
    pub async fn current_run(
        &self,
        ns: &NamespaceId,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecution>, HistoryError> {
        Ok(self
            .persistence
            .executions
            .get_current_execution(self.shard_id, ns, workflow_id)
            .await?)
    }

    /// Resolve an empty run id to the current run.
    pub async fn resolve(
        &self,
        ns: &NamespaceId,
        workflow_id: &str,
        run_id: &str,
    ) -> Result<ExecutionKey, HistoryError> {
        let run_id = if run_id.is_empty() {
            match self.current_run(ns, workflow_id).await? {
                Some(c) => c.run_id,
                None => {
                    return Err(HistoryError::ExecutionNotFound(format!(
                        "WorkflowId {workflow_id}"
                    )));
                }
            }
        } else {
            run_id.to_string()
        };
        Ok(ExecutionKey {
            namespace_id: ns.clone(),
            workflow_id: workflow_id.to_string(),
            run_id,
        })
    }

    /// Load the state into the cached slot if needed.
    pub async fn load<'a>(
        &self,
        key: &ExecutionKey,
        slot: &'a mut Cached,
    ) -> Result<&'a (pb::MutableState, i64), HistoryError> {
        if slot.state.is_some() && !self.lease_holds() {
            // The cache may be stale if another node took the shard since the last check.
            self.renew_lease().await?;
        }
        if slot.state.is_none() {
            let rec = self
                .persistence
                .executions
                .get_execution(self.shard_id, key)
                .await?
                .ok_or_else(|| {
                    HistoryError::ExecutionNotFound(format!(
                        "WorkflowId {}, RunId {}",
                        key.workflow_id, key.run_id
                    ))
                })?;
            let ms = pb::MutableState::decode(rec.state.as_slice()).map_err(|e| {
                HistoryError::Store(temper_persistence::StoreError::Invalid(format!(
                    "mutable state: {e}"
                )))
            })?;
            slot.set_state(Some((ms, rec.db_record_version)));
            // Whatever was only in memory went with the old state.
            slot.updates.clear();
        }
        Ok(slot.state.as_ref().expect("loaded above"))
    }

    /// A read-only snapshot of an execution's state.
    pub async fn snapshot(&self, key: &ExecutionKey) -> Result<pb::MutableState, HistoryError> {
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        Ok(self.load(key, &mut slot).await?.0.clone())
    }

    /// Run `f` on the execution in a transaction and commit what it produced. A version
    /// conflict (someone else wrote) reloads and runs `f` again; a no-op writes nothing.
    pub async fn transact<R>(
        &self,
        key: &ExecutionKey,
        f: impl FnMut(&mut Txn<'_>) -> Result<R, WorkflowError>,
    ) -> Result<Updated<R>, HistoryError> {
        let (updated, ()) = self.transact_and_watch(key, f, |_, _, _| ()).await?;
        Ok(updated)
    }

    /// [`Self::transact`], then `watch` on the result and the run's in-memory updates before the
    /// run's lock is released (so a caller can wait on an update without missing news of it).
    /// Changes that only touch memory (the update registry, a speculative workflow task) are
    /// kept in the cache without a write; the store never sees a speculative task.
    pub async fn transact_and_watch<R, W>(
        &self,
        key: &ExecutionKey,
        mut f: impl FnMut(&mut Txn<'_>) -> Result<R, WorkflowError>,
        watch: impl FnOnce(&R, &pb::MutableState, &mut RunUpdates) -> W,
    ) -> Result<(Updated<R>, W), HistoryError> {
        let entry = self.entry(key);
        let mut reloaded = false;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut slot = entry.lock().await;
            let cached = slot.state.is_some();
            let (ms, version) = self.load(key, &mut slot).await?.clone();
            let now = self.now();
            let applied = transaction::apply(
                &ms,
                &slot.updates.registry,
                now,
                &self.limits,
                Some(new_run_id),
                &mut f,
            );
            if let Err(WorkflowError::StaleState(why)) = &applied
                && !reloaded
            {
                // Another node wrote this run since it was cached: read it again. A stale
                // owner then sees the new events and is fenced by its first write.
                tracing::info!(workflow_id = %key.workflow_id, %why, "cached state is stale; reloading it");
                slot.set_state(None);
                slot.events = None;
                reloaded = true;
                continue;
            }
            if let Err(e) = &applied
                && cached
                && answers_from_state(e)
                && !self.still_owned().await?
            {
                // A refusal from a cache this node may no longer own (it was paused, or its
                // ring is behind, and another node has written the run since): nothing is
                // written, so no fence would catch it. The caller asks the new owner.
                tracing::warn!(shard = %self.shard_id, workflow_id = %key.workflow_id, error = %e,
                    "another node took this shard (found before a refusal from its cache); stopping it");
                self.cancel.cancel();
                return Err(HistoryError::ShardNotOwned(self.shard_id.0));
            }
            let Applied {
                value,
                state: next,
                updates,
                write,
            } = applied?;
            let mutation = match write {
                Write::Nothing => {
                    let w = watch(&value, &ms, &mut slot.updates);
                    let updated = Updated {
                        value,
                        state: ms,
                        events: Vec::new(),
                    };
                    return Ok((updated, w));
                }
                Write::Memory => {
                    slot.set_state(Some((next.clone(), version)));
                    slot.updates.install(updates);
                    let w = watch(&value, &next, &mut slot.updates);
                    let updated = Updated {
                        value,
                        state: next,
                        events: Vec::new(),
                    };
                    return Ok((updated, w));
                }
                Write::Store(mutation) => mutation,
            };
            let mut mutation = mutation;
            let was_running = !temper_workflow::close::is_closed(&ms);
            let closed_now = was_running && temper_workflow::close::is_closed(&next);
            if closed_now {
                // Kept readable for the namespace's retention, then deleted.
                let at = now + self.retention.of(&key.namespace_id).await;
                mutation.timers.push((at, delete_history_task(key)));
            }
            // A run that continues this one takes over the current-run pointer instead.
            let new_run = mutation.new_run.take().map(|nr| {
                let mut current = current_write(&nr.ms, run_state::RUNNING);
                current.condition = CurrentRunCondition::RunIdIs(key.run_id.clone());
                let info = nr.ms.execution_info.clone().unwrap_or_default();
                let new_key = ExecutionKey {
                    namespace_id: key.namespace_id.clone(),
                    workflow_id: info.workflow_id,
                    run_id: info.run_id,
                };
                Box::new(NewRunWrite {
                    visibility: crate::visibility::record(&new_key, &nr.ms, 1),
                    key: new_key,
                    state: nr.ms.encode_to_vec(),
                    current,
                    mutation: nr.mutation,
                })
            });
            let current = (closed_now && new_run.is_none())
                .then(|| current_write(&next, run_state::COMPLETED));
            let stored = speculative::persisted_view(&next);
            match self
                .commit_with(key, Some(version), &stored, current, mutation, new_run)
                .await
            {
                Ok(events) => {
                    let closed = closed_now
                        .then(|| next.execution_info.as_ref().map(|i| i.status))
                        .flatten();
                    crate::metrics::transition(
                        &self.retention.name(&key.namespace_id).await,
                        closed,
                    );
                    if let Some(cached) = slot.events.as_mut() {
                        cached.append(&events);
                    }
                    warn_on_history_growth(key, &ms, &next, &self.limits);
                    if closed_now {
                        entry.closed.store(true, Ordering::Relaxed);
                    }
                    slot.set_state(Some((next.clone(), version + 1)));
                    slot.updates.install(updates);
                    entry.changes.send_replace(next.next_event_id);
                    let w = watch(&value, &next, &mut slot.updates);
                    let updated = Updated {
                        value,
                        state: next,
                        events,
                    };
                    return Ok((updated, w));
                }
                Err(CommitError::Conflict { .. }) => {
                    slot.set_state(None);
                    slot.events = None;
                    slot.updates.clear();
                    continue;
                }
                Err(e) => {
                    slot.updates.clear();
                    drop(slot);
                    self.forget(key);
                    return Err(e.into());
                }
            }
        }
        Err(HistoryError::Busy)
    }

    /// Whether the shard's range id in the store is still the one this context writes under:
    /// then no other node has written any of its runs since this node acquired it, and the
    /// cache is the truth.
    async fn still_owned(&self) -> Result<bool, HistoryError> {
        let held = self.range.load(Ordering::Acquire);
        let record = self
            .persistence
            .executions
            .get_or_create_shard(self.shard_id, &[])
            .await?;
        Ok(record.range_id.0 == held)
    }

    /// Look at a run's state and in-memory updates under its lock.
    pub async fn with_updates<T>(
        &self,
        key: &ExecutionKey,
        f: impl FnOnce(&pb::MutableState, &mut RunUpdates) -> T,
    ) -> Result<T, HistoryError> {
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        let (ms, _) = self.load(key, &mut slot).await?.clone();
        Ok(f(&ms, &mut slot.updates))
    }

    /// Create a new run (its first commit). `current` is the condition on the workflow id's
    /// current-run pointer.
    pub async fn create(
        &self,
        key: &ExecutionKey,
        ms: pb::MutableState,
        condition: CurrentRunCondition,
        mutation: Mutation,
    ) -> Result<(), CommitError> {
        self.create_with(key, ms, condition, mutation, |_| {}).await
    }

    /// [`Self::create`], then `then` on the new run's in-memory updates before its lock is
    /// released (update-with-start admits its update there).
    pub async fn create_with(
        &self,
        key: &ExecutionKey,
        ms: pb::MutableState,
        condition: CurrentRunCondition,
        mutation: Mutation,
        then: impl FnOnce(&mut RunUpdates),
    ) -> Result<(), CommitError> {
        let mut current = current_write(&ms, run_state::RUNNING);
        current.condition = condition;
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        let events = match self.commit(key, None, &ms, Some(current), mutation).await {
            Ok(events) => events,
            Err(e) => {
                // The run was never created: keep no cache entry for it.
                drop(slot);
                self.forget(key);
                return Err(e);
            }
        };
        crate::metrics::transition(&self.retention.name(&key.namespace_id).await, None);
        slot.set_state(Some((ms.clone(), 1)));
        slot.events = Some(EventLog::from_events(&events));
        then(&mut slot.updates);
        entry.changes.send_replace(ms.next_event_id);
        Ok(())
    }

    async fn commit(
        &self,
        key: &ExecutionKey,
        expected_version: Option<i64>,
        ms: &pb::MutableState,
        current: Option<CurrentRunWrite>,
        mutation: Mutation,
    ) -> Result<Vec<HistoryEvent>, CommitError> {
        self.commit_with(key, expected_version, ms, current, mutation, None)
            .await
    }

    async fn commit_with(
        &self,
        key: &ExecutionKey,
        expected_version: Option<i64>,
        ms: &pb::MutableState,
        current: Option<CurrentRunWrite>,
        mutation: Mutation,
        new_run: Option<Box<NewRunWrite>>,
    ) -> Result<Vec<HistoryEvent>, CommitError> {
        let (reply, rx) = oneshot::channel();
        let new_version = expected_version.unwrap_or(0) + 1;
        let visibility =
            crate::visibility::changes_visibility(&mutation, expected_version.is_none())
                .then(|| crate::visibility::record(key, ms, new_version));
        let req = WriterRequest::Commit(CommitRequest {
            key: key.clone(),
            branch: branch_of(key),
            expected_version,
            new_version,
            state: ms.encode_to_vec(),
            current,
            mutation,
            visibility,
            new_run,
            reply,
        });
        let gone = || {
            CommitError::Store(temper_persistence::StoreError::Unavailable(
                "shard is closing".into(),
            ))
        };
        self.writer.send(req).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Delete a run's mutable state (and the current-run pointer if it points at the run)
    /// and drop it from the cache; whoever loads it next finds nothing. Deleting a run that
    /// is gone is not an error. The caller deletes the history branch.
    pub async fn delete_run(&self, key: &ExecutionKey) -> Result<(), HistoryError> {
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        let (reply, rx) = oneshot::channel();
        let gone = || {
            HistoryError::Store(temper_persistence::StoreError::Unavailable(
                "shard is closing".into(),
            ))
        };
        self.writer
            .send(WriterRequest::Delete(DeleteRequest {
                key: key.clone(),
                reply,
            }))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())??;
        slot.set_state(None);
        slot.events = None;
        drop(slot);
        self.forget(key);
        Ok(())
    }

    /// The whole history of a run (cached after the first read).
    pub async fn events(
        &self,
        key: &ExecutionKey,
    ) -> Result<(Vec<HistoryEvent>, pb::MutableState), HistoryError> {
        self.events_between(key, 1, None).await
    }

    /// Events `from <= id < to` of a run (`to` defaults to the run's next event id), and
    /// the run's state at that point. The history is cached (encoded) after the first read.
    pub async fn events_between(
        &self,
        key: &ExecutionKey,
        from: i64,
        to: Option<i64>,
    ) -> Result<(Vec<HistoryEvent>, pb::MutableState), HistoryError> {
        let entry = self.entry(key);
        let mut slot = entry.lock().await;
        let (ms, _) = self.load(key, &mut slot).await?.clone();
        let fresh = slot
            .events
            .as_ref()
            .is_some_and(|log| log.next_event_id() == ms.next_event_id);
        if !fresh {
            let events = read_history(&self.persistence, key, ms.next_event_id).await?;
            slot.events = Some(EventLog::from_events(&events));
        }
        let to = to.unwrap_or(ms.next_event_id).min(ms.next_event_id);
        let log = slot.events.as_ref().expect("filled above");
        let events = log.read(from, to).map_err(|e| {
            HistoryError::Store(temper_persistence::StoreError::Invalid(format!(
                "cached history: {e}"
            )))
        })?;
        Ok((events, ms))
    }
}

/// The task that deletes a run once it is no longer kept (retention, or an explicit delete).
pub(crate) fn delete_history_task(key: &ExecutionKey) -> pb::TimerTask {
    pb::TimerTask {
        namespace_id: key.namespace_id.as_str().to_string(),
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
        kind: pb::TimerTaskKind::DeleteHistory as i32,
        ..Default::default()
    }
}

/// Log once when a run's history crosses the warning thresholds (a fifth of the hard limits,
/// as the Temporal server's defaults: 10,240 events, 10 MiB), where it should continue as new.
fn warn_on_history_growth(
    key: &ExecutionKey,
    before: &pb::MutableState,
    after: &pb::MutableState,
    limits: &Limits,
) {
    let bytes = |ms: &pb::MutableState| {
        ms.execution_info
            .as_ref()
            .map(|i| i.history_size_bytes)
            .unwrap_or(0)
    };
    let (warn_events, warn_bytes) = (limits.max_history_events / 5, limits.max_history_bytes / 5);
    let crossed = |b: i64, a: i64, at: i64| b < at && a >= at;
    if crossed(
        before.next_event_id - 1,
        after.next_event_id - 1,
        warn_events,
    ) || crossed(bytes(before), bytes(after), warn_bytes)
    {
        tracing::warn!(
            namespace_id = %key.namespace_id,
            workflow_id = %key.workflow_id,
            run_id = %key.run_id,
            events = after.next_event_id - 1,
            bytes = bytes(after),
            event_limit = limits.max_history_events,
            byte_limit = limits.max_history_bytes,
            "workflow history is large; it is terminated at the limit (continue as new)"
        );
    }
}

/// The current-run pointer for a run in `state`.
fn current_write(ms: &pb::MutableState, state: i32) -> CurrentRunWrite {
    let info = ms.execution_info.clone().unwrap_or_default();
    CurrentRunWrite {
        condition: CurrentRunCondition::RunIdIs(info.run_id.clone()),
        record: CurrentExecution {
            run_id: info.run_id,
            create_request_id: info.create_request_id,
            state,
            status: info.status,
            start_time_ms: info
                .start_time
                .as_ref()
                .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
                .unwrap_or(0),
        },
    }
}

/// Read a run's history from the store: events `1..next_event_id`, honouring the rule that
/// a node's highest transaction id wins.
pub async fn read_history(
    p: &Persistence,
    key: &ExecutionKey,
    next_event_id: i64,
) -> Result<Vec<HistoryEvent>, HistoryError> {
    let branch = branch_of(key);
    let mut out: Vec<HistoryEvent> = Vec::new();
    let mut after = None;
    let mut last_node = None;
    loop {
        let nodes = p
            .history
            .read_history_nodes(&branch, 1, next_event_id, after, 1000)
            .await?;
        let done = nodes.len() < 1000;
        if let Some(n) = nodes.last() {
            after = Some((n.node_id, n.txn_id));
        }
        for node in temper_persistence::history::winning_nodes(nodes, last_node) {
            last_node = Some(node.node_id);
            let batch = History::decode(node.events.as_slice()).map_err(|e| {
                HistoryError::Store(temper_persistence::StoreError::Invalid(format!(
                    "history node: {e}"
                )))
            })?;
            for ev in batch.events {
                let expected = out.last().map(|e| e.event_id + 1).unwrap_or(1);
                if ev.event_id == expected && ev.event_id < next_event_id {
                    out.push(ev);
                }
            }
        }
        if done {
            break;
        }
    }
    Ok(out)
}

/// Which of the conflicts means "the workflow id is taken by another run".
pub fn current_run_conflict(e: &CommitError) -> Option<Option<CurrentExecution>> {
    match e {
        CommitError::Conflict {
            kind: ConflictKind::CurrentRunMismatch { actual },
            ..
        } => Some(actual.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod run_cache_tests {
    use super::*;

    /// One shard's cache under a node budget of `runs` bare entries.
    fn cache(runs: usize) -> RunCache {
        let budget = CacheBudget::new(runs * ENTRY_OVERHEAD_BYTES);
        budget.shard_started();
        RunCache::new(budget)
    }

    fn key(i: usize) -> ExecutionKey {
        static NS: std::sync::OnceLock<NamespaceId> = std::sync::OnceLock::new();
        ExecutionKey {
            namespace_id: NS.get_or_init(NamespaceId::random).clone(),
            workflow_id: format!("wf-{i}"),
            run_id: "r".into(),
        }
    }

    fn insert(cache: &mut RunCache, i: usize) -> Arc<ExecutionEntry> {
        cache.make_room();
        let e = Arc::new(ExecutionEntry::new(cache.account.clone()));
        cache.runs.insert(key(i), e.clone());
        e
    }

    const RUNS: usize = 1024;

    #[test]
    fn runs_in_use_stay_and_sweeps_wait_until_the_cache_doubles() {
        let mut cache = cache(RUNS);
        // Three times the budget, all in use: nothing can go.
        let held: Vec<_> = (0..3 * RUNS).map(|i| insert(&mut cache, i)).collect();
        assert_eq!(cache.runs.len(), 3 * RUNS);
        // Sweeps happened at 1x and 2x the budget, not at every insert.
        assert_eq!(cache.sweep_at, 4 * RUNS * ENTRY_OVERHEAD_BYTES);
        drop(held);
        // Unused now: the next sweep (at 4x) brings the cache to three quarters of the
        // budget, and the next one waits for the budget again.
        for i in 3 * RUNS..4 * RUNS {
            drop(insert(&mut cache, i));
        }
        let kept = insert(&mut cache, usize::MAX);
        assert_eq!(cache.runs.len(), RUNS * 3 / 4 + 1);
        assert_eq!(cache.bytes(), (RUNS * 3 / 4 + 1) * ENTRY_OVERHEAD_BYTES);
        assert_eq!(cache.sweep_at, RUNS * ENTRY_OVERHEAD_BYTES);
        assert!(cache.runs.contains_key(&key(usize::MAX)));
        drop(kept);
    }

    #[test]
    fn closed_unused_runs_go_first() {
        let mut cache = cache(RUNS);
        let mut held = Vec::new();
        for i in 0..RUNS {
            let e = insert(&mut cache, i);
            if i % 2 == 0 {
                e.closed.store(true, Ordering::Relaxed);
            } else if i % 4 == 1 {
                held.push(e);
            }
        }
        insert(&mut cache, RUNS);
        // A quarter went to reach three quarters of the budget: all of them closed ones.
        assert_eq!(cache.runs.len(), RUNS * 3 / 4 + 1);
        let closed = cache
            .runs
            .values()
            .filter(|e| e.closed.load(Ordering::Relaxed))
            .count();
        assert_eq!(closed, RUNS / 2 - RUNS / 4);
        assert!(held.iter().all(|e| Arc::strong_count(e) == 2));
    }

    #[tokio::test]
    async fn a_run_counts_its_state_and_history_until_it_is_dropped() {
        let budget = CacheBudget::new(1 << 30);
        budget.shard_started();
        let mut cache = RunCache::new(budget.clone());
        let e = insert(&mut cache, 1);
        assert_eq!(budget.used(), ENTRY_OVERHEAD_BYTES);
        let ms = pb::MutableState {
            next_event_id: 42,
            execution_info: Some(pb::ExecutionInfo {
                workflow_id: "x".repeat(1000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let state_len = ms.encoded_len();
        let event = HistoryEvent {
            event_id: 1,
            ..Default::default()
        };
        {
            let mut slot = e.lock().await;
            slot.set_state(Some((ms, 1)));
            slot.events = Some(EventLog::from_events(&[event]));
        }
        let with_state = budget.used();
        assert!(
            with_state >= ENTRY_OVERHEAD_BYTES + state_len * DECODED_STATE_FACTOR,
            "{with_state}"
        );
        assert_eq!(cache.bytes(), with_state);
        e.lock().await.set_state(None);
        assert!(budget.used() < with_state);
        // Gone from the map and dropped: nothing counted any more.
        cache.runs.clear();
        drop(e);
        assert_eq!(budget.used(), 0);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn node_wide_bounds_are_split_among_the_shards_the_node_is_to_run() {
        let budget = CacheBudget::new(1000);
        assert_eq!(budget.sharing(), 1);
        budget.expect_shards(16);
        budget.shard_started();
        assert_eq!(budget.sharing(), 16, "one started of sixteen to run");
        for _ in 0..19 {
            budget.shard_started();
        }
        assert_eq!(budget.sharing(), 20, "more running than expected");
        budget.expect_shards(0);
        assert_eq!(budget.sharing(), 20);
    }

    #[test]
    fn the_budget_is_shared_by_the_running_shards() {
        let budget = CacheBudget::new(1000);
        assert_eq!(budget.share(), 1000);
        budget.shard_started();
        budget.shard_started();
        assert_eq!(budget.share(), 500);
        budget.shard_stopped();
        budget.shard_stopped();
        budget.shard_stopped();
        assert_eq!(budget.share(), 1000);
    }
}
