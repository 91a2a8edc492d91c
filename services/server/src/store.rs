//! Choosing and opening the store: `--store sqlite|cassandra` and the Cassandra connection
//! flags (each with an environment variable), shared by `server start-dev`, the cluster
//! start command and `temper schema`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use temper_persistence_cassandra::{
    CassandraConfig, CassandraStore, ConsistencyLevel, SerialConsistencyLevel, TlsConfig,
};

/// Which backend keeps the state.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreKind {
    /// The embedded store: one SQLite file.
    #[default]
    Sqlite,
    /// A Cassandra (4+) or ScyllaDB cluster.
    Cassandra,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Cassandra => "cassandra",
        }
    }
}

/// `--store` and the Cassandra connection flags (`persistence.cassandra`).
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where state lives: `sqlite` (an embedded file) or `cassandra` (a Cassandra or ScyllaDB
    /// cluster, see --contact-points).
    #[arg(long, env = "TEMPER_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    #[command(flatten)]
    pub cassandra: CassandraArgs,
}

/// How to reach the Cassandra / ScyllaDB cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct CassandraArgs {
    /// Cluster nodes to contact first, `HOST[:PORT][,HOST[:PORT]...]` (port 9042 if none;
    /// the driver discovers the other nodes). Default: 127.0.0.1:9042.
    #[arg(
        long,
        env = "TEMPER_CASSANDRA_CONTACT_POINTS",
        value_name = "HOST:PORT[,...]"
    )]
    pub contact_points: Option<String>,
    /// Keyspace holding temper's tables.
    #[arg(long, env = "TEMPER_CASSANDRA_KEYSPACE", default_value = "temper")]
    pub keyspace: String,
    /// The local datacenter: requests stay in it (LOCAL_QUORUM / LOCAL_SERIAL are relative
    /// to it). For `schema setup` it also selects NetworkTopologyStrategy with
    /// --replication-factor copies in this datacenter.
    #[arg(long, env = "TEMPER_CASSANDRA_DATACENTER")]
    pub datacenter: Option<String>,
    /// Username for password authentication.
    #[arg(long = "cassandra-username", env = "TEMPER_CASSANDRA_USERNAME")]
    pub username: Option<String>,
    /// Password for password authentication (prefer the environment variable).
    #[arg(
        long = "cassandra-password",
        env = "TEMPER_CASSANDRA_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Connect with TLS (needs --cassandra-tls-ca-file).
    #[arg(long = "cassandra-tls", env = "TEMPER_CASSANDRA_TLS")]
    pub tls: bool,
    /// PEM file of the CA that signed the nodes' certificates.
    #[arg(long = "cassandra-tls-ca-file", env = "TEMPER_CASSANDRA_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for clusters that require one.
    #[arg(
        long = "cassandra-tls-cert-file",
        env = "TEMPER_CASSANDRA_TLS_CERT_FILE"
    )]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --cassandra-tls-cert-file.
    #[arg(long = "cassandra-tls-key-file", env = "TEMPER_CASSANDRA_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// Accept node certificates that do not name the node's IP address (the chain is still
    /// checked against the CA).
    #[arg(
        long = "cassandra-tls-skip-hostname-check",
        env = "TEMPER_CASSANDRA_TLS_SKIP_HOSTNAME_CHECK"
    )]
    pub tls_skip_hostname_check: bool,
    /// Consistency of reads and writes (and of the commit phase of lightweight transactions).
    #[arg(
        long = "cassandra-consistency",
        env = "TEMPER_CASSANDRA_CONSISTENCY",
        default_value = "LOCAL_QUORUM"
    )]
    pub consistency: ConsistencyLevel,
    /// Consistency of the Paxos phase of lightweight transactions: SERIAL or LOCAL_SERIAL.
    #[arg(
        long = "cassandra-serial-consistency",
        env = "TEMPER_CASSANDRA_SERIAL_CONSISTENCY",
        default_value = "LOCAL_SERIAL"
    )]
    pub serial_consistency: SerialConsistencyLevel,
    /// Client-side timeout of one request, in milliseconds.
    #[arg(
        long = "cassandra-request-timeout-ms",
        env = "TEMPER_CASSANDRA_REQUEST_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub request_timeout_ms: u64,
}

impl CassandraArgs {
    /// The store configuration these flags describe, checked.
    pub fn config(&self) -> anyhow::Result<CassandraConfig> {
        let defaults = CassandraConfig::default();
        let contact_points = match &self.contact_points {
            Some(list) => CassandraConfig::parse_contact_points(list),
            None => defaults.contact_points.clone(),
        };
        let config = CassandraConfig {
            contact_points,
            keyspace: self.keyspace.clone(),
            datacenter: self.datacenter.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            tls: TlsConfig {
                enabled: self.tls,
                ca_file: self.tls_ca_file.clone(),
                cert_file: self.tls_cert_file.clone(),
                key_file: self.tls_key_file.clone(),
                verify_hostname: !self.tls_skip_hostname_check,
            },
            consistency: self.consistency,
            serial_consistency: self.serial_consistency,
            request_timeout_ms: self.request_timeout_ms,
            ..defaults
        };
        Ok(config.validated()?)
    }
}

/// First wait between connection attempts; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Connect to the cluster, waiting for it while it is unreachable (a node restarting, the
/// cluster still starting): a transient failure is printed and retried with backoff until
/// it works or the process is interrupted. Wrong settings (credentials, a missing keyspace, a
/// schema older than this binary) fail at once.
pub async fn connect_cassandra(config: CassandraConfig) -> anyhow::Result<CassandraStore> {
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match CassandraStore::connect(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "Cassandra is not reachable yet");
                eprintln!("temper: {e}; retrying in {} s", delay.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while waiting for Cassandra"),
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "opening the Cassandra store (keyspace {} at {})",
                        config.keyspace,
                        config.contact_points.join(",")
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("temper").chain(args.iter().copied()))
    }

    #[test]
    fn flags_become_the_cassandra_config() {
        let cli = parse(&[
            "--store",
            "cassandra",
            "--contact-points",
            "db1:9142,db2",
            "--keyspace",
            "Prod",
            "--datacenter",
            "dc1",
            "--cassandra-username",
            "u",
            "--cassandra-password",
            "p",
            "--cassandra-consistency",
            "quorum",
            "--cassandra-serial-consistency",
            "SERIAL",
        ])
        .expect("parses");
        assert_eq!(cli.store.store, StoreKind::Cassandra);
        let config = cli.store.cassandra.config().expect("valid");
        assert_eq!(config.contact_points, vec!["db1:9142", "db2:9042"]);
        assert_eq!(config.keyspace, "prod");
        assert_eq!(config.datacenter.as_deref(), Some("dc1"));
        assert_eq!(config.username.as_deref(), Some("u"));
        assert_eq!(config.consistency, ConsistencyLevel::Quorum);
        assert_eq!(config.serial_consistency, SerialConsistencyLevel::Serial);
        assert!(!config.tls.enabled);
    }

    #[test]
    fn defaults_are_sqlite_and_local_quorum() {
        // The flags read TEMPER_* variables too; a developer running the Cassandra suite
        // has some set, so only unset ones are checked.
        let unset = |v: &str| std::env::var_os(v).is_none();
        let cli = parse(&[]).expect("parses");
        if unset("TEMPER_STORE") {
            assert_eq!(cli.store.store, StoreKind::Sqlite);
        }
        let config = cli.store.cassandra.config().expect("valid");
        if unset("TEMPER_CASSANDRA_CONTACT_POINTS") {
            assert_eq!(config.contact_points, vec!["127.0.0.1:9042"]);
        }
        if unset("TEMPER_CASSANDRA_KEYSPACE") {
            assert_eq!(config.keyspace, "temper");
        }
        if unset("TEMPER_CASSANDRA_CONSISTENCY") && unset("TEMPER_CASSANDRA_SERIAL_CONSISTENCY") {
            assert_eq!(config.consistency, ConsistencyLevel::LocalQuorum);
            assert_eq!(
                config.serial_consistency,
                SerialConsistencyLevel::LocalSerial
            );
        }
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        assert!(parse(&["--cassandra-consistency", "SERIAL"]).is_err());
        assert!(parse(&["--store", "postgres"]).is_err());
        let cli = parse(&["--cassandra-tls"]).expect("parses");
        let err = cli.store.cassandra.config().expect_err("no CA file");
        assert!(err.to_string().contains("CA file"), "{err}");
        let cli = parse(&["--keyspace", "bad-name"]).expect("parses");
        assert!(cli.store.cassandra.config().is_err());
        let cli = parse(&["--cassandra-username", "u"]).expect("parses");
        assert!(cli.store.cassandra.config().is_err());
    }
}
