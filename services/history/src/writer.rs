//! The shard writer: the only place that writes a shard's partition. Commits that queue up
//! while one is in flight are merged into the next single-partition conditional batch
//! (group commit); a batch whose condition fails for one write is retried without it.
//! The writer also owns the shard's range id and hands out task and transaction ids from it.

use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;
use temper_persistence::{
    BranchId, CommitError, CurrentRunWrite, ExecutionKey, ExecutionWrite, HistoryNode, Persistence,
    ShardRecord, StoreError, TaskCategory, TaskKey, TaskRecord,
};
use temper_proto::temporal::api::history::v1::{History, HistoryEvent};
use temper_types::{RangeId, ShardId, TaskIdAllocator};
use temper_workflow::{Mutation, pb, time::millis};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::queues::QueueSinks;

/// Largest number of executions merged into one batch.
const MAX_BATCH: usize = 128;

pub(crate) struct CommitRequest {
    pub key: ExecutionKey,
    pub branch: BranchId,
    pub expected_version: Option<i64>,
    pub new_version: i64,
    pub state: Vec<u8>,
    pub current: Option<CurrentRunWrite>,
    pub mutation: Mutation,
    pub reply: Reply,
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
    pub info: Vec<u8>,
    pub sinks: Arc<QueueSinks>,
    pub cancel: CancellationToken,
}

type Reply = oneshot::Sender<Result<Vec<HistoryEvent>, CommitError>>;

struct Prepared {
    reply: Reply,
    events: Vec<HistoryEvent>,
    transfer: Vec<(TaskKey, pb::TransferTask)>,
    timers: Vec<(TaskKey, pb::TimerTask)>,
}

impl Writer {
    pub async fn run(mut self, mut rx: mpsc::Receiver<CommitRequest>) {
        loop {
            let first = tokio::select! {
                _ = self.cancel.cancelled() => return,
                r = rx.recv() => match r { Some(r) => r, None => return },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.commit_batch(batch).await {
                tracing::warn!(shard = %self.shard_id, error = %e, "shard writer stopping");
                self.cancel.cancel();
                return;
            }
        }
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
        self.ids
            .allocate()
            .ok_or_else(|| StoreError::Internal("fresh range block is empty".into()))
    }

    /// Give the request its ids and build its store write and history node. Errors come
    /// back with the reply channel so the caller can answer.
    async fn prepare(
        &mut self,
        req: CommitRequest,
    ) -> Result<(Prepared, ExecutionWrite, Option<(BranchId, HistoryNode)>), (Reply, StoreError)>
    {
        let CommitRequest {
            key,
            branch,
            expected_version,
            new_version,
            state,
            current,
            mutation,
            reply,
        } = req;
        let Mutation {
            mut events,
            transfer: new_transfer,
            timers: new_timers,
            ..
        } = mutation;
        let mut tasks = Vec::with_capacity(new_transfer.len() + new_timers.len());
        let mut transfer = Vec::with_capacity(new_transfer.len());
        let mut timers = Vec::with_capacity(new_timers.len());
        let txn_id = match self.next_id().await {
            Ok(id) => id,
            Err(e) => return Err((reply, e)),
        };
        for ev in events.iter_mut() {
            ev.task_id = txn_id;
        }
        for t in new_transfer {
            let id = match self.next_id().await {
                Ok(id) => id,
                Err(e) => return Err((reply, e)),
            };
            let key = TaskKey::immediate(id);
            tasks.push(TaskRecord {
                category: TaskCategory::Transfer,
                key,
                data: t.encode_to_vec(),
            });
            transfer.push((key, t));
        }
        for (at, t) in new_timers {
            let id = match self.next_id().await {
                Ok(id) => id,
                Err(e) => return Err((reply, e)),
            };
            let key = TaskKey {
                fire_time_ms: millis(at),
                task_id: id,
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
        };
        Ok((
            Prepared {
                reply,
                events,
                transfer,
                timers,
            },
            write,
            node,
        ))
    }

    async fn commit_batch(&mut self, batch: Vec<CommitRequest>) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(batch.len());
        let mut writes = Vec::with_capacity(batch.len());
        let mut nodes = Vec::with_capacity(batch.len());
        for req in batch {
            match self.prepare(req).await {
                Ok((p, w, node)) => {
                    prepared.push(p);
                    writes.push(w);
                    nodes.extend(node);
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
        // History first (one call for the whole batch); a commit that then fails leaves
        // orphan nodes that readers ignore.
        if let Err(e) = self.persistence.history.append_history_nodes(&nodes).await {
            for p in prepared {
                let _ = p.reply.send(Err(CommitError::Store(e.clone())));
            }
            return Ok(());
        }
        while !prepared.is_empty() {
            // Until the new tasks are in the queues' channels, the queues must not read or
            // delete tasks in the store.
            let _held = self.sinks.hold().await;
            let result = self
                .persistence
                .executions
                .commit(self.shard_id, self.ids.range_id(), &writes)
                .await;
            match result {
                Ok(()) => {
                    for p in prepared {
                        self.sinks.transfer(p.transfer);
                        self.sinks.timers(p.timers);
                        let _ = p.reply.send(Ok(p.events));
                    }
                    return Ok(());
                }
                Err(CommitError::Conflict { index, kind }) if index < prepared.len() => {
                    let p = prepared.remove(index);
                    writes.remove(index);
                    let _ = p.reply.send(Err(CommitError::Conflict { index: 0, kind }));
                }
                Err(e) => {
                    let fatal = matches!(e, CommitError::ShardOwnershipLost { .. });
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

/// When a timer task fires, from its key.
pub fn fire_time(key: &TaskKey) -> SystemTime {
    temper_workflow::time::from_millis(key.fire_time_ms)
}
