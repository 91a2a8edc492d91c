//! A normal queue's persisted backlog: the lease, batched writes, paged reads and deletes.
//!
//! Task ids come from the lease's range (`range_id << 20 | seq`); a used-up block renews the
//! lease. The store keeps each priority level's tasks apart (in task id order), and each
//! level has its own read cursor: for a level, memory holds at most one read page plus
//! what was written while memory had caught up with the store; every stored task of the
//! level with an id above the level's `read_level` is only in the store, every one at or
//! below it is in memory, with a poller, or done. A level's next page is read when its
//! memory is empty and no higher level has tasks in memory, and before a poll takes a task
//! of a lower level: so a backlog larger than memory is still dispatched level by level.
//! Finished tasks are deleted in the background: everything up to the ack level (below the
//! oldest unfinished task of any level) in one range delete per level that had tasks, the
//! rest one by one. The lease row keeps that one ack level; a new owner reads every level
//! from it.
//!
//! Fairness across a backlog deeper than memory: stored tasks are read in the order they
//! were written, so a task of a quiet fairness key written behind a flood of another key's
//! would wait for the whole flood. Instead, a task that would stay in the store only because
//! memory is full is kept in memory "ahead" of the read cursor when its key has no task in
//! the store unread (so each key stays in order) and fewer than a tenth of a page in memory,
//! up to a page of such tasks per level. It is stored like any other; the read that later
//! reaches its id skips it. Which keys have unread stored tasks is only known for what this
//! owner wrote: after a load whose first page was full, a level keeps no task ahead until it
//! has been read through.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use temper_persistence::{QueueTask, StoreError};
use temper_types::{RangeId, TaskId, TaskIdAllocator};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Context, State, TaskQueue};
use crate::key::QueueKey;
use crate::priority::{LEVELS, level_index};
use crate::task::{Origin, Task, TaskInfo};

/// Why a task could not be written to the backlog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("the task queue's lease was taken by another owner")]
    OwnershipLost,
    #[error("matching is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(StoreError),
}

fn write_error(err: StoreError) -> WriteError {
    match err {
        StoreError::OwnershipLost { .. } => WriteError::OwnershipLost,
        other => WriteError::Store(other),
    }
}

pub(super) struct PendingWrite {
    info: TaskInfo,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// The store side of one priority level.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Highest task id of this level loaded into memory (or known to be done).
    read_level: TaskId,
    /// The store may hold tasks of this level above `read_level`.
    more_in_store: bool,
    /// Bumped by each write that stayed out of memory because older tasks are unread; a read
    /// that sees it change knows it may have missed those writes.
    skipped_writes: u64,
    /// Written but not read back yet (for the backlog count).
    unread_hint: i64,
    /// Tasks of this level were stored since its last range delete.
    needs_range_delete: bool,
}

impl Cursor {
    fn new(read_level: TaskId) -> Self {
        Self {
            read_level,
            more_in_store: false,
            skipped_writes: 0,
            unread_hint: 0,
            needs_range_delete: false,
        }
    }
}

/// Tasks of one level kept in memory ahead of its read cursor (see the module docs).
#[derive(Debug, Default)]
struct Ahead {
    /// Whether `unread` is known: false from a load whose first page was full until the level
    /// has been read through.
    known: bool,
    /// Fairness key -> its tasks written to the store and not read back yet.
    unread: HashMap<String, u32>,
    /// Ids of tasks kept in memory although above the read cursor.
    ids: BTreeSet<TaskId>,
}

impl Ahead {
    /// Forget ids the read cursor has passed.
    fn passed(&mut self, read_level: TaskId) {
        if self.ids.first().is_some_and(|&first| first <= read_level) {
            self.ids = self.ids.split_off(&(read_level + 1));
        }
    }

    /// One task of `key` was read back from the store.
    fn read_back(&mut self, key: &str) {
        if let Some(n) = self.unread.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.unread.remove(key);
            }
        }
    }
}

pub(super) struct Backlog {
    range_id: RangeId,
    ids: TaskIdAllocator,
    /// Per priority level (index 0: level 1).
    cursors: [Cursor; LEVELS as usize],
    /// Per priority level: tasks kept in memory ahead of the cursor.
    ahead: [Ahead; LEVELS as usize],
    /// Highest task id loaded into memory at any level; writes under way are above it.
    max_loaded: TaskId,
    reading: bool,
    read_failed_at: Option<Instant>,
    /// Loaded tasks not finished yet (ready, or with a poller), with their level.
    outstanding: BTreeMap<TaskId, u8>,
    /// The ack level last saved in the store.
    saved_ack_level: TaskId,
    pending_writes: Vec<PendingWrite>,
    flushing: bool,
    /// Finished tasks to delete, with their level.
    pending_deletes: Vec<(u8, TaskId)>,
    deleting: bool,
}

impl Backlog {
    /// Every task with an id up to this is done, at every level.
    fn ack_level(&self) -> TaskId {
        let below_outstanding = self
            .outstanding
            .first_key_value()
            .map_or(TaskId::MAX, |(first, _)| first - 1);
        self.cursors
            .iter()
            .filter(|c| c.more_in_store)
            .map(|c| c.read_level)
            .fold(below_outstanding.min(self.max_loaded), TaskId::min)
    }

    fn cursor(&mut self, level: u8) -> &mut Cursor {
        &mut self.cursors[level_index(level)]
    }

    pub(super) fn is_busy(&self) -> bool {
        self.flushing || self.reading || !self.pending_writes.is_empty()
    }

    pub(super) fn range_id(&self) -> RangeId {
        self.range_id
    }

    /// The highest task id read into memory.
    pub(super) fn read_level(&self) -> TaskId {
        self.max_loaded
    }

    pub(super) fn ack_level_hint(&self) -> TaskId {
        self.ack_level()
    }

    /// Unfinished stored tasks, roughly.
    pub(super) fn count_hint(&self) -> i64 {
        self.outstanding.len() as i64 + self.cursors.iter().map(|c| c.unread_hint).sum::<i64>()
    }

    /// Unfinished stored tasks of one level, roughly.
    pub(super) fn level_count_hint(&self, level: u8) -> i64 {
        let loaded = self.outstanding.values().filter(|&&l| l == level).count() as i64;
        loaded + self.cursors[level_index(level)].unread_hint
    }
}

/// What a poll that found no ready task should do about the backlog.
pub(super) enum ReadStart {
    /// Read the next page.
    Read(ReadTicket),
    /// The last read failed; wait, and try again at this time.
    RetryAt(Instant),
    /// Nothing to read, or another poll is reading.
    No,
}

pub(super) struct ReadTicket {
    level: u8,
    from: TaskId,
    skipped_writes: u64,
}

/// Clears the reading flag if a read is abandoned (its poll was dropped).
struct ReadingGuard<'a> {
    queue: &'a TaskQueue,
    armed: bool,
}

impl Drop for ReadingGuard<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Some(b) = self.queue.lock().backlog.as_mut()
        {
            b.reading = false;
        }
    }
}

impl TaskQueue {
    /// Take the lease of a normal queue and load the first page of its backlog.
    pub(crate) async fn open_normal(
        key: QueueKey,
        ctx: Arc<Context>,
    ) -> Result<Arc<Self>, StoreError> {
        let store_key = key.store_key();
        let lease = ctx.store.lease_task_queue(&store_key).await?;
        let batch = ctx.config.backlog_read_batch_size.max(1);
        // The first page of every level: from then on each level's state is known, and only
        // a level whose page came back full is read again.
        let mut pages = Vec::with_capacity(usize::from(LEVELS));
        for level in 1..=LEVELS {
            let page = ctx
                .store
                .get_queue_tasks(&store_key, level, lease.ack_level, batch)
                .await?;
            pages.push(page);
        }
        tracing::debug!(queue = %key, range_id = %lease.range_id,
            loaded = pages.iter().map(Vec::len).sum::<usize>(), "task queue leased");
        let mut cursors = [Cursor::new(lease.ack_level); LEVELS as usize];
        let mut ahead: [Ahead; LEVELS as usize] = std::array::from_fn(|_| Ahead::default());
        for ((cursor, ahead), page) in cursors.iter_mut().zip(&mut ahead).zip(&pages) {
            cursor.more_in_store = page.len() >= batch;
            cursor.needs_range_delete = !page.is_empty();
            // What the store holds beyond a full page, and of which keys, is unknown.
            ahead.known = !cursor.more_in_store;
        }
        let backlog = Backlog {
            range_id: lease.range_id,
            ids: TaskIdAllocator::new(lease.range_id),
            cursors,
            ahead,
            max_loaded: lease.ack_level,
            reading: false,
            read_failed_at: None,
            outstanding: BTreeMap::new(),
            saved_ack_level: lease.ack_level,
            pending_writes: Vec::new(),
            flushing: false,
            pending_deletes: Vec::new(),
            deleting: false,
        };
        let check = ctx.config.lease_check_interval;
        let queue = Self::with_backlog(key, ctx, Some(backlog));
        {
            let mut st = queue.lock();
            for page in pages {
                queue.load_locked(&mut st, page);
            }
        }
        if let Some(every) = check {
            let q = queue.clone();
            queue
                .ctx
                .spawn(async move { q.check_lease_every(every).await });
        }
        Ok(queue)
    }

    /// Confirm the lease every `every` while the queue is open. A node that took the
    /// partition while this one still held it (its ring was stale) may have written tasks to
    /// the store under its own lease; this queue would never read them while it believed it
    /// held the lease and had read everything. Once the check fails, the queue is lost: its
    /// polls leave, and the partition's owner loads it again, backlog and all.
    async fn check_lease_every(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.ctx.shutdown.cancelled() => return,
            }
            if self.is_closed() {
                return;
            }
            let io = self.lease_io.lock().await;
            let Some((range_id, ack_level)) = self
                .lock()
                .backlog
                .as_ref()
                .map(|b| (b.range_id, b.saved_ack_level))
            else {
                return;
            };
            match self
                .ctx
                .store
                .update_task_queue(&self.store_key, range_id, ack_level)
                .await
            {
                Ok(()) => {}
                Err(StoreError::OwnershipLost { .. }) => {
                    drop(io);
                    self.mark_lost();
                    return;
                }
                Err(err) => {
                    tracing::warn!(queue = %self.key, %err, "checking the task queue lease failed")
                }
            }
        }
    }

    /// Put tasks read from the store into memory (to waiting pollers first).
    fn load_locked(self: &Arc<Self>, st: &mut State, page: Vec<QueueTask>) {
        if st.lost || st.closed {
            return;
        }
        for stored in page {
            let Some(b) = st.backlog.as_mut() else {
                return;
            };
            let level = stored.priority.clamp(1, LEVELS);
            let cursor = b.cursor(level);
            if stored.task_id <= cursor.read_level {
                continue;
            }
            cursor.read_level = stored.task_id;
            cursor.needs_range_delete = true;
            b.max_loaded = b.max_loaded.max(stored.task_id);
            let ahead = &mut b.ahead[level_index(level)];
            if ahead.ids.remove(&stored.task_id) {
                // Kept in memory when it was written: there already, or done.
                continue;
            }
            match TaskInfo::decode(&stored.data) {
                Ok(mut info) => {
                    ahead.read_back(&info.priority.fairness_key);
                    // Where the task is stored decides its level (a task stored before
                    // levels existed has the default one).
                    info.priority.level = level;
                    b.outstanding.insert(stored.task_id, level);
                    let task = Task {
                        info,
                        origin: Origin::Backlog(stored.task_id),
                    };
                    if let Err(task) = self.offer_locked(st, task) {
                        st.ready.push_back(task);
                        self.ready_notify.notify_one();
                    }
                }
                Err(err) => {
                    // Never panic on what the disk holds; a task nobody can decode can never
                    // be started, so drop it loudly.
                    tracing::error!(queue = %self.key, task_id = stored.task_id, %err,
                        "deleting undecodable backlog task");
                    self.ack_locked(st, level, stored.task_id);
                }
            }
        }
    }

    /// Write a task to the backlog; returns once it is stored (and in memory, or readable).
    /// Adds that arrive while a write is in flight are written together in the next one.
    pub(crate) async fn persist(self: &Arc<Self>, info: TaskInfo) -> Result<(), WriteError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.lock();
            if st.lost || st.closed {
                return Err(WriteError::OwnershipLost);
            }
            if self.ctx.shutdown.is_cancelled() {
                return Err(WriteError::ShuttingDown);
            }
            st.last_activity = Instant::now();
            let Some(b) = st.backlog.as_mut() else {
                return Err(WriteError::Store(StoreError::Invalid(
                    "sticky task queues are not persisted".to_owned(),
                )));
            };
            b.pending_writes.push(PendingWrite { info, done: tx });
            if !b.flushing {
                let queue = self.clone();
                b.flushing = self.ctx.spawn(async move { queue.flush_loop().await });
                if !b.flushing {
                    b.pending_writes.clear();
                    return Err(WriteError::ShuttingDown);
                }
            }
        }
        rx.await.unwrap_or(Err(WriteError::ShuttingDown))
    }

    /// Write pending adds in batches until none are left.
    async fn flush_loop(self: Arc<Self>) {
        let max_batch = self.ctx.config.max_write_batch_size.max(1);
        loop {
            let (batch, lost) = {
                let mut st = self.lock();
                let lost = st.lost;
                let Some(b) = st.backlog.as_mut() else {
                    return;
                };
                if b.pending_writes.is_empty() {
                    b.flushing = false;
                    return;
                }
                let n = b.pending_writes.len().min(max_batch);
                let batch: Vec<PendingWrite> = b.pending_writes.drain(..n).collect();
                (batch, lost)
            };
            let result = if lost {
                Err(WriteError::OwnershipLost)
            } else if self.ctx.shutdown.is_cancelled() {
                Err(WriteError::ShuttingDown)
            } else {
                tokio::select! {
                    r = self.write_batch(&batch) => r,
                    () = self.ctx.shutdown.cancelled() => Err(WriteError::ShuttingDown),
                }
            };
            match result {
                Ok(ids) => {
                    let mut done = Vec::with_capacity(batch.len());
                    {
                        let mut st = self.lock();
                        for (id, write) in ids.into_iter().zip(batch) {
                            self.written_locked(&mut st, id, write.info);
                            done.push(write.done);
                        }
                    }
                    for d in done {
                        let _ = d.send(Ok(()));
                    }
                }
                Err(err) => {
                    if err == WriteError::OwnershipLost && !lost {
                        self.mark_lost();
                    }
                    for write in batch {
                        let _ = write.done.send(Err(err.clone()));
                    }
                }
            }
        }
    }

    /// Allocate ids (renewing the lease when the block is used up) and write one batch.
    async fn write_batch(&self, batch: &[PendingWrite]) -> Result<Vec<TaskId>, WriteError> {
        let n = batch.len();
        let allocated = {
            let mut st = self.lock();
            let b = st
                .backlog
                .as_mut()
                .ok_or(WriteError::Store(StoreError::Invalid(
                    "sticky task queues are not persisted".to_owned(),
                )))?;
            if b.ids.remaining() >= n as i64 {
                Some((
                    b.range_id,
                    (0..n).filter_map(|_| b.ids.allocate()).collect(),
                ))
            } else {
                None
            }
        };
        let (range_id, ids): (RangeId, Vec<TaskId>) = match allocated {
            Some(a) => a,
            None => self.renew_lease(n).await?,
        };
        let tasks: Vec<QueueTask> = ids
            .iter()
            .zip(batch)
            .map(|(id, write)| QueueTask {
                task_id: *id,
                priority: write.info.priority.level,
                data: write.info.encode(),
            })
            .collect();
        self.ctx
            .store
            .create_queue_tasks(&self.store_key, range_id, &tasks)
            .await
            .map_err(write_error)?;
        Ok(ids)
    }

    /// Take the next range for a fresh block of task ids, and allocate `n` from it.
    async fn renew_lease(&self, n: usize) -> Result<(RangeId, Vec<TaskId>), WriteError> {
        let _io = self.lease_io.lock().await;
        let (held, ack_level) = {
            let st = self.lock();
            let b = st.backlog.as_ref().ok_or(WriteError::OwnershipLost)?;
            (b.range_id, b.saved_ack_level)
        };
        // Leasing bumps the range whoever holds it, so first check that we still do.
        self.ctx
            .store
            .update_task_queue(&self.store_key, held, ack_level)
            .await
            .map_err(write_error)?;
        let lease = self
            .ctx
            .store
            .lease_task_queue(&self.store_key)
            .await
            .map_err(write_error)?;
        tracing::debug!(queue = %self.key, range_id = %lease.range_id, "task id block renewed");
        let mut st = self.lock();
        let b = st.backlog.as_mut().ok_or(WriteError::OwnershipLost)?;
        b.range_id = lease.range_id;
        b.ids = TaskIdAllocator::new(lease.range_id);
        let ids: Vec<TaskId> = (0..n).filter_map(|_| b.ids.allocate()).collect();
        if ids.len() < n {
            return Err(WriteError::Store(StoreError::Invalid(format!(
                "a write batch of {n} tasks exceeds one task id block"
            ))));
        }
        Ok((lease.range_id, ids))
    }

    /// A task is stored: put it in memory unless older stored tasks are still unread.
    fn written_locked(self: &Arc<Self>, st: &mut State, id: TaskId, info: TaskInfo) {
        if st.lost || st.closed {
            return;
        }
        let level = info.priority.level;
        // Memory holds about one read page per level; beyond that, tasks wait in the store.
        let batch = self.ctx.config.backlog_read_batch_size.max(1);
        let memory_full = st.ready.level_len(level) >= batch;
        let key_in_memory = st.ready.key_len(level, &info.priority.fairness_key);
        let Some(b) = st.backlog.as_mut() else {
            return;
        };
        let idx = level_index(level);
        let cursor = &mut b.cursors[idx];
        cursor.needs_range_delete = true;
        if cursor.more_in_store || memory_full {
            let ahead = &mut b.ahead[idx];
            let key = &info.priority.fairness_key;
            let keep = ahead.known
                && !ahead.unread.contains_key(key)
                && key_in_memory < (batch / 10).max(1)
                && ahead.ids.len() < batch
                && id > cursor.read_level;
            if !keep {
                cursor.more_in_store = true;
                cursor.skipped_writes += 1;
                cursor.unread_hint += 1;
                *ahead.unread.entry(key.clone()).or_default() += 1;
                return;
            }
            // A quiet key behind a deep backlog: into memory now (see the module docs).
            ahead.ids.insert(id);
        } else {
            if id <= cursor.read_level {
                // A read that raced this write already loaded it.
                return;
            }
            cursor.read_level = id;
            b.ahead[idx].passed(id);
            b.max_loaded = b.max_loaded.max(id);
        }
        b.outstanding.insert(id, level);
        let task = Task {
            info,
            origin: Origin::Backlog(id),
        };
        if let Err(task) = self.offer_locked(st, task) {
            st.ready.push_back(task);
            self.ready_notify.notify_one();
        }
    }

    /// The lease is someone else's: fail pending writes and wake pollers so they move to a
    /// re-created queue.
    pub(super) fn mark_lost(&self) {
        let (waiters, pending, queries) = {
            let mut st = self.lock();
            st.lost = true;
            let pending = st
                .backlog
                .as_mut()
                .map(|b| std::mem::take(&mut b.pending_writes))
                .unwrap_or_default();
            (
                std::mem::take(&mut st.waiters),
                pending,
                std::mem::take(&mut st.queries),
            )
        };
        self.ready_notify.notify_one();
        tracing::warn!(queue = %self.key, "task queue lease lost; unloading the queue");
        drop(waiters);
        // Their QueryWorkflow calls see the tasks dropped undelivered.
        drop(queries);
        for write in pending {
            let _ = write.done.send(Err(WriteError::OwnershipLost));
        }
    }

    /// Decide whether this poll should read a backlog page before taking a task from memory:
    /// the highest level that has unread tasks in the store and none in memory, if no task
    /// of that level or a higher one is in memory.
    pub(super) fn start_read_locked(&self, st: &mut State, now: Instant) -> ReadStart {
        let best_in_memory = st.ready.best_level().unwrap_or(LEVELS + 1);
        let Some(b) = st.backlog.as_mut() else {
            return ReadStart::No;
        };
        if b.reading {
            return ReadStart::No;
        }
        // A level with only tasks kept ahead of its cursor in memory is read too (else a
        // quiet key that keeps writing would hold the rest of the level in the store).
        let Some(level) = (1..=best_in_memory.min(LEVELS)).find(|&level| {
            let idx = level_index(level);
            b.cursors[idx].more_in_store
                && (level < best_in_memory || {
                    // Checked on every poll: count the kept tasks only when they could be all
                    // that memory holds of the level.
                    let ahead = &b.ahead[idx];
                    let in_memory = st.ready.level_len(level);
                    in_memory <= ahead.ids.len()
                        && in_memory
                            <= ahead
                                .ids
                                .iter()
                                .filter(|id| b.outstanding.contains_key(id))
                                .count()
                })
        }) else {
            return ReadStart::No;
        };
        if let Some(failed) = b.read_failed_at {
            let retry = failed + self.ctx.config.backlog_read_retry;
            if now < retry {
                return ReadStart::RetryAt(retry);
            }
        }
        b.reading = true;
        let cursor = b.cursors[level_index(level)];
        ReadStart::Read(ReadTicket {
            level,
            from: cursor.read_level,
            skipped_writes: cursor.skipped_writes,
        })
    }

    /// Read the next page of the backlog into memory.
    pub(super) async fn read_page(self: &Arc<Self>, ticket: ReadTicket) {
        let mut guard = ReadingGuard {
            queue: self,
            armed: true,
        };
        let batch = self.ctx.config.backlog_read_batch_size.max(1);
        let result = self
            .ctx
            .store
            .get_queue_tasks(&self.store_key, ticket.level, ticket.from, batch)
            .await;
        guard.armed = false;
        let mut st = self.lock();
        if let Some(b) = st.backlog.as_mut() {
            b.reading = false;
        }
        match result {
            Ok(page) => {
                let full = page.len() >= batch;
                let n = page.len() as i64;
                self.load_locked(&mut st, page);
                if let Some(b) = st.backlog.as_mut() {
                    b.read_failed_at = None;
                    let idx = level_index(ticket.level);
                    let cursor = &mut b.cursors[idx];
                    cursor.more_in_store = full || cursor.skipped_writes != ticket.skipped_writes;
                    cursor.unread_hint = (cursor.unread_hint - n).max(0);
                    let (read_level, read_through) = (cursor.read_level, !cursor.more_in_store);
                    let ahead = &mut b.ahead[idx];
                    ahead.passed(read_level);
                    if read_through {
                        // Everything stored is read: no key has unread tasks.
                        ahead.known = true;
                        ahead.unread.clear();
                    }
                }
            }
            Err(err) => {
                tracing::warn!(queue = %self.key, %err, "reading the task queue backlog failed");
                if let Some(b) = st.backlog.as_mut() {
                    b.read_failed_at = Some(Instant::now());
                }
            }
        }
    }

    /// A stored task is finished (started, obsolete or expired): delete it in the background.
    pub(super) fn ack_locked(self: &Arc<Self>, st: &mut State, level: u8, id: TaskId) {
        let Some(b) = st.backlog.as_mut() else {
            return;
        };
        b.outstanding.remove(&id);
        // If the next saved ack level covers it, the level's range delete removes it.
        b.cursor(level).needs_range_delete = true;
        b.pending_deletes.push((level, id));
        if !b.deleting {
            let queue = self.clone();
            b.deleting = self.ctx.spawn(async move { queue.delete_loop().await });
        }
    }

    /// Delete finished tasks and save the ack level until there is nothing left to do.
    async fn delete_loop(self: Arc<Self>) {
        loop {
            let work = {
                let mut st = self.lock();
                let lost = st.lost;
                let Some(b) = st.backlog.as_mut() else {
                    return;
                };
                let ack_level = b.ack_level();
                let save = (!lost && ack_level > b.saved_ack_level).then_some(ack_level);
                if self.ctx.shutdown.is_cancelled()
                    || (b.pending_deletes.is_empty() && save.is_none())
                {
                    b.deleting = false;
                    return;
                }
                // The levels to range-delete are taken with the ack level they are deleted
                // through: a task stored and finished after this (above that ack level) sets
                // its level's flag again for the next round. Taken later, the flag of such a
                // task would be spent on a range delete that stops below it, and the next
                // round, whose ack level covers it, would neither range-delete its level nor
                // delete it alone.
                let levels: Vec<u8> = match save {
                    Some(_) => (1..=LEVELS)
                        .filter(|&l| std::mem::take(&mut b.cursor(l).needs_range_delete))
                        .collect(),
                    None => Vec::new(),
                };
                (std::mem::take(&mut b.pending_deletes), save, levels)
            };
            let ok = tokio::select! {
                ok = self.delete_batch(work.0, work.1, work.2) => ok,
                () = self.ctx.shutdown.cancelled() => false,
            };
            if !ok {
                // Left-over tasks are reloaded by the next owner; history calls them obsolete.
                if let Some(b) = self.lock().backlog.as_mut() {
                    b.deleting = false;
                }
                return;
            }
        }
    }

    /// Range-delete `levels` through `save` and save it as the ack level, then delete the
    /// finished tasks above it one by one.
    async fn delete_batch(
        &self,
        ids: Vec<(u8, TaskId)>,
        save: Option<TaskId>,
        levels: Vec<u8>,
    ) -> bool {
        let store = &self.ctx.store;
        if let Some(ack_level) = save {
            // One range delete per level that had tasks since its last one (in the common
            // case, only the default level).
            for (i, &level) in levels.iter().enumerate() {
                if let Err(err) = store
                    .delete_queue_tasks_through(&self.store_key, level, ack_level)
                    .await
                {
                    tracing::warn!(queue = %self.key, %err, "deleting finished tasks failed");
                    if let Some(b) = self.lock().backlog.as_mut() {
                        for &l in &levels[i..] {
                            b.cursor(l).needs_range_delete = true;
                        }
                    }
                    return false;
                }
            }
            let io = self.lease_io.lock().await;
            let range_id = match self.lock().backlog.as_ref() {
                Some(b) => b.range_id,
                None => return false,
            };
            match store
                .update_task_queue(&self.store_key, range_id, ack_level)
                .await
            {
                Ok(()) => {
                    if let Some(b) = self.lock().backlog.as_mut() {
                        b.saved_ack_level = b.saved_ack_level.max(ack_level);
                    }
                }
                Err(StoreError::OwnershipLost { .. }) => {
                    drop(io);
                    self.mark_lost();
                }
                Err(err) => {
                    tracing::warn!(queue = %self.key, %err, "saving the ack level failed");
                    return false;
                }
            }
        }
        for (level, id) in ids {
            if save.is_some_and(|ack_level| id <= ack_level) {
                continue;
            }
            if let Err(err) = store.delete_queue_task(&self.store_key, level, id).await {
                tracing::warn!(queue = %self.key, task_id = id, %err, "deleting a finished task failed");
                return false;
            }
        }
        true
    }
}
