//! Worker deployments (worker versioning): the per-namespace record of deployment versions
//! and their routing, shared by the frontend (the Describe / List / Set* calls) and matching
//! (polling workers register their version; tasks are routed by it).
//!
//! The record lives in the namespace's stored detail (`NamespaceDetail.worker_deployments`),
//! changed with the namespace store's compare-and-set on its notification version, so it is
//! persisted on every backend without a store method of its own. `model` is the sans-IO
//! state and its decisions; `registry` loads, caches and writes it.

mod model;
mod registry;
pub mod version_sets;

#[cfg(test)]
mod tests;

pub use model::{
    DeploymentError, DeploymentSet, UNVERSIONED, canonical, conflict_token, parse_version,
    ramp_bucket, requested_build,
};
pub use registry::{DeploymentRegistry, PROPAGATION};
