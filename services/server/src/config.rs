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

/// Environment variables that override config keys start with this.
pub const ENV_PREFIX: &str = "TEMPER_";
/// The config's sections; `TEMPER_<SECTION>__...` variables outside them are not config.
const SECTIONS: &[&str] = &[
    "node", "cluster", "store", "history", "matching", "log", "tracing", "metrics", "health",
    "frontend", "tls", "auth",
];

/// An override's value: a TOML value if it parses as one, else the text as a string.
fn override_value(text: &str) -> toml::Value {
    match format!("v = {text}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_owned())),
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

/// Set `path` (`["cluster", "num_shards"]`) in `root`, creating tables on the way.
fn set_path(root: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else {
        anyhow::bail!("empty key");
    };
    if path.iter().any(String::is_empty) {
        anyhow::bail!("`{}` is not a config key", path.join("."));
    }
    let mut table = root;
    for (i, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => anyhow::bail!("`{}` is a value, not a section", path[..=i].join(".")),
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub node: NodeSection,
    pub cluster: ClusterSection,
    pub store: StoreSection,
    pub history: HistorySection,
    pub matching: MatchingSection,
    pub log: LogSection,
    pub tracing: TracingSection,
    pub health: HealthSection,
    pub metrics: MetricsSection,
    pub frontend: FrontendSection,
    pub tls: TlsSection,
    pub auth: AuthSection,
}

/// Authentication and authorization of the Temporal API (docs/security.md): JWT bearer
/// tokens with Temporal's `namespace:role` permissions, and client certificates mapped to
/// permissions. Internode traffic and health checks are not subject to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// Check every call. Default: false (every call allowed).
    pub enabled: bool,
    /// JWKS document (HTTP or HTTPS) with the token signing keys.
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched again (also on a token with an unknown key id).
    pub jwks_refresh_interval_ms: u64,
    /// A PEM CA bundle an `https` `jwks_url` may be signed by, besides the system's root
    /// CAs (an identity provider with a private CA).
    pub jwks_ca_file: Option<PathBuf>,
    /// A PEM public key (RSA or P-256) or a JWKS JSON file with the signing keys.
    pub key_file: Option<PathBuf>,
    /// The claim holding the `namespace:role` permissions.
    pub permissions_claim: String,
    /// When set, tokens must name it in `aud`.
    pub audience: Option<String>,
    /// When set, tokens' `iss` must be it.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_ms: u64,
    /// Log every decision (who, method, namespace, allowed or denied) on the tracing
    /// target `temper::audit`.
    pub audit_log: bool,
    /// Client certificate common name -> permissions, for callers without a token.
    pub cert_permissions: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            enabled: false,
            jwks_url: None,
            jwks_refresh_interval_ms: 60_000,
            jwks_ca_file: None,
            key_file: None,
            permissions_claim: "permissions".into(),
            audience: None,
            issuer: None,
            leeway_ms: 0,
            audit_log: false,
            cert_permissions: Default::default(),
        }
    }
}

impl AuthSection {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.jwks_url.is_some() && self.key_file.is_some() {
            anyhow::bail!("auth.jwks_url and auth.key_file: set one, not both");
        }
        if self.jwks_url.is_none() && self.key_file.is_none() && self.cert_permissions.is_empty() {
            anyhow::bail!(
                "auth.enabled = true needs a source of credentials: auth.jwks_url or auth.key_file \
                 (the keys that sign the tokens), or auth.cert_permissions (client certificates)"
            );
        }
        if let Some(u) = &self.jwks_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            anyhow::bail!("auth.jwks_url: `{u}` is not an http:// or https:// URL");
        }
        if self.jwks_ca_file.is_some() && self.jwks_url.is_none() {
            anyhow::bail!("auth.jwks_ca_file is for an https auth.jwks_url: set auth.jwks_url");
        }
        if self.jwks_refresh_interval_ms < 1000 {
            anyhow::bail!("auth.jwks_refresh_interval_ms must be at least 1000");
        }
        if self.permissions_claim.is_empty() {
            anyhow::bail!("auth.permissions_claim must not be empty");
        }
        Ok(())
    }

    /// What the auth crate needs, when auth is on.
    pub fn settings(&self) -> Option<temper_auth::AuthSettings> {
        if !self.enabled {
            return None;
        }
        let keys = match (&self.jwks_url, &self.key_file) {
            (Some(url), _) => Some(temper_auth::KeySource::Url(url.clone())),
            (None, Some(path)) => Some(temper_auth::KeySource::File(path.clone())),
            (None, None) => None,
        };
        Some(temper_auth::AuthSettings {
            keys,
            jwks_ca_file: self.jwks_ca_file.clone(),
            refresh_interval: Duration::from_millis(self.jwks_refresh_interval_ms),
            rules: temper_auth::TokenRules {
                permissions_claim: self.permissions_claim.clone(),
                audience: self.audience.clone(),
                issuer: self.issuer.clone(),
                leeway: Duration::from_millis(self.leeway_ms),
            },
            cert_permissions: self
                .cert_permissions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            audit_log: self.audit_log,
            max_message_bytes: temper_client::MAX_MESSAGE_BYTES,
        })
    }
}

/// TLS on the gRPC port (docs/security.md). The port serves clients and nodes alike, so
/// the frontend pair and the internode set are configured together or not at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSection {
    /// PEM certificate chain clients see (leaf first). Default: none (plaintext).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA bundle: when set, every client must present a certificate signed by it.
    /// Default: none (clients need no certificate).
    pub client_ca: Option<PathBuf>,
    /// How often the files are read again for changes (rotation). Default: 5000.
    pub reload_interval_ms: u64,
    /// What nodes present to each other (`[tls.internode]`).
    pub internode: InternodeTlsSection,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            client_ca: None,
            reload_interval_ms: 5000,
            internode: InternodeTlsSection::default(),
        }
    }
}

/// Internode mTLS: history, matching and admin calls between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InternodeTlsSection {
    /// PEM certificate chain of this node, signed by `ca`, naming `server_name`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM bundle of the internode CA: peers must present certificates signed by it.
    pub ca: Option<PathBuf>,
    /// The name nodes ask for and check in each other's certificates (a DNS name in each
    /// node certificate's subject alternative names). Default: `temper-internode`.
    pub server_name: String,
}

impl Default for InternodeTlsSection {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            ca: None,
            server_name: "temper-internode".into(),
        }
    }
}

impl TlsSection {
    fn validate(&self) -> anyhow::Result<()> {
        let frontend = match (&self.cert, &self.key) {
            (Some(_), Some(_)) => true,
            (None, None) => false,
            _ => anyhow::bail!("tls.cert and tls.key go together: set both or neither"),
        };
        if self.client_ca.is_some() && !frontend {
            anyhow::bail!("tls.client_ca needs tls.cert and tls.key");
        }
        let i = &self.internode;
        let internode = match (&i.cert, &i.key, &i.ca) {
            (Some(_), Some(_), Some(_)) => true,
            (None, None, None) => false,
            _ => anyhow::bail!(
                "tls.internode.cert, tls.internode.key and tls.internode.ca go together: set all three or none"
            ),
        };
        if frontend != internode {
            anyhow::bail!(
                "TLS on the gRPC port needs both tls.cert/tls.key (what clients see) and \
                 tls.internode.cert/key/ca (what nodes use with each other), since clients \
                 and nodes share the port; set both or neither"
            );
        }
        if self.reload_interval_ms < 100 {
            anyhow::bail!("tls.reload_interval_ms must be at least 100");
        }
        if internode && rustls_name_invalid(&i.server_name) {
            anyhow::bail!(
                "tls.internode.server_name: `{}` is not a DNS name",
                i.server_name
            );
        }
        Ok(())
    }

    /// The internode files, when configured.
    pub fn internode_files(&self) -> Option<temper_tls::InternodeFiles> {
        let i = &self.internode;
        Some(temper_tls::InternodeFiles {
            identity: temper_tls::Identity {
                cert: i.cert.clone()?,
                key: i.key.clone()?,
            },
            ca: i.ca.clone()?,
            server_name: i.server_name.clone(),
        })
    }

    /// What the gRPC port serves, when TLS is on.
    pub fn server_files(&self) -> Option<temper_tls::ServerFiles> {
        Some(temper_tls::ServerFiles {
            frontend: temper_tls::Identity {
                cert: self.cert.clone()?,
                key: self.key.clone()?,
            },
            client_ca: self.client_ca.clone(),
            internode: self.internode_files(),
        })
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::from_millis(self.reload_interval_ms)
    }
}

/// Whether `name` cannot be a TLS server name (a DNS name).
fn rustls_name_invalid(name: &str) -> bool {
    name.is_empty()
        || name.parse::<std::net::IpAddr>().is_ok()
        || !name
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// The Temporal API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FrontendSection {
    /// Requests per second of each namespace on this node (long polls not counted); 0: no
    /// limit. Default: 0.
    pub namespace_rps: u32,
    /// Namespaces with their own limit: `"big-tenant" = 5000`.
    pub per_namespace_rps: std::collections::BTreeMap<String, u32>,
    /// Requests per second of all namespaces together on this node; 0: no limit. Default: 0.
    pub host_rps: u32,
    /// Visibility queries per second of each namespace on this node; 0: no limit. Default: 0.
    pub namespace_visibility_rps: u32,
    /// Requests bringing new work (starts, signals, cancels...) running at once on this node; the others wait in
    /// one queue per namespace and get places in turn. 0: no bound. Default: 0.
    pub max_inflight: u32,
    /// Overload control: while this node's scheduling lag (how late a task that sleeps 5 ms runs
    /// again, the median over 100 ms) is above this many milliseconds, new work is
    /// admitted at a paced rate, in turn between namespaces. Values under 2 count as 2 (an
    /// idle node's lag is about 1 ms). 0: off. Default: 0.
    pub overload_target_lag_ms: f64,
    /// Requests of one namespace waiting for a place; more get RESOURCE_EXHAUSTED.
    /// Default: 1000.
    pub namespace_max_queued: u32,
    /// Places per turn of namespaces with a larger share (default 1): `"big-tenant" = 3`.
    pub namespace_weights: std::collections::BTreeMap<String, u32>,
    /// Open workflows of each namespace; a start beyond is refused. 0: no bound. Default: 0.
    pub namespace_max_open_workflows: u64,
    /// Namespaces with their own bound on open workflows: `"big-tenant" = 1000000`.
    pub per_namespace_max_open_workflows: std::collections::BTreeMap<String, u64>,
    /// Legacy worker versioning's build id version sets (UpdateWorkerBuildIdCompatibility,
    /// GetWorkerBuildIdCompatibility, GetWorkerTaskReachability; Temporal's
    /// `frontend.workerVersioningDataAPIs`). Default: false (they answer PERMISSION_DENIED).
    pub worker_versioning_data_apis: bool,
}

impl Default for FrontendSection {
    fn default() -> Self {
        Self {
            namespace_rps: 0,
            per_namespace_rps: Default::default(),
            host_rps: 0,
            namespace_visibility_rps: 0,
            max_inflight: 0,
            overload_target_lag_ms: 0.0,
            namespace_max_queued: 1000,
            namespace_weights: Default::default(),
            namespace_max_open_workflows: 0,
            per_namespace_max_open_workflows: Default::default(),
            worker_versioning_data_apis: false,
        }
    }
}

/// Liveness and readiness over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSection {
    /// Address (IP:port) of `GET /health/live` and `GET /health/ready`. Default: none (off).
    pub listen_address: Option<String>,
    /// How long the store must fail every readiness check (one each half second) before a
    /// ready node turns not ready. One slow store call (a Cassandra replica down, a LOCAL_SERIAL
    /// read timing out) must not pull a healthy node out of service. 0: at the first failure.
    pub store_failure_window_ms: u64,
    /// Serve HTTPS with the node's `[tls]` certificate and key (and, with `tls.client_ca`,
    /// require client certificates). Default: false (plain HTTP).
    pub tls: bool,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            listen_address: None,
            tls: false,
            store_failure_window_ms: 10_000,
        }
    }
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
    /// How often a node reads the store's row of each shard it runs, to stop any another
    /// node took; a stopped shard is taken again after three of these. Default: 1000.
    pub shard_check_interval_ms: u64,
    /// Completion callbacks on workflow updates (Temporal's `history.enableUpdateCallbacks`).
    /// Default: false.
    pub update_callbacks: bool,
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
            shard_check_interval_ms: 1000,
            update_callbacks: false,
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

/// The range of `[history] max_timers_in_memory` (and of its dynamic config key).
pub const MIN_MAX_TIMERS: u64 = 1024;
pub const MAX_MAX_TIMERS: u64 = 100_000_000;

/// Workflow state: what a history node keeps in memory (docs/operations.md#memory).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HistorySection {
    /// The run cache's memory budget for the whole node, in MiB (shared by the shards the
    /// node runs); idle runs are evicted past it and read again from the store when needed.
    /// Default: 64.
    pub cache_budget_mib: u64,
    /// Timers due within this many seconds are held in memory; later ones wait in the store
    /// until the window reaches them. Default: 600.
    pub timer_window_s: u64,
    /// At most this many timers held in memory by the node, shared by the shards it runs;
    /// past a shard's share its latest timers wait in the store too, and are read as the
    /// ones held fire. Default: 32768.
    pub max_timers_in_memory: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self {
            cache_budget_mib: (temper_history::DEFAULT_CACHE_BUDGET_BYTES >> 20) as u64,
            timer_window_s: temper_history::DEFAULT_TIMER_WINDOW.as_secs(),
            max_timers_in_memory: temper_history::DEFAULT_MAX_TIMERS as u64,
        }
    }
}

impl HistorySection {
    /// The history engine's memory settings.
    pub fn memory(&self) -> temper_history::MemoryConfig {
        temper_history::MemoryConfig {
            cache_budget: temper_history::CacheBudget::new(
                usize::try_from(self.cache_budget_mib << 20).unwrap_or(usize::MAX),
            ),
            timer_window: std::time::Duration::from_secs(self.timer_window_s),
            max_timers: usize::try_from(self.max_timers_in_memory).unwrap_or(usize::MAX),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=1 << 20).contains(&self.cache_budget_mib) {
            anyhow::bail!("history.cache_budget_mib must be 1 to 1048576");
        }
        if !(10..=86_400).contains(&self.timer_window_s) {
            anyhow::bail!("history.timer_window_s must be 10 to 86400");
        }
        if !(MIN_MAX_TIMERS..=MAX_MAX_TIMERS).contains(&self.max_timers_in_memory) {
            anyhow::bail!(
                "history.max_timers_in_memory must be {MIN_MAX_TIMERS} to {MAX_MAX_TIMERS}"
            );
        }
        Ok(())
    }
}

/// Task queues.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchingSection {
    /// Partitions of a normal task queue (`default_partitions`, default 4) and per-queue
    /// overrides (`[matching.partitions.per_queue]`, `"queue-name" = 8`).
    pub partitions: PartitionConfig,
    /// How often a matching node confirms the lease of each task-queue partition it holds
    /// (a conditional write per partition). Default: 5000.
    pub lease_check_interval_ms: u64,
}

impl Default for MatchingSection {
    fn default() -> Self {
        Self {
            partitions: PartitionConfig {
                default_partitions: 4,
                ..PartitionConfig::default()
            },
            lease_check_interval_ms: 5000,
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

/// Trace export to an OpenTelemetry collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TracingSection {
    /// OTLP/gRPC endpoint of the collector (`http://otel-collector:4317`). Default: none
    /// (no export).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans. Default: `temper`.
    pub service_name: String,
    /// Share of new traces exported, 0.0 to 1.0. Default: 1.0.
    pub sample_ratio: f64,
}

impl Default for TracingSection {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "temper".into(),
            sample_ratio: 1.0,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` (e.g. `127.0.0.1:9090`). Default: none (no metrics).
    pub listen_address: Option<std::net::SocketAddr>,
    /// Serve HTTPS with the node's `[tls]` certificate and key (and, with `tls.client_ca`,
    /// require client certificates). Default: false (plain HTTP).
    pub tls: bool,
}

impl ServerConfig {
    /// Read and check a config file, with no overrides.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::layered(Some(path), std::iter::empty(), &[])
    }

    /// The config from its layers, each overriding the one before: the defaults, the file
    /// (if any), environment variables `TEMPER_<SECTION>__<KEY>` (for example
    /// `TEMPER_NODE__GRPC_ADDRESS=0.0.0.0:7233`, `TEMPER_CLUSTER__NUM_SHARDS=512`; nested
    /// keys continue with `__`), then `--set section.key=value` flags. A value from the
    /// environment or a flag is read as a TOML value when it is one (`512`, `true`,
    /// `["a:1", "b:2"]`) and as a string otherwise. Unknown keys are ignored with a warning;
    /// an invalid value is refused with a message that names its key.
    pub fn layered(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> anyhow::Result<Self> {
        let mut root = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("{} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            // Other TEMPER_* variables (TEMPER_BIN, TEMPER_CONFIG...) are not config keys.
            if path.len() < 2 || !SECTIONS.contains(&path[0].as_str()) {
                continue;
            }
            set_path(&mut root, &path, override_value(&value))
                .with_context(|| format!("environment variable {name}"))?;
        }
        for set in sets {
            let (key, value) = set
                .split_once('=')
                .with_context(|| format!("--set {set}: expected KEY=VALUE"))?;
            let path: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
            set_path(&mut root, &path, override_value(value.trim()))
                .with_context(|| format!("--set {set}"))?;
        }
        Self::from_table(root)
    }

    /// Parse a config from TOML text (no environment, no flags).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let root = text
            .parse::<toml::Table>()
            .context("the config is not valid TOML")?;
        Self::from_table(root)
    }

    fn from_table(root: toml::Table) -> anyhow::Result<Self> {
        let (config, unknown) = Self::from_table_reporting(root)?;
        for key in unknown {
            tracing::warn!(key, "ignoring unknown config key");
            eprintln!("warning: ignoring unknown config key `{key}`");
        }
        Ok(config)
    }

    /// Parse TOML text; also return the unknown keys it names.
    pub fn parse_reporting(text: &str) -> anyhow::Result<(Self, Vec<String>)> {
        let root = text
            .parse::<toml::Table>()
            .context("the config is not valid TOML")?;
        Self::from_table_reporting(root)
    }

    fn from_table_reporting(root: toml::Table) -> anyhow::Result<(Self, Vec<String>)> {
        let mut unknown = Vec::new();
        let value = toml::Value::Table(root);
        let mut track = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let ignoring = serde_ignored::Deserializer::new(value, &mut track);
        let config: Self = serde_path_to_error::deserialize(ignoring).map_err(|e| {
            let key = e.path().to_string();
            anyhow::anyhow!("invalid config value for `{key}`: {}", e.into_inner())
        })?;
        config.validate()?;
        Ok((config, unknown))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.node.roles.is_empty() {
            anyhow::bail!("node.roles: give at least one of frontend, history, matching");
        }
        if self.cluster.num_shards == 0 {
            anyhow::bail!("cluster.num_shards must be at least 1");
        }
        for (key, ms) in [
            (
                "cluster.shard_check_interval_ms",
                self.cluster.shard_check_interval_ms,
            ),
            (
                "matching.lease_check_interval_ms",
                self.matching.lease_check_interval_ms,
            ),
        ] {
            if ms < 100 {
                anyhow::bail!("{key} must be at least 100");
            }
        }
        self.history.validate()?;
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
        if !(0.0..=1.0).contains(&self.tracing.sample_ratio) {
            anyhow::bail!(
                "tracing.sample_ratio: {} is not between 0 and 1",
                self.tracing.sample_ratio
            );
        }
        if let Some(e) = &self.tracing.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            anyhow::bail!("tracing.otlp_endpoint: `{e}` is not an http:// or https:// URL");
        }
        self.tls.validate()?;
        // The HTTP endpoints reuse the gRPC port's certificate: one set of files to rotate.
        for (key, on) in [
            ("health.tls", self.health.tls),
            ("metrics.tls", self.metrics.tls),
        ] {
            if on && self.tls.server_files().is_none() {
                anyhow::bail!(
                    "{key} = true serves HTTPS with the node's certificate, but [tls] has none: \
                     set tls.cert and tls.key"
                );
            }
        }
        self.auth.validate()?;
        self.grpc_listen()?;
        self.membership_listen()?;
        self.health_listen()?;
        if let Some(a) = &self.node.advertise_membership_address {
            a.parse::<SocketAddr>().with_context(|| {
                format!("node.advertise_membership_address: `{a}` is not an IP:port address")
            })?;
        }
        Ok(())
    }

    pub fn health_listen(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.health
            .listen_address
            .as_ref()
            .map(|a| {
                a.parse().with_context(|| {
                    format!("health.listen_address: `{a}` is not an IP:port address")
                })
            })
            .transpose()
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

    /// The trace export, if an OTLP endpoint is configured.
    pub fn otlp_export(&self) -> Option<crate::telemetry::OtlpExport> {
        let endpoint = self.tracing.otlp_endpoint.clone()?;
        Some(crate::telemetry::OtlpExport {
            endpoint,
            service_name: self.tracing.service_name.clone(),
            instance: self.node_name(),
            sample_ratio: self.tracing.sample_ratio,
        })
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
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "[node]\nname = \"from-file\"\n[cluster]\nnum_shards = 8\nseeds = [\"a:1\"]\n",
        )
        .expect("write");
        let env = [
            ("TEMPER_CLUSTER__NUM_SHARDS", "32"),
            ("TEMPER_CLUSTER__SEEDS", "[\"b:1\", \"c:1\"]"),
            ("TEMPER_NODE__NAME", "from-env"),
            ("TEMPER_MATCHING__PARTITIONS__DEFAULT_PARTITIONS", "2"),
            // Not config: other tools' variables with the same prefix.
            ("TEMPER_BIN", "/somewhere/temper"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::layered(
            Some(&file),
            env,
            &["node.name=from-flag".into(), "log.level = debug".into()],
        )
        .expect("valid");
        assert_eq!(c.node_name(), "from-flag", "flags win over the environment");
        assert_eq!(
            c.cluster.num_shards, 32,
            "the environment wins over the file"
        );
        assert_eq!(c.cluster.seeds, vec!["b:1".to_string(), "c:1".to_string()]);
        assert_eq!(c.matching.partitions.default_partitions, 2);
        assert_eq!(c.log.level, "debug");
        assert_eq!(
            c.node.grpc_address, "127.0.0.1:7233",
            "defaults fill the rest"
        );

        let only_defaults = ServerConfig::layered(None, [], &[]).expect("defaults");
        assert_eq!(only_defaults.cluster.num_shards, 16);
    }

    #[test]
    fn history_memory_settings_are_read_and_checked() {
        let c = ServerConfig::layered(
            None,
            [(
                "TEMPER_HISTORY__CACHE_BUDGET_MIB".to_owned(),
                "8".to_owned(),
            )],
            &[
                "history.timer_window_s=120".into(),
                "history.max_timers_in_memory=5000".into(),
            ],
        )
        .expect("valid");
        let memory = c.history.memory();
        assert_eq!(memory.cache_budget.limit(), 8 << 20);
        assert_eq!(memory.timer_window, std::time::Duration::from_secs(120));
        assert_eq!(memory.max_timers, 5000);
        let defaults = ServerConfig::layered(None, [], &[]).expect("defaults");
        assert_eq!(defaults.history.memory().cache_budget.limit(), 64 << 20);
        assert_eq!(defaults.history.memory().max_timers, 32_768);
        for bad in [
            "history.cache_budget_mib=0",
            "history.timer_window_s=1",
            "history.max_timers_in_memory=10",
        ] {
            let e = ServerConfig::layered(None, [], &[bad.into()]).expect_err(bad);
            let key = bad.split('=').next().expect("key");
            assert!(format!("{e:#}").contains(key), "{e:#}");
        }
    }

    #[test]
    fn bad_overrides_name_their_key() {
        let e = ServerConfig::layered(
            None,
            [("TEMPER_CLUSTER__NUM_SHARDS".to_owned(), "many".to_owned())],
            &[],
        )
        .expect_err("not a number");
        assert!(format!("{e:#}").contains("cluster.num_shards"), "{e:#}");
        let e = ServerConfig::layered(None, [], &["node".into()]).expect_err("no =");
        assert!(format!("{e:#}").contains("KEY=VALUE"), "{e:#}");
        let e = ServerConfig::layered(None, [], &["node.roles.x=1".into()])
            .expect_err("roles is a list");
        assert!(format!("{e:#}").contains("node.roles"), "{e:#}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("[cluster]\nnum_shards = 0", "cluster.num_shards"),
            ("[node]\nroles = []", "node.roles"),
            ("[node]\ngrpc_address = \"localhost\"", "node.grpc_address"),
            ("[node]\nroles = [\"historian\"]", "historian"),
            ("[tracing]\nsample_ratio = 1.5", "tracing.sample_ratio"),
            (
                "[cluster]\nshard_check_interval_ms = 10",
                "cluster.shard_check_interval_ms",
            ),
            (
                "[matching]\nlease_check_interval_ms = 0",
                "matching.lease_check_interval_ms",
            ),
            (
                "[tracing]\notlp_endpoint = \"collector:4317\"",
                "tracing.otlp_endpoint",
            ),
        ] {
            let e = format!("{:#}", ServerConfig::parse(text).expect_err(text));
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn tls_is_off_by_default_and_comes_from_file_or_environment() {
        let off = ServerConfig::parse("").expect("defaults");
        assert!(off.tls.server_files().is_none());
        assert_eq!(off.tls.internode.server_name, "temper-internode");
        let env = [
            ("TEMPER_TLS__CERT", "/tls/front.pem"),
            ("TEMPER_TLS__KEY", "/tls/front.key"),
            ("TEMPER_TLS__CLIENT_CA", "/tls/clients.pem"),
            ("TEMPER_TLS__INTERNODE__CERT", "/tls/node.pem"),
            ("TEMPER_TLS__INTERNODE__KEY", "/tls/node.key"),
            ("TEMPER_TLS__INTERNODE__CA", "/tls/ca.pem"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::layered(
            None,
            env,
            &["tls.internode.server_name=nodes.temper".into()],
        )
        .expect("valid");
        let files = c.tls.server_files().expect("TLS on");
        assert_eq!(files.frontend.cert, PathBuf::from("/tls/front.pem"));
        assert_eq!(files.client_ca, Some(PathBuf::from("/tls/clients.pem")));
        let internode = files.internode.expect("internode on");
        assert_eq!(internode.ca, PathBuf::from("/tls/ca.pem"));
        assert_eq!(internode.server_name, "nodes.temper");
    }

    #[test]
    fn https_health_and_metrics_come_from_the_environment_and_need_the_tls_files() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let off = ServerConfig::parse("").expect("defaults");
        assert!(!off.health.tls && !off.metrics.tls);
        let tls = [
            ("TEMPER_TLS__CERT", "/tls/front.pem"),
            ("TEMPER_TLS__KEY", "/tls/front.key"),
            ("TEMPER_TLS__INTERNODE__CERT", "/tls/node.pem"),
            ("TEMPER_TLS__INTERNODE__KEY", "/tls/node.key"),
            ("TEMPER_TLS__INTERNODE__CA", "/tls/ca.pem"),
        ];
        let mut on = tls.to_vec();
        on.extend([
            ("TEMPER_HEALTH__TLS", "true"),
            ("TEMPER_METRICS__TLS", "true"),
        ]);
        let c = ServerConfig::layered(None, vars(&on), &[]).expect("valid");
        assert!(c.health.tls && c.metrics.tls);
        for key in ["health", "metrics"] {
            let var = format!("TEMPER_{}__TLS", key.to_uppercase());
            let e = ServerConfig::layered(None, vars(&[(var.as_str(), "true")]), &[])
                .expect_err("HTTPS without a certificate");
            let e = format!("{e:#}");
            assert!(
                e.contains(&format!("{key}.tls")) && e.contains("tls.cert and tls.key"),
                "{e}"
            );
        }
    }

    #[test]
    fn auth_is_off_by_default_and_comes_from_file_environment_or_flags() {
        let off = ServerConfig::parse("").expect("defaults");
        assert!(!off.auth.enabled);
        assert!(off.auth.settings().is_none());
        let env = [
            ("TEMPER_AUTH__ENABLED", "true"),
            ("TEMPER_AUTH__JWKS_URL", "https://idp.example/jwks.json"),
            ("TEMPER_AUTH__LEEWAY_MS", "5000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::layered(
            None,
            env,
            &[
                "auth.audience=temper".into(),
                "auth.audit_log=true".into(),
                "auth.cert_permissions.worker-a=[\"orders:worker\"]".into(),
                "auth.jwks_ca_file=idp-ca.pem".into(),
            ],
        )
        .expect("valid");
        let s = c.auth.settings().expect("auth on");
        assert_eq!(
            s.keys,
            Some(temper_auth::KeySource::Url(
                "https://idp.example/jwks.json".into()
            ))
        );
        assert_eq!(s.rules.audience.as_deref(), Some("temper"));
        assert_eq!(s.jwks_ca_file, Some(PathBuf::from("idp-ca.pem")));
        assert_eq!(s.rules.permissions_claim, "permissions");
        assert_eq!(s.rules.leeway, Duration::from_secs(5));
        assert!(s.audit_log);
        assert_eq!(
            s.cert_permissions["worker-a"],
            vec!["orders:worker".to_string()]
        );
    }

    #[test]
    fn auth_without_a_source_of_credentials_is_refused() {
        for (text, expect) in [
            ("[auth]\nenabled = true", "needs a source of credentials"),
            (
                "[auth]\nenabled = true\njwks_url = \"a\"\nkey_file = \"b\"",
                "set one, not both",
            ),
            (
                "[auth]\nenabled = true\njwks_url = \"file:///x\"",
                "not an http:// or https:// URL",
            ),
            (
                "[auth]\nenabled = true\nkey_file = \"k.pem\"\njwks_ca_file = \"ca.pem\"",
                "auth.jwks_ca_file is for an https auth.jwks_url",
            ),
        ] {
            let e = ServerConfig::parse(text).map(|_| ()).expect_err(text);
            assert!(format!("{e:#}").contains(expect), "{text}: {e:#}");
        }
        // Off, the keys are not looked at.
        ServerConfig::parse("[auth]\njwks_url = \"file:///x\"").expect("off");
    }

    #[test]
    fn frontend_limits_come_from_the_environment_too() {
        let env =
            [("TEMPER_FRONTEND__NAMESPACE_RPS", "250")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::layered(None, env, &[]).expect("valid");
        assert_eq!(c.frontend.namespace_rps, 250);
    }

    #[test]
    fn incomplete_tls_config_is_refused() {
        let internode = "[tls.internode]\ncert = \"n.pem\"\nkey = \"n.key\"\nca = \"ca.pem\"\n";
        for (text, expect) in [
            ("[tls]\ncert = \"a.pem\"", "tls.cert and tls.key"),
            ("[tls]\nclient_ca = \"c.pem\"", "tls.client_ca"),
            (
                "[tls]\ncert = \"a.pem\"\nkey = \"a.key\"",
                "tls.internode.cert/key/ca",
            ),
            (internode, "tls.internode.cert/key/ca"),
            (
                "[tls.internode]\ncert = \"n.pem\"",
                "tls.internode.cert, tls.internode.key and tls.internode.ca",
            ),
        ] {
            let e = format!("{:#}", ServerConfig::parse(text).expect_err(text));
            assert!(e.contains(expect), "{text}: {e}");
        }
        let both = format!("[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\n{internode}");
        ServerConfig::parse(&both).expect("both sections");
        let bad_name = format!("{both}server_name = \"10.0.0.1\"\n");
        let e = format!("{:#}", ServerConfig::parse(&bad_name).expect_err("an IP"));
        assert!(e.contains("tls.internode.server_name"), "{e}");
    }

    #[test]
    fn trace_export_is_off_unless_an_endpoint_is_set() {
        let off = ServerConfig::parse("").expect("defaults");
        assert!(off.otlp_export().is_none());
        let on = ServerConfig::parse(
            "[node]\nname = \"n1\"\n[tracing]\notlp_endpoint = \"http://c:4317\"\nsample_ratio = 0.25",
        )
        .expect("valid");
        let export = on.otlp_export().expect("export on");
        assert_eq!(export.endpoint, "http://c:4317");
        assert_eq!(export.instance, "n1");
        assert_eq!(export.service_name, "temper");
        assert_eq!(export.sample_ratio, 0.25);
    }
}
