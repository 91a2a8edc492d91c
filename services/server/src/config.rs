//! The node config file of `temper server start --config FILE` (TOML). Every field has a
//! default; a file only names what differs.
//!
//! ```toml
//! [node]
//! name = "a"
//! roles = ["frontend", "history", "matching"]
//! grpc_address = "127.0.0.1:7233"
//! membership_address = "127.0.0.1:6933"
//!
//! [cluster]
//! num_shards = 16
//! seeds = ["127.0.0.1:6933", "127.0.0.1:6934"]
//!
//! [store]
//! kind = "sqlite"
//! path = "cluster.sqlite"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use temper_membership::Role;
use temper_persistence_cassandra::CassandraConfig;
use temper_types::PartitionConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub node: NodeSection,
    pub cluster: ClusterSection,
    pub store: StoreSection,
    pub matching: MatchingSection,
    pub log: LogSection,
    pub metrics: MetricsSection,
}

/// This node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSection {
    /// Unique name in the cluster. Default: the gRPC address.
    pub name: Option<String>,
    /// Roles this process runs. Default: all of frontend, history, matching.
    pub roles: Vec<Role>,
    /// gRPC listen address: the Temporal API (frontend role) and the internal services.
    /// Default: `127.0.0.1:7233`.
    pub grpc_address: String,
    /// The gRPC address other nodes use, when it differs from the listen address (a pod
    /// IP while listening on 0.0.0.0). Default: `grpc_address`.
    pub advertise_grpc_address: Option<String>,
    /// UDP address of gossip membership. Default: `127.0.0.1:6933`.
    pub membership_address: String,
    /// The gossip address other nodes use. Default: `membership_address`.
    pub advertise_membership_address: Option<String>,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: None,
            roles: vec![Role::Frontend, Role::History, Role::Matching],
            grpc_address: "127.0.0.1:7233".into(),
            advertise_grpc_address: None,
            membership_address: "127.0.0.1:6933".into(),
            advertise_membership_address: None,
        }
    }
}

/// What every node of the cluster must agree on, and how nodes find each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSection {
    /// Nodes gossip only with nodes of the same cluster id. Default: `temper`.
    pub id: String,
    /// History shards, fixed when the store is created; a different value is refused.
    /// Default: 16.
    pub num_shards: u32,
    /// Gossip addresses (`host:port`) of nodes to join through; DNS names are resolved
    /// again while joining (a Kubernetes headless service). The store's membership table
    /// is always used as well. Default: none.
    pub seeds: Vec<String>,
    /// Namespaces registered at start if missing. Default: `["default"]`.
    pub namespaces: Vec<String>,
    /// Retention of those namespaces, in days. Default: 1.
    pub retention_days: u32,
    /// How long a node that stopped answering gossip stays in the rings. Default: 3000.
    pub dead_after_ms: u64,
    /// Ring changes are applied once membership is quiet for this long. Default: 500.
    pub ring_debounce_ms: u64,
    /// On graceful shutdown, how long to wait for other nodes to take this node's shards.
    /// Default: 5000.
    pub handover_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            id: "temper".into(),
            num_shards: 16,
            seeds: Vec::new(),
            namespaces: vec!["default".into()],
            retention_days: 1,
            dead_after_ms: 3000,
            ring_debounce_ms: 500,
            handover_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKindConfig {
    #[default]
    Sqlite,
    Cassandra,
}

/// Where state lives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreSection {
    /// `sqlite` (one file; several processes on one host may share it) or `cassandra`.
    pub kind: StoreKindConfig,
    /// The SQLite file. Default: `temper-cluster.sqlite` in the working directory.
    pub path: Option<PathBuf>,
    /// The Cassandra / ScyllaDB connection (`[store.cassandra]`).
    pub cassandra: CassandraConfig,
}

/// Task queues.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchingSection {
    /// Partitions of a normal task queue (`default_partitions`, default 4) and per-queue
    /// overrides (`[matching.partitions.per_queue]`, `"queue-name" = 8`).
    pub partitions: PartitionConfig,
}

impl Default for MatchingSection {
    fn default() -> Self {
        Self {
            partitions: PartitionConfig {
                default_partitions: 4,
                ..PartitionConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSection {
    /// Level or filter (`info`, `temper_history=debug,info`). Default: `info`.
    pub level: String,
    /// `text` or `json`. Default: `text`.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` (e.g. `127.0.0.1:9090`). Default: none (no metrics).
    pub listen_address: Option<std::net::SocketAddr>,
}

impl ServerConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let config = Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut unknown = Vec::new();
        let de = toml::Deserializer::parse(text).context("the config is not valid TOML")?;
        let config: Self = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
            .context("invalid config")?;
        for key in unknown {
            tracing::warn!(key, "ignoring unknown config key");
            eprintln!("warning: ignoring unknown config key `{key}`");
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.node.roles.is_empty() {
            anyhow::bail!("node.roles: give at least one of frontend, history, matching");
        }
        if self.cluster.num_shards == 0 {
            anyhow::bail!("cluster.num_shards must be at least 1");
        }
        if self.matching.partitions.default_partitions == 0 {
            anyhow::bail!("matching.partitions.default_partitions must be at least 1");
        }
        if let Some((q, _)) = self
            .matching
            .partitions
            .per_queue
            .iter()
            .find(|(_, n)| **n == 0)
        {
            anyhow::bail!("matching.partitions.per_queue.{q} must be at least 1");
        }
        self.grpc_listen()?;
        self.membership_listen()?;
        if let Some(a) = &self.node.advertise_membership_address {
            a.parse::<SocketAddr>().with_context(|| {
                format!("node.advertise_membership_address: `{a}` is not an IP:port address")
            })?;
        }
        Ok(())
    }

    pub fn grpc_listen(&self) -> anyhow::Result<SocketAddr> {
        let a = &self.node.grpc_address;
        a.parse()
            .with_context(|| format!("node.grpc_address: `{a}` is not an IP:port address"))
    }

    pub fn membership_listen(&self) -> anyhow::Result<SocketAddr> {
        let a = &self.node.membership_address;
        a.parse()
            .with_context(|| format!("node.membership_address: `{a}` is not an IP:port address"))
    }

    pub fn advertise_grpc(&self) -> String {
        self.node
            .advertise_grpc_address
            .clone()
            .unwrap_or_else(|| self.node.grpc_address.clone())
    }

    pub fn advertise_membership(&self) -> anyhow::Result<SocketAddr> {
        match &self.node.advertise_membership_address {
            Some(a) => Ok(a.parse()?),
            None => self.membership_listen(),
        }
    }

    pub fn node_name(&self) -> String {
        self.node
            .name
            .clone()
            .unwrap_or_else(|| self.advertise_grpc())
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.node.roles.contains(&role)
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.cluster.retention_days) * 24 * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = ServerConfig::parse(
            r#"
            [node]
            name = "b"
            roles = ["history", "matching"]
            grpc_address = "127.0.0.1:7300"
            membership_address = "127.0.0.1:6300"
            [cluster]
            num_shards = 8
            seeds = ["127.0.0.1:6301"]
            [store]
            path = "x.sqlite"
            [matching.partitions]
            default_partitions = 2
            [matching.partitions.per_queue]
            busy = 8
            "#,
        )
        .expect("valid");
        assert_eq!(c.node_name(), "b");
        assert!(!c.has_role(Role::Frontend) && c.has_role(Role::History));
        assert_eq!(c.cluster.num_shards, 8);
        assert_eq!(c.cluster.namespaces, vec!["default".to_string()]);
        assert_eq!(c.matching.partitions.partitions("busy"), 8);
        assert_eq!(c.matching.partitions.partitions("other"), 2);
        assert_eq!(c.advertise_membership().expect("ok").port(), 6300);
        let d = ServerConfig::parse("").expect("empty file is all defaults");
        assert_eq!(d.matching.partitions.partitions("q"), 4);
        assert_eq!(d.node_name(), "127.0.0.1:7233");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[cluster]\nnum_shards = 0", "cluster.num_shards"),
            ("[node]\nroles = []", "node.roles"),
            ("[node]\ngrpc_address = \"localhost\"", "node.grpc_address"),
            ("[node]\nroles = [\"historian\"]", "historian"),
        ] {
            let e = format!("{:#}", ServerConfig::parse(text).expect_err(text));
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
