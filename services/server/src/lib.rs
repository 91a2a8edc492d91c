//! The pieces of the `temper` binary that tests also use: building a node from a store.

pub mod node;
pub mod store;
