//! The shard writer: the only place that writes a shard's partition. Commits that queue up
//! while one is in flight are merged into the next single-partition conditional batch
//! (group commit); a batch whose condition fails for one write is retried without it.
//! The writer also owns the shard's range id and hands out task and transaction ids from it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;
use temper_persistence::{
    BranchId, CommitError, CurrentRunWrite, ExecutionKey, ExecutionWrite, HistoryNode, Persistence,
    ShardRecord, StoreError, TaskCategory, TaskKey, TaskRecord, VisibilityRecord,
};
use temper_proto::temporal::api::history::v1::{History, HistoryEvent};
use temper_types::{RangeId, ShardId, TaskIdAllocator};
use temper_workflow::{Mutation, pb, time::millis_ceil};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::queues::QueueSinks;

/// Largest number of executions merged into one batch.
const MAX_BATCH: usize = 128;
/// Most bytes of state merged into one batch: a conditional batch is one mutation of the
/// shard's partition, and Cassandra refuses a mutation over half a commit-log segment
/// (16 MiB by default). A single larger commit still goes, alone.
const MAX_BATCH_BYTES: usize = 4 << 20;

impl CommitRequest {
    /// The bytes this commit adds to a batch, roughly: its state blobs.
    fn weight(&self) -> usize {
        self.state.len() + self.new_run.as_ref().map_or(0, |n| n.state.len())
    }
}

pub(crate) struct CommitRequest {
    pub key: ExecutionKey,
    pub branch: BranchId,
    pub expected_version: Option<i64>,
    pub new_version: i64,
    pub state: Vec<u8>,
    pub current: Option<CurrentRunWrite>,
    pub mutation: Mutation,
    /// The run's new visibility record, if this commit changes it.
    pub visibility: Option<VisibilityRecord>,
    /// A new run created in the same batch, all or nothing with this write.
    pub new_run: Option<Box<NewRunWrite>>,
    pub reply: Reply,
}

/// What the shard writer is asked to do, in order.
// Variants hold protobuf messages by value, built once and moved to one reader; boxing
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WriterRequest {
    Commit(CommitRequest),
    Delete(DeleteRequest),
}

/// Delete a run's mutable state (and its current-run pointer if it points at the run),
/// fenced by the shard's range id like every other write of the shard.
pub(crate) struct DeleteRequest {
    pub key: ExecutionKey,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The creation of a run that continues another (continue-as-new, retry, cron).
pub(crate) struct NewRunWrite {
    pub key: ExecutionKey,
    pub state: Vec<u8>,
    pub current: CurrentRunWrite,
    pub mutation: Mutation,
    pub visibility: VisibilityRecord,
}

/// The history branch of a run.
pub fn branch_of(key: &ExecutionKey) -> BranchId {
    BranchId {
        tree_id: key.run_id.clone(),
        branch_id: key.run_id.clone(),
    }
}

pub(crate) struct Writer {
    pub shard_id: ShardId,
    pub persistence: Persistence,
    pub ids: TaskIdAllocator,
    /// The range id the shard holds now, shared with its context (for the ownership check).
    pub range: Arc<std::sync::atomic::AtomicI64>,
    pub info: Vec<u8>,
    pub sinks: Arc<QueueSinks>,
    pub cancel: CancellationToken,
    /// No commit before this instant: the shard was taken from another node, whose read
    /// lease must run out first (see [`crate::ShardControl::read_lease`]).
    pub not_before: Option<tokio::time::Instant>,
}

type Reply = oneshot::Sender<Result<Vec<HistoryEvent>, CommitError>>;

struct Prepared {
    reply: Reply,
    events: Vec<HistoryEvent>,
    transfer: Vec<(TaskKey, pb::TransferTask)>,
    timers: Vec<(TaskKey, pb::TimerTask)>,
    /// How many store writes this request made (2 with a new run).
    writes: usize,
}

/// A request's store writes and history nodes.
type Built = (Vec<ExecutionWrite>, Vec<(BranchId, HistoryNode)>);

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriterRequest>) {
        if let Some(at) = self.not_before.take() {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep_until(at) => {}
            }
        }
        // A request that could not join the last batch: it goes first in the next one.
        let mut held: Option<WriterRequest> = None;
        loop {
            // A stopped shard starts no batch; its callers hear "shard is closing".
            if self.cancel.is_cancelled() {
                return;
            }
            let first = match held.take() {
                Some(r) => r,
                None => tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return,
                    r = rx.recv() => match r { Some(r) => r, None => return },
                },
            };
            // Commits that queued up go in one batch; a deletion ends the batch and is
            // made after it, so requests keep their order. Two commits for the same workflow
            // id (two runs sharing a current-run pointer) never share a batch: a store that
            // checks every condition of a batch against the state before it (Cassandra's
            // conditional batches) would fail the second.
            let mut batch = Vec::new();
            let mut delete = None;
            let mut workflows = HashSet::new();
            let mut bytes = 0;
            match first {
                WriterRequest::Commit(c) => {
                    workflows.insert(workflow_of(&c.key));
                    bytes += c.weight();
                    batch.push(c);
                }
                WriterRequest::Delete(d) => delete = Some(d),
            }
            while delete.is_none() && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(WriterRequest::Commit(c)) => {
                        if bytes + c.weight() > MAX_BATCH_BYTES
                            || !workflows.insert(workflow_of(&c.key))
                        {
                            held = Some(WriterRequest::Commit(c));
                            break;
                        }
                        bytes += c.weight();
                        batch.push(c);
                    }
                    Ok(WriterRequest::Delete(d)) => delete = Some(d),
                    Err(_) => break,
                }
            }
            let mut result = Ok(());
            if !batch.is_empty() {
                result = self.commit_batch(batch).await;
            }
            if let Some(d) = delete {
                result = match result {
                    Ok(()) => self.delete(d).await,
                    Err(e) => {
                        let _ = d.reply.send(Err(e.clone()));
                        Err(e)
                    }
                };
            }
            if let Err(e) = result {
                tracing::warn!(shard = %self.shard_id, error = %e, "shard writer stopping");
                metrics::counter!(crate::metrics::SHARD_LOSSES).increment(1);
                self.cancel.cancel();
                return;
            }
        }
    }

    /// Delete a run's state under the shard's range id. Only a lost shard stops the writer.
    async fn delete(&mut self, d: DeleteRequest) -> Result<(), StoreError> {
        let result = self
            .persistence
            .executions
            .delete_execution(self.shard_id, self.ids.range_id(), &d.key)
            .await;
        let fatal = matches!(result, Err(StoreError::OwnershipLost { .. }));
        let _ = d.reply.send(result.clone());
        if fatal { result } else { Ok(()) }
    }

    /// Next id; renews the range (a CAS on the shard row) when the block is used up.
    async fn next_id(&mut self) -> Result<i64, StoreError> {
        if let Some(id) = self.ids.allocate() {
            return Ok(id);
        }
        let held = self.ids.range_id();
        let record = ShardRecord {
            shard_id: self.shard_id,
            range_id: RangeId(held.0 + 1),
            info: self.info.clone(),
        };
        self.persistence
            .executions
            .update_shard(held, &record)
            .await?;
        self.ids = TaskIdAllocator::new(record.range_id);
        self.range
            .store(record.range_id.0, std::sync::atomic::Ordering::Release);
        self.ids
            .allocate()
            .ok_or_else(|| StoreError::Internal("fresh range block is empty".into()))
    }

    /// Give the request its ids and build its store writes and history nodes. Errors come
    /// back with the reply channel so the caller can answer.
    async fn prepare(
        &mut self,
        req: CommitRequest,
    ) -> Result<(Prepared, Built), (Reply, StoreError)> {
        let CommitRequest {
            key,
            branch,
            expected_version,
            new_version,
            state,
            current,
            mutation,
            visibility,
            new_run,
            reply,
        } = req;
        let mut transfer = Vec::new();
        let mut timers = Vec::new();
        let (write, node, events) = match self
            .build(
                key,
                branch,
                expected_version,
                new_version,
                state,
                current,
                mutation,
                visibility,
                &mut transfer,
                &mut timers,
            )
            .await
        {
            Ok(b) => b,
            Err(e) => return Err((reply, e)),
        };
        let mut writes = vec![write];
        let mut nodes: Vec<_> = node.into_iter().collect();
        if let Some(nr) = new_run {
            let NewRunWrite {
                key,
                state,
                current,
                mutation,
                visibility,
            } = *nr;
            let branch = branch_of(&key);
            match self
                .build(
                    key,
                    branch,
                    None,
                    1,
                    state,
                    Some(current),
                    mutation,
                    Some(visibility),
                    &mut transfer,
                    &mut timers,
                )
                .await
            {
                Ok((w, n, _)) => {
                    writes.push(w);
                    nodes.extend(n);
                }
                Err(e) => return Err((reply, e)),
            }
        }
        Ok((
            Prepared {
                reply,
                events,
                transfer,
                timers,
                writes: writes.len(),
            },
            (writes, nodes),
        ))
    }

    /// One execution's store write and history node, with fresh ids.
    #[allow(clippy::too_many_arguments)]
    async fn build(
        &mut self,
        key: ExecutionKey,
        branch: BranchId,
        expected_version: Option<i64>,
        new_version: i64,
        state: Vec<u8>,
        current: Option<CurrentRunWrite>,
        mutation: Mutation,
        visibility: Option<VisibilityRecord>,
        transfer: &mut Vec<(TaskKey, pb::TransferTask)>,
        timers: &mut Vec<(TaskKey, pb::TimerTask)>,
    ) -> Result<
        (
            ExecutionWrite,
            Option<(BranchId, HistoryNode)>,
            Vec<HistoryEvent>,
        ),
        StoreError,
    > {
        let Mutation {
            mut events,
            transfer: new_transfer,
            timers: new_timers,
            ..
        } = mutation;
        let mut tasks = Vec::with_capacity(new_transfer.len() + new_timers.len());
        let txn_id = self.next_id().await?;
        for ev in events.iter_mut() {
            ev.task_id = txn_id;
        }
        for t in new_transfer {
            let key = TaskKey::immediate(self.next_id().await?);
            tasks.push(TaskRecord {
                category: TaskCategory::Transfer,
                key,
                data: t.encode_to_vec(),
            });
            transfer.push((key, t));
        }
        for (at, t) in new_timers {
            let key = TaskKey {
                // Rounded up: a timer never fires before its time.
                fire_time_ms: millis_ceil(at),
                task_id: self.next_id().await?,
            };
            tasks.push(TaskRecord {
                category: TaskCategory::Timer,
                key,
                data: t.encode_to_vec(),
            });
            timers.push((key, t));
        }
        let node = if events.is_empty() {
            None
        } else {
            let batch = History { events };
            let node = HistoryNode {
                node_id: batch.events[0].event_id,
                txn_id,
                events: batch.encode_to_vec(),
            };
            events = batch.events;
            Some((branch, node))
        };
        let write = ExecutionWrite {
            key,
            expected_version,
            new_version,
            state,
            current,
            tasks,
            visibility,
        };
        Ok((write, node, events))
    }

    async fn commit_batch(&mut self, batch: Vec<CommitRequest>) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        let mut nodes = Vec::with_capacity(batch.len());
        // How many of `nodes` each prepared request made, in order.
        let mut node_counts = Vec::with_capacity(batch.len());
        for req in batch {
            match self.prepare(req).await {
                Ok((p, (w, n))) => {
                    node_counts.push(n.len());
                    prepared.push(p);
                    writes.extend(w);
                    nodes.extend(n);
                }
                Err((reply, e)) => {
                    let fatal = matches!(e, StoreError::OwnershipLost { .. });
                    let _ = reply.send(Err(CommitError::Store(e.clone())));
                    if fatal {
                        for p in prepared {
                            let _ = p.reply.send(Err(CommitError::Store(e.clone())));
                        }
                        return Err(e);
                    }
                }
            }
        }
        // A store that keeps history beside executions (SQLite) writes the nodes in the
        // commit's transaction. Otherwise history goes first (one call for the whole batch);
        // a commit that then fails leaves orphan nodes that readers ignore.
        let together = self.persistence.executions.commits_history();
        if !together && let Err(e) = self.persistence.history.append_history_nodes(&nodes).await {
            for p in prepared {
                let _ = p.reply.send(Err(CommitError::Store(e.clone())));
            }
            return Ok(());
        }
        while !prepared.is_empty() {
            // Until the new tasks are in the queues' channels, the queues must not read or
            // delete tasks in the store.
            let _held = self.sinks.hold().await;
            let executions = &self.persistence.executions;
            let range_id = self.ids.range_id();
            let result = if together {
                executions
                    .commit_with_history(self.shard_id, range_id, &nodes, &writes)
                    .await
            } else {
                executions.commit(self.shard_id, range_id, &writes).await
            };
            match result {
                Ok(()) => {
                    for p in prepared {
                        self.sinks.transfer(p.transfer);
                        self.sinks.timers(p.timers);
                        let _ = p.reply.send(Ok(p.events));
                    }
                    return Ok(());
                }
                Err(CommitError::Conflict { index, kind }) if index < writes.len() => {
                    // Find the request that made write `index`, and drop all its writes.
                    let mut first = 0;
                    let mut which = 0;
                    while first + prepared[which].writes <= index {
                        first += prepared[which].writes;
                        which += 1;
                    }
                    let p = prepared.remove(which);
                    writes.drain(first..first + p.writes);
                    let first_node: usize = node_counts[..which].iter().sum();
                    let own_nodes = node_counts.remove(which);
                    nodes.drain(first_node..first_node + own_nodes);
                    let _ = p.reply.send(Err(CommitError::Conflict {
                        index: index - first,
                        kind,
                    }));
                }
                Err(e) => {
                    // A batch that may have been applied leaves tasks in the store this
                    // writer never handed to the queues: stop the shard, so it is acquired
                    // again and reloads state and queues from the store.
                    let fatal = matches!(
                        e,
                        CommitError::ShardOwnershipLost { .. }
                            | CommitError::Store(StoreError::OutcomeUnknown(_))
                    );
                    for p in prepared {
                        let _ = p.reply.send(Err(e.clone()));
                    }
                    if fatal {
                        return Err(StoreError::Unavailable(e.to_string()));
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The workflow id a commit belongs to, across its runs.
fn workflow_of(key: &ExecutionKey) -> (String, String) {
    (key.namespace_id.0.clone(), key.workflow_id.clone())
}

/// When a timer task fires, from its key.
pub fn fire_time(key: &TaskKey) -> SystemTime {
    temper_workflow::time::from_millis(key.fire_time_ms)
}
