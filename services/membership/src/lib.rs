//! Cluster membership: which nodes are alive, and which of them owns what.
//!
//! Nodes find each other with SWIM-style gossip (quickwit's `chitchat`: scuttlebutt
//! anti-entropy plus a phi-accrual failure detector), seeded from config (IP addresses or
//! DNS names such as a Kubernetes headless service) and from the store's membership table.
//! Each node announces its name, generation (process start), roles and gRPC address.
//!
//! From the live members each node builds one consistent-hash ring per [`Role`], with
//! virtual nodes; the History ring decides which node owns each history shard
//! ([`ClusterView::history_shard_owner`]). Hashing is deterministic, so nodes that see the
//! same members agree on every owner. Ownership is still fenced in the store: a ring only
//! says who should try to acquire a shard.
//!
//! Layout: [`ClusterView`] (view.rs, ring.rs) and the tracker (tracker.rs) that decides
//! liveness and when to publish are sans-IO and unit-tested; [`Membership`]
//! (membership.rs) is the async shell that runs gossip and publishes views.

mod config;
mod error;
mod member;
mod membership;
mod quorum;
mod ring;
mod role;
mod seeds;
pub mod tracker;
mod transport;
mod view;

pub use config::MembershipConfig;
pub use error::MembershipError;
pub use member::Member;
pub use membership::Membership;
pub use quorum::{AliveNode, Quorum, StoreLiveness, StorePeers};
pub use role::{Role, UnknownRole};
pub use view::{ClusterView, history_shard_key};

/// Gossip transports for [`Membership::start_with_transport`]: chitchat's trait and its
/// in-memory implementation (links between addresses can be cut and healed).
pub use chitchat::transport::{ChannelTransport, Transport};
