//! Typed identifiers. A [`RangeId`] is the fencing token of a shard or task-queue lease:
//! every write made under ownership carries the one the owner holds.

use std::fmt;

/// A namespace's immutable id (a UUID string), as opposed to its renameable name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceId(pub String);

impl NamespaceId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fresh run id. As on the Temporal server, a UUIDv7: its first 48 bits are the creation
/// time in Unix milliseconds, so run ids sort by creation (SDKs and tools may check the version).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A history shard, numbered from 1 to `num_shards` inclusive (as in Temporal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The fencing token of an owner: bumped by compare-and-set each time ownership changes hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeId(pub i64);

impl fmt::Display for RangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A task id, unique and increasing within a shard (or a task-queue partition).
pub type TaskId = i64;

/// Number of low bits of a task id taken by the sequence inside one range block.
pub const TASK_ID_SEQ_BITS: u32 = 20;

/// Hands out task ids `range_id << 20 | seq`, so ids stay monotonic across owners: a new owner
/// always holds a larger range id than any earlier one.
#[derive(Debug)]
pub struct TaskIdAllocator {
    range_id: RangeId,
    next_seq: i64,
}

/// The block of the current range is used up; the owner must renew its range first.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("task id block of range {0} is exhausted; the range must be renewed")]
pub struct RangeExhausted(pub RangeId);

impl TaskIdAllocator {
    pub fn new(range_id: RangeId) -> Self {
        Self {
            range_id,
            next_seq: 0,
        }
    }

    pub fn range_id(&self) -> RangeId {
        self.range_id
    }

    /// Next id, or `None` when the block of this range is used up.
    pub fn allocate(&mut self) -> Option<TaskId> {
        if self.next_seq >= (1 << TASK_ID_SEQ_BITS) {
            return None;
        }
        let id = (self.range_id.0 << TASK_ID_SEQ_BITS) | self.next_seq;
        self.next_seq += 1;
        Some(id)
    }

    /// How many ids remain in this block.
    pub fn remaining(&self) -> i64 {
        (1 << TASK_ID_SEQ_BITS) - self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_monotonic_across_ranges() {
        let mut a = TaskIdAllocator::new(RangeId(3));
        let first = a.allocate().expect("fresh block");
        let second = a.allocate().expect("fresh block");
        assert!(second > first);
        let mut b = TaskIdAllocator::new(RangeId(4));
        assert!(b.allocate().expect("fresh block") > second);
    }

    #[test]
    fn run_ids_are_uuid_v7_in_creation_order() {
        let a = new_run_id();
        let b = new_run_id();
        let parsed = uuid::Uuid::parse_str(&a).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        assert!(b > a, "{b} after {a}");
    }

    #[test]
    fn block_exhausts() {
        let mut a = TaskIdAllocator::new(RangeId(1));
        for _ in 0..(1 << TASK_ID_SEQ_BITS) {
            assert!(a.allocate().is_some());
        }
        assert_eq!(a.allocate(), None);
        assert_eq!(a.remaining(), 0);
    }
}
