//! One temper node in one process: frontend, history and matching wired together over a
//! store, with the calls between them staying in-process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use temper_client::{HistoryClient, MatchingClient};
use temper_frontend::{Frontend, FrontendConfig, Namespaces};
use temper_history::{HistoryConfig, HistoryEngine};
use temper_matching::{MatchingConfig, MatchingEngine};
use temper_persistence::{ClusterMetadata, Persistence};
use temper_types::{Clock, SystemClock};
use temper_workflow::Limits;

/// How a node is built.
pub struct NodeConfig {
    /// Shards of a new cluster; an existing store keeps its own count and a different value
    /// here is refused.
    pub num_shards: u32,
    /// Who owns the shards (written in the shard rows).
    pub owner: String,
    /// Namespaces registered at start if missing.
    pub namespaces: Vec<String>,
    /// Retention of those namespaces.
    pub retention: Duration,
    pub limits: Limits,
    /// The run cache's budget and the timer window.
    pub memory: temper_history::MemoryConfig,
    pub matching: MatchingConfig,
    /// Name of the store, for GetClusterInfo.
    pub store_name: String,
    pub clock: Arc<dyn Clock>,
    /// Request rate limits of the frontend (none by default).
    pub rate_limits: temper_frontend::RateLimitConfig,
    /// Fair admission of the frontend's requests (off by default).
    pub admission: temper_frontend::AdmissionConfig,
    /// Open workflows per namespace (no bound by default).
    pub open_workflows: temper_frontend::OpenWorkflowLimitConfig,
    /// Batch operations (Temporal's defaults).
    pub batch: temper_frontend::BatchConfig,
    /// Eager workflow start (Temporal's `system.enableEagerWorkflowStart`, on by default).
    pub eager_workflow_start: bool,
    /// Legacy worker versioning's data calls (Temporal's `frontend.workerVersioningDataAPIs`,
    /// off by default).
    pub worker_versioning_data_apis: bool,
    /// How long a cached list of Nexus endpoints is used before the store is read again
    /// (Temporal's `system.refreshNexusEndpointsMinWait`).
    pub nexus_endpoints_refresh: Duration,
}

impl NodeConfig {
    pub fn dev(num_shards: u32, owner: impl Into<String>) -> Self {
        Self {
            num_shards,
            owner: owner.into(),
            namespaces: vec!["default".into()],
            retention: Duration::from_secs(24 * 3600),
            limits: Limits::default(),
            memory: temper_history::MemoryConfig::default(),
            matching: MatchingConfig::default(),
            store_name: "sqlite".into(),
            clock: Arc::new(SystemClock),
            rate_limits: temper_frontend::RateLimitConfig::default(),
            admission: temper_frontend::AdmissionConfig::default(),
            open_workflows: temper_frontend::OpenWorkflowLimitConfig::default(),
            batch: temper_frontend::BatchConfig::default(),
            eager_workflow_start: true,
            worker_versioning_data_apis: false,
            nexus_endpoints_refresh: temper_client::nexus_endpoints::DEFAULT_REFRESH,
        }
    }
}

pub struct Node {
    pub frontend: Arc<Frontend>,
    pub history: Arc<HistoryEngine>,
    pub matching: Arc<MatchingEngine>,
    pub cluster: ClusterMetadata,
}

/// The store's cluster metadata, recorded with `num_shards` when the store is new. A store
/// created with another shard count is refused: every workflow would hash to another shard.
pub async fn check_cluster(
    persistence: &Persistence,
    num_shards: u32,
) -> anyhow::Result<ClusterMetadata> {
    let cluster = persistence
        .cluster
        .init_cluster_metadata(&ClusterMetadata {
            cluster_name: "active".into(),
            num_shards,
        })
        .await
        .context("reading cluster metadata")?;
    if cluster.num_shards != num_shards {
        anyhow::bail!(
            "the store was created with {} shards, not {num_shards}: the shard count of a store cannot change",
            cluster.num_shards,
        );
    }
    Ok(cluster)
}

impl Node {
    /// Check the cluster metadata, take every shard, register the namespaces.
    pub async fn start(persistence: Persistence, config: NodeConfig) -> anyhow::Result<Node> {
        if config.num_shards == 0 {
            anyhow::bail!("the number of shards must be at least 1");
        }
        let cluster = check_cluster(&persistence, config.num_shards).await?;
        let history = HistoryEngine::new(
            HistoryConfig {
                num_shards: cluster.num_shards,
                owner: config.owner.clone(),
                limits: config.limits.clone(),
                memory: config.memory.clone(),
            },
            persistence.clone(),
            config.clock.clone(),
        );
        let history_client: HistoryClient = history.clone();
        let matching = Arc::new(MatchingEngine::with_clock(
            persistence.task_queues.clone(),
            history_client.clone(),
            config.matching.clone(),
            config.clock.clone(),
        ));
        let matching_client: MatchingClient = matching.clone();
        history
            .acquire_all_shards(matching_client.clone())
            .await
            .context("acquiring shards")?;
        let namespaces = Arc::new(Namespaces::new(
            persistence.namespaces.clone(),
            cluster.cluster_name.clone(),
        ));
        for ns in &config.namespaces {
            namespaces
                .ensure(ns, config.retention)
                .await
                .map_err(|s| anyhow::anyhow!("registering namespace {ns}: {}", s.message()))?;
        }
        let frontend = Arc::new(Frontend::new(
            FrontendConfig {
                cluster_name: cluster.cluster_name.clone(),
                cluster_id: uuid::Uuid::new_v4().to_string(),
                num_shards: cluster.num_shards,
                persistence_store: config.store_name.clone(),
                max_long_poll: Duration::from_secs(60),
                rate_limits: config.rate_limits.clone(),
                admission: config.admission.clone(),
                open_workflows: config.open_workflows.clone(),
                batch: temper_frontend::BatchConfig {
                    node_name: config.owner.clone(),
                    ..config.batch.clone()
                },
                eager_workflow_start: config.eager_workflow_start,
                worker_versioning_data_apis: config.worker_versioning_data_apis,
            },
            namespaces,
            history_client,
            matching_client,
            persistence.visibility.clone(),
            Arc::new(temper_client::nexus_endpoints::NexusEndpoints::new(
                persistence.nexus_endpoints.clone(),
                config.clock.clone(),
                config.nexus_endpoints_refresh,
            )),
        ));
        // One deployment registry for the process: a routing change made through the
        // frontend is what matching routes by at once.
        let deployments = Arc::new(temper_client::deployments::DeploymentRegistry::new(
            persistence.namespaces.clone(),
            config.clock.clone(),
        ));
        matching.set_deployments(deployments.clone());
        frontend.set_deployments(deployments);
        // Batches a previous run of this node left unfinished carry on.
        frontend.batcher().resume();
        Ok(Node {
            frontend,
            history,
            matching,
            cluster,
        })
    }

    /// Wake long polls, stop the shards and wait for their tasks.
    pub async fn shutdown(&self) {
        self.frontend.batcher().shutdown().await;
        self.matching.shutdown();
        self.history.shutdown().await;
    }
}
