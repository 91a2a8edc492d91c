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
    pub reply: oneshot::Sender<Result<Vec<HistoryEvent>, CommitError>>,
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

struct Prepared {
    req: CommitRequest,
    write: ExecutionWrite,
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

    async fn prepare(
        &mut self,
        req: CommitRequest,
    ) -> Result<Prepared, (CommitRequest, StoreError)> {
        let mut events = req.mutation.events.clone();
        let mut tasks = Vec::new();
        let mut transfer = Vec::new();
        let mut timers = Vec::new();
        let txn_id = match self.next_id().await {
            Ok(id) => id,
            Err(e) => return Err((req, e)),
        };
        for ev in events.iter_mut() {
            ev.task_id = txn_id;
        }
        for t in &req.mutation.transfer {
            let id = match self.next_id().await {
                Ok(id) => id,
                Err(e) => return Err((req, e)),
            };
            let key = TaskKey::immediate(id);
            tasks.push(TaskRecord {
                category: TaskCategory::Transfer,
                key,
                data: t.encode_to_vec(),
            });
            transfer.push((key, t.clone()));
        }
        for (at, t) in &req.mutation.timers {
            let id = match self.next_id().await {
                Ok(id) => id,
                Err(e) => return Err((req, e)),
            };
            let key = TaskKey {
                fire_time_ms: millis(*at),
                task_id: id,
            };
            tasks.push(TaskRecord {
                category: TaskCategory::Timer,
                key,
                data: t.encode_to_vec(),
            });
            timers.push((key, t.clone()));
        }
        if !events.is_empty() {
            let node = HistoryNode {
                node_id: events[0].event_id,
                txn_id,
                events: History {
                    events: events.clone(),
                }
                .encode_to_vec(),
            };
            if let Err(e) = self
                .persistence
                .history
                .append_history_node(&req.branch, &node)
                .await
            {
                return Err((req, e));
            }
        }
        let write = ExecutionWrite {
            key: req.key.clone(),
            expected_version: req.expected_version,
            new_version: req.new_version,
            state: req.state.clone(),
            current: req.current.clone(),
            tasks,
        };
        Ok(Prepared {
            req,
            write,
            events,
            transfer,
            timers,
        })
    }

    async fn commit_batch(&mut self, batch: Vec<CommitRequest>) -> Result<(), StoreError> {
        let mut prepared = Vec::with_capacity(batch.len());
        for req in batch {
            match self.prepare(req).await {
                Ok(p) => prepared.push(p),
                Err((req, e)) => {
                    let fatal = matches!(e, StoreError::OwnershipLost { .. });
                    let _ = req.reply.send(Err(CommitError::Store(e.clone())));
                    if fatal {
                        return Err(e);
                    }
                }
            }
        }
        while !prepared.is_empty() {
            let writes: Vec<ExecutionWrite> = prepared.iter().map(|p| p.write.clone()).collect();
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
                        let _ = p.req.reply.send(Ok(p.events));
                    }
                    return Ok(());
                }
                Err(CommitError::Conflict { index, kind }) if index < prepared.len() => {
                    let p = prepared.remove(index);
                    let _ = p
                        .req
                        .reply
                        .send(Err(CommitError::Conflict { index: 0, kind }));
                }
                Err(e) => {
                    let fatal = matches!(e, CommitError::ShardOwnershipLost { .. });
                    for p in prepared {
                        let _ = p.req.reply.send(Err(e.clone()));
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
