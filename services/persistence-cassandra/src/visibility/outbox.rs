//! The visibility outbox: a copy of each commit's visibility records in the shard partition
//! (row type 6), written inside the commit's conditional batch, so that a record the commit
//! made is never lost even if the process stops between the batch and the visibility
//! writes that follow it.
//!
//! Outbox rows are keyed like transfer tasks, `(fire_time_ms, id)` under row type 6, with
//! `fire_time_ms` from a per-process clock that never goes back and `id` from a counter
//! seeded by the wall clock. This process remembers the rows it has in flight (batch sent,
//! visibility rows not yet written). When the shard row is saved (`update_shard`: every
//! flush and every acquisition) every row older than the oldest in flight is removed with one
//! range delete, so the partition holds only seconds of outbox rows and no per-row
//! tombstones. On acquisition, and after a visibility write failed, the rows still there are
//! replayed first: writing a record again is harmless (its writes are stamped with its
//! version).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use prost::Message;
use temper_persistence::{StoreError, TaskKey, VisibilityRecord};
use temper_proto::persistence::v1::VisibilityOutboxRecord;
use temper_types::NamespaceId;

/// An outbox row in flight: sent in a batch, its visibility rows not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    /// Its outcome or its visibility write failed: replay before removing anything.
    Failed,
}

/// What this process knows of its outbox rows.
#[derive(Debug)]
pub(crate) struct Outbox {
    last_ms: AtomicI64,
    next_id: AtomicI64,
    rows: Mutex<HashMap<i32, BTreeMap<TaskKey, State>>>,
}

impl Default for Outbox {
    fn default() -> Self {
        let now = temper_types::wall_clock_millis();
        Self {
            last_ms: AtomicI64::new(now),
            // Distinct processes start from distinct ids (milliseconds apart, a million
            // ids per millisecond), so two owners of a shard never pick the same key.
            next_id: AtomicI64::new(now.saturating_mul(1_000_000)),
            rows: Mutex::new(HashMap::new()),
        }
    }
}

impl Outbox {
    /// Milliseconds from the wall clock, never below a value returned before.
    pub(crate) fn now_ms(&self) -> i64 {
        let wall = temper_types::wall_clock_millis();
        let prev = self.last_ms.fetch_max(wall, Ordering::SeqCst);
        prev.max(wall)
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<i32, BTreeMap<TaskKey, State>>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keys for `n` new outbox rows of `shard`, registered as in flight.
    pub(crate) fn reserve(&self, shard: i32, n: usize) -> Vec<TaskKey> {
        if n == 0 {
            return Vec::new();
        }
        let mut rows = self.rows();
        let fire = self.now_ms();
        let keys: Vec<TaskKey> = (0..n)
            .map(|_| TaskKey {
                fire_time_ms: fire,
                task_id: self.next_id.fetch_add(1, Ordering::SeqCst),
            })
            .collect();
        let shard_rows = rows.entry(shard).or_default();
        for key in &keys {
            shard_rows.insert(*key, State::InFlight);
        }
        keys
    }

    /// The rows' visibility writes are done (or their batch was certainly not applied).
    pub(crate) fn finish(&self, shard: i32, keys: &[TaskKey]) {
        let mut rows = self.rows();
        if let Some(shard_rows) = rows.get_mut(&shard) {
            for key in keys {
                shard_rows.remove(key);
            }
        }
    }

    /// The rows may be stored without their visibility writes: keep them until a replay.
    pub(crate) fn fail(&self, shard: i32, keys: &[TaskKey]) {
        let mut rows = self.rows();
        let shard_rows = rows.entry(shard).or_default();
        for key in keys {
            shard_rows.insert(*key, State::Failed);
        }
    }

    /// Whether a row of `shard` failed and needs a replay.
    pub(crate) fn needs_replay(&self, shard: i32) -> bool {
        self.rows()
            .get(&shard)
            .is_some_and(|r| r.values().any(|s| *s == State::Failed))
    }

    /// A replay that started at `started_ms` wrote every row stored before it: forget the
    /// failed rows it covered.
    pub(crate) fn replayed(&self, shard: i32, started_ms: i64) {
        if let Some(shard_rows) = self.rows().get_mut(&shard) {
            shard_rows.retain(|k, s| *s == State::InFlight || k.fire_time_ms >= started_ms);
        }
    }

    /// Rows of `shard` due before this time are all written (none in flight or failed).
    pub(crate) fn removable_before(&self, shard: i32) -> i64 {
        let now = self.now_ms();
        self.rows()
            .get(&shard)
            .and_then(|r| r.keys().next().map(|k| k.fire_time_ms))
            .map_or(now, |oldest| oldest.min(now))
    }
}

pub(crate) fn encode(r: &VisibilityRecord) -> Vec<u8> {
    VisibilityOutboxRecord {
        namespace_id: r.namespace_id.0.clone(),
        workflow_id: r.workflow_id.clone(),
        run_id: r.run_id.clone(),
        workflow_type: r.workflow_type.clone(),
        task_queue: r.task_queue.clone(),
        status: r.status,
        start_time_ns: r.start_time_ns,
        execution_time_ns: r.execution_time_ns,
        close_time_ns: r.close_time_ns,
        history_length: r.history_length,
        history_size_bytes: r.history_size_bytes,
        state_transition_count: r.state_transition_count,
        parent_workflow_id: r.parent_workflow_id.clone(),
        parent_run_id: r.parent_run_id.clone(),
        root_workflow_id: r.root_workflow_id.clone(),
        root_run_id: r.root_run_id.clone(),
        namespace_division: r.namespace_division.clone(),
        memo: r.memo.clone(),
        search_attributes: r.search_attributes.clone(),
        keywords: r
            .keywords
            .as_deref()
            .map(temper_persistence::encode_keywords),
        version: r.version,
    }
    .encode_to_vec()
}

pub(crate) fn decode(data: &[u8]) -> Result<VisibilityRecord, StoreError> {
    let r = VisibilityOutboxRecord::decode(data)
        .map_err(|e| StoreError::Invalid(format!("a visibility outbox row: {e}")))?;
    Ok(VisibilityRecord {
        namespace_id: NamespaceId(r.namespace_id),
        workflow_id: r.workflow_id,
        run_id: r.run_id,
        workflow_type: r.workflow_type,
        task_queue: r.task_queue,
        status: r.status,
        start_time_ns: r.start_time_ns,
        execution_time_ns: r.execution_time_ns,
        close_time_ns: r.close_time_ns,
        history_length: r.history_length,
        history_size_bytes: r.history_size_bytes,
        state_transition_count: r.state_transition_count,
        parent_workflow_id: r.parent_workflow_id,
        parent_run_id: r.parent_run_id,
        root_workflow_id: r.root_workflow_id,
        root_run_id: r.root_run_id,
        namespace_division: r.namespace_division,
        memo: r.memo,
        search_attributes: r.search_attributes,
        keywords: match r.keywords {
            None => None,
            Some(b) => Some(temper_persistence::decode_keywords(&b).ok_or_else(|| {
                StoreError::Invalid("a visibility outbox row's keywords do not decode".to_owned())
            })?),
        },
        version: r.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_rows_hold_back_the_range_delete_until_finished_or_replayed() {
        let outbox = Outbox::default();
        let before = outbox.now_ms();
        assert!(outbox.removable_before(1) >= before);
        let keys = outbox.reserve(1, 2);
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0], keys[1]);
        assert_eq!(outbox.removable_before(1), keys[0].fire_time_ms);
        assert!(
            outbox.removable_before(2) >= before,
            "other shards are free"
        );
        outbox.fail(1, &keys[..1]);
        outbox.finish(1, &keys[1..]);
        assert!(outbox.needs_replay(1));
        assert_eq!(outbox.removable_before(1), keys[0].fire_time_ms);
        outbox.replayed(1, keys[0].fire_time_ms + 1);
        assert!(!outbox.needs_replay(1));
        assert!(outbox.removable_before(1) >= keys[0].fire_time_ms);
    }
}
