//! `persistence.cassandra`: where the cluster is, which keyspace, how to authenticate, and
//! the consistency levels. Plain data with documented defaults; the server fills it from its
//! config file, environment and flags.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use scylla::statement::{Consistency, SerialConsistency};
use serde::{Deserialize, Serialize};

/// The CQL native protocol port, used when a contact point names none.
pub const DEFAULT_PORT: u16 = 9042;

/// How temper reaches its Cassandra or ScyllaDB cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CassandraConfig {
    /// `host[:port]` of nodes to contact first; the driver discovers the others.
    /// Default: `["127.0.0.1:9042"]`.
    pub contact_points: Vec<String>,
    /// Keyspace holding temper's tables (letters, digits, `_`; case-insensitive, stored in
    /// lower case). Default: `temper`.
    pub keyspace: String,
    /// The local datacenter: requests go to its nodes first, never to other datacenters
    /// (the `LOCAL_*` consistency levels are relative to it). Default: none, every node is
    /// equally local (single-datacenter clusters).
    pub datacenter: Option<String>,
    /// Username for password authentication. Default: none (no authentication).
    pub username: Option<String>,
    /// Password for password authentication.
    pub password: Option<String>,
    /// TLS to the cluster. Default: off.
    pub tls: TlsConfig,
    /// Consistency of reads and writes, and of the commit phase of lightweight transactions.
    /// Default: `LOCAL_QUORUM`.
    pub consistency: ConsistencyLevel,
    /// Consistency of the Paxos phase of lightweight transactions (and of the linearizable
    /// reads of fencing rows). Default: `LOCAL_SERIAL`.
    pub serial_consistency: SerialConsistencyLevel,
    /// Client-side timeout of one request, in milliseconds. Default: 10000.
    pub request_timeout_ms: u64,
    /// Timeout of opening one connection, in milliseconds. Default: 5000.
    pub connect_timeout_ms: u64,
    /// Rows per page of reads that can grow. Default: 1000.
    pub page_size: i32,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            contact_points: vec![format!("127.0.0.1:{DEFAULT_PORT}")],
            keyspace: "temper".to_owned(),
            datacenter: None,
            username: None,
            password: None,
            tls: TlsConfig::default(),
            consistency: ConsistencyLevel::LocalQuorum,
            serial_consistency: SerialConsistencyLevel::LocalSerial,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            page_size: 1_000,
        }
    }
}

/// TLS settings. The driver checks the node's certificate against `ca_file` and, unless
/// `verify_hostname` is off, that the certificate names the node's IP address (the address
/// the driver connects to, as discovered from the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// Use TLS. Default: false.
    pub enabled: bool,
    /// PEM file with the CA certificate(s) that signed the nodes' certificates. Required
    /// when TLS is on.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for clusters that require client certificates.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Check that each node's certificate names the node's IP address. Default: true. Node
    /// certificates often name a DNS name only; turn this off to trust any certificate
    /// signed by `ca_file`.
    pub verify_hostname: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify_hostname: true,
        }
    }
}

/// A configuration the store cannot work with.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid Cassandra configuration: {0}")]
pub struct ConfigError(pub String);

impl CassandraConfig {
    /// Check everything that can be checked without the cluster, and normalise: contact
    /// points get the default port, the keyspace is lower-cased.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        if self.contact_points.is_empty() {
            return Err(ConfigError(
                "no contact points: give at least one HOST:PORT of the cluster".to_owned(),
            ));
        }
        self.contact_points = self
            .contact_points
            .iter()
            .map(|c| normalize_contact_point(c))
            .collect::<Result<_, _>>()?;
        self.keyspace = validate_keyspace(&self.keyspace)?;
        if let Some(dc) = &self.datacenter
            && dc.trim().is_empty()
        {
            self.datacenter = None;
        }
        match (&self.username, &self.password) {
            (Some(_), None) => {
                return Err(ConfigError("a username is set but no password".to_owned()));
            }
            (None, Some(_)) => {
                return Err(ConfigError("a password is set but no username".to_owned()));
            }
            _ => {}
        }
        if self.tls.enabled && self.tls.ca_file.is_none() {
            return Err(ConfigError(
                "TLS is on but no CA file is given (tls.ca_file)".to_owned(),
            ));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(ConfigError(
                "a TLS client certificate needs both tls.cert_file and tls.key_file".to_owned(),
            ));
        }
        if self.page_size < 1 {
            return Err(ConfigError(format!(
                "page_size must be at least 1, not {}",
                self.page_size
            )));
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(ConfigError("timeouts must be positive".to_owned()));
        }
        Ok(self)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Contact points from a comma-separated list (`a:9042,b:9042`), as flags and
    /// environment variables give them.
    pub fn parse_contact_points(list: &str) -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `host` -> `host:9042`; `host:port` and `[v6]:port` are kept; a bare IPv6 address gets
/// brackets and the default port.
fn normalize_contact_point(point: &str) -> Result<String, ConfigError> {
    let point = point.trim();
    if point.is_empty() {
        return Err(ConfigError("an empty contact point".to_owned()));
    }
    if point.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{point}]:{DEFAULT_PORT}"));
    }
    let (host, port) = if let Some(rest) = point.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(ConfigError(format!("contact point {point:?}: missing ']'")));
        };
        match after.strip_prefix(':') {
            Some(port) => (format!("[{host}]"), Some(port)),
            None if after.is_empty() => (format!("[{host}]"), None),
            None => {
                return Err(ConfigError(format!(
                    "contact point {point:?}: expected [IPV6]:PORT"
                )));
            }
        }
    } else {
        match point.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (point.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(ConfigError(format!("contact point {point:?}: no host")));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            ConfigError(format!(
                "contact point {point:?}: {p:?} is not a port number"
            ))
        })?,
        None => DEFAULT_PORT,
    };
    Ok(format!("{host}:{port}"))
}

/// Keyspace names are unquoted CQL identifiers here, so Cassandra folds them to lower case;
/// we do the same up front so every statement and message shows the real name.
pub fn validate_keyspace(name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(ConfigError(format!(
            "keyspace {name:?}: use 1 to 48 letters, digits and '_', starting with a letter"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

/// The consistency levels temper accepts for ordinary requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConsistencyLevel {
    One,
    LocalOne,
    Two,
    Three,
    Quorum,
    LocalQuorum,
    EachQuorum,
    All,
}

impl ConsistencyLevel {
    const NAMES: [(&'static str, Self); 8] = [
        ("ONE", Self::One),
        ("LOCAL_ONE", Self::LocalOne),
        ("TWO", Self::Two),
        ("THREE", Self::Three),
        ("QUORUM", Self::Quorum),
        ("LOCAL_QUORUM", Self::LocalQuorum),
        ("EACH_QUORUM", Self::EachQuorum),
        ("ALL", Self::All),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("LOCAL_QUORUM", |(n, _)| n)
    }
}

impl From<ConsistencyLevel> for Consistency {
    fn from(c: ConsistencyLevel) -> Self {
        match c {
            ConsistencyLevel::One => Consistency::One,
            ConsistencyLevel::LocalOne => Consistency::LocalOne,
            ConsistencyLevel::Two => Consistency::Two,
            ConsistencyLevel::Three => Consistency::Three,
            ConsistencyLevel::Quorum => Consistency::Quorum,
            ConsistencyLevel::LocalQuorum => Consistency::LocalQuorum,
            ConsistencyLevel::EachQuorum => Consistency::EachQuorum,
            ConsistencyLevel::All => Consistency::All,
        }
    }
}

impl FromStr for ConsistencyLevel {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == upper)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                ConfigError(format!(
                    "consistency {s:?}: expected one of {}",
                    Self::NAMES.map(|(n, _)| n).join(", ")
                ))
            })
    }
}

impl TryFrom<String> for ConsistencyLevel {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ConsistencyLevel> for String {
    fn from(c: ConsistencyLevel) -> Self {
        c.name().to_owned()
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The consistency of Paxos rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SerialConsistencyLevel {
    /// Linearizable across every datacenter.
    Serial,
    /// Linearizable within the local datacenter.
    LocalSerial,
}

impl SerialConsistencyLevel {
    pub fn name(self) -> &'static str {
        match self {
            Self::Serial => "SERIAL",
            Self::LocalSerial => "LOCAL_SERIAL",
        }
    }

    /// As a consistency level, for linearizable reads.
    pub fn as_read_consistency(self) -> Consistency {
        match self {
            Self::Serial => Consistency::Serial,
            Self::LocalSerial => Consistency::LocalSerial,
        }
    }
}

impl From<SerialConsistencyLevel> for SerialConsistency {
    fn from(c: SerialConsistencyLevel) -> Self {
        match c {
            SerialConsistencyLevel::Serial => SerialConsistency::Serial,
            SerialConsistencyLevel::LocalSerial => SerialConsistency::LocalSerial,
        }
    }
}

impl FromStr for SerialConsistencyLevel {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "SERIAL" => Ok(Self::Serial),
            "LOCAL_SERIAL" => Ok(Self::LocalSerial),
            _ => Err(ConfigError(format!(
                "serial consistency {s:?}: expected SERIAL or LOCAL_SERIAL"
            ))),
        }
    }
}

impl TryFrom<String> for SerialConsistencyLevel {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SerialConsistencyLevel> for String {
    fn from(c: SerialConsistencyLevel) -> Self {
        c.name().to_owned()
    }
}

impl fmt::Display for SerialConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(mut f: impl FnMut(&mut CassandraConfig)) -> Result<CassandraConfig, ConfigError> {
        let mut c = CassandraConfig::default();
        f(&mut c);
        c.validated()
    }

    #[test]
    fn defaults_are_local_quorum_and_local_serial() {
        let c = CassandraConfig::default()
            .validated()
            .expect("defaults are valid");
        assert_eq!(c.consistency, ConsistencyLevel::LocalQuorum);
        assert_eq!(c.serial_consistency, SerialConsistencyLevel::LocalSerial);
        assert_eq!(c.contact_points, vec!["127.0.0.1:9042"]);
        assert_eq!(c.keyspace, "temper");
        assert_eq!(Consistency::from(c.consistency), Consistency::LocalQuorum);
        assert_eq!(
            SerialConsistency::from(c.serial_consistency),
            SerialConsistency::LocalSerial
        );
    }

    #[test]
    fn contact_points_get_the_default_port() {
        let c = valid(|c| {
            c.contact_points =
                CassandraConfig::parse_contact_points(" a , b:9142,10.0.0.1,[::1]:9043,::1,");
        })
        .expect("valid");
        assert_eq!(
            c.contact_points,
            vec![
                "a:9042",
                "b:9142",
                "10.0.0.1:9042",
                "[::1]:9043",
                "[::1]:9042"
            ]
        );
        for bad in ["a:port", "a:0", ":9042", "[::1", "[::1]x", "a:70000"] {
            let err = valid(|c| c.contact_points = vec![bad.to_owned()]).expect_err(bad);
            assert!(err.0.contains("contact point"), "{bad}: {err}");
        }
        assert!(valid(|c| c.contact_points.clear()).is_err());
    }

    #[test]
    fn keyspace_names_are_checked_and_lower_cased() {
        assert_eq!(
            valid(|c| c.keyspace = "Temper_Prod1".to_owned())
                .expect("valid")
                .keyspace,
            "temper_prod1"
        );
        for bad in ["", "1abc", "a-b", "a b", "ks\"; DROP", &"k".repeat(49)] {
            assert!(validate_keyspace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_and_tls_must_be_complete() {
        assert!(valid(|c| c.username = Some("u".into())).is_err());
        assert!(valid(|c| c.password = Some("p".into())).is_err());
        assert!(
            valid(|c| {
                c.username = Some("u".into());
                c.password = Some("p".into());
            })
            .is_ok()
        );
        assert!(valid(|c| c.tls.enabled = true).is_err());
        assert!(
            valid(|c| {
                c.tls.enabled = true;
                c.tls.ca_file = Some("ca.pem".into());
            })
            .is_ok()
        );
        assert!(
            valid(|c| {
                c.tls.enabled = true;
                c.tls.ca_file = Some("ca.pem".into());
                c.tls.cert_file = Some("client.pem".into());
            })
            .is_err()
        );
    }

    #[test]
    fn consistency_names_parse_both_ways() {
        for (name, level) in ConsistencyLevel::NAMES {
            assert_eq!(name.parse::<ConsistencyLevel>().expect(name), level);
            assert_eq!(level.to_string(), name);
        }
        assert_eq!(
            "local-quorum"
                .parse::<ConsistencyLevel>()
                .expect("lower case"),
            ConsistencyLevel::LocalQuorum
        );
        assert!("SERIAL".parse::<ConsistencyLevel>().is_err());
        assert!("ANY".parse::<ConsistencyLevel>().is_err());
        assert_eq!(
            "serial".parse::<SerialConsistencyLevel>().expect("serial"),
            SerialConsistencyLevel::Serial
        );
        assert!("QUORUM".parse::<SerialConsistencyLevel>().is_err());
    }

    #[test]
    fn config_deserializes_with_defaults_and_names() {
        let c: CassandraConfig = serde_json::from_str(
            r#"{"contact_points": ["db1"], "consistency": "quorum",
                "serial_consistency": "SERIAL", "tls": {"enabled": true, "ca_file": "/ca.pem"},
                "some_future_key": 1}"#,
        )
        .expect("deserialize");
        assert_eq!(c.consistency, ConsistencyLevel::Quorum);
        assert_eq!(c.serial_consistency, SerialConsistencyLevel::Serial);
        assert_eq!(c.keyspace, "temper");
        assert!(c.tls.verify_hostname);
        let back = serde_json::to_value(&c).expect("serialize");
        assert_eq!(back["consistency"], "QUORUM");
        assert!(serde_json::from_str::<CassandraConfig>(r#"{"consistency": "bogus"}"#).is_err());
    }
}
