//! The store contract, shaped for Cassandra and honoured by every backend.
//!
//! All of a shard's mutable rows (the shard row, executions, current-run pointers and the
//! shard's tasks) live in one partition keyed by shard id, so a workflow update is one
//! single-partition conditional batch ([`ExecutionStore::commit`]): the shard's `range_id`
//! must still be the one the writer holds, each execution's `db_record_version` must be the
//! one it read, and each current-run pointer must match. Either all of it applies or nothing.
//!
//! History events are appended to a separate store before the state commit
//! ([`HistoryStore`]); nodes written by a commit that then failed are orphans that
//! [`history::winning_nodes`] ignores (for one node id, the highest transaction id wins).
//!
//! Blobs are opaque bytes here: the services encode them with protobuf.
//!
//! Wrappers that see every call (metrics, fault injection) are hooks of the one store
//! decorator, [`decorator::Decorated`].

pub mod decorator;
mod error;
pub mod history;
pub mod instrumented;
mod model;
mod traits;
mod visibility;

#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(feature = "testing")]
pub mod faulty;

#[cfg(test)]
mod test_stores;

pub use error::{CommitError, ConflictKind, StoreError};
pub use model::*;
pub use traits::*;
pub use visibility::*;
