//! Versioned schema migrations from `schema/cassandra/`, applied in order by
//! `temper schema setup|migrate`, and the check that refuses to run a server against a
//! schema older than this binary expects.
//!
//! The applied versions are rows of `schema_version` in the keyspace (newest first). A
//! version is recorded only after every statement of its file succeeded; every statement is
//! idempotent, so an interrupted migration is simply run again. Run one migrator at a time
//! (concurrent DDL on Cassandra can disagree about table ids).

use scylla::client::session::Session;
use scylla::value::CqlValue;

use crate::config::{CassandraConfig, ConfigError};
use crate::rows::Rows;
use crate::session::{self, ConnectError};

/// One numbered script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    /// File name under `schema/cassandra/`.
    pub file: &'static str,
    pub cql: &'static str,
}

/// Ascending. Append new scripts; never edit a released one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        file: "0001_initial.cql",
        cql: include_str!("../../../schema/cassandra/0001_initial.cql"),
    },
    Migration {
        version: 2,
        file: "0002_visibility.cql",
        cql: include_str!("../../../schema/cassandra/0002_visibility.cql"),
    },
    Migration {
        version: 3,
        file: "0003_nexus_endpoints.cql",
        cql: include_str!("../../../schema/cassandra/0003_nexus_endpoints.cql"),
    },
];

/// The newest schema version this binary knows (and needs).
pub const LATEST_SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The bookkeeping table, created by the migrator before anything else.
const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version_partition int,
    version           int,
    applied_at_ms     bigint,
    file              text,
    PRIMARY KEY (version_partition, version)
) WITH CLUSTERING ORDER BY (version DESC)";

/// How the keyspace is replicated (used only when `setup` creates it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy`: one datacenter, `factor` copies.
    Simple { factor: u32 },
    /// `NetworkTopologyStrategy` with `factor` copies in `datacenter`.
    NetworkTopology { datacenter: String, factor: u32 },
}

impl Replication {
    /// From the command line's `--replication-factor` and `--datacenter`.
    pub fn new(factor: u32, datacenter: Option<&str>) -> Result<Self, ConfigError> {
        if factor == 0 {
            return Err(ConfigError(
                "the replication factor must be at least 1".to_owned(),
            ));
        }
        Ok(match datacenter.map(str::trim).filter(|d| !d.is_empty()) {
            Some(dc) => Self::NetworkTopology {
                datacenter: dc.to_owned(),
                factor,
            },
            None => Self::Simple { factor },
        })
    }

    /// The `replication = {...}` map literal.
    pub fn cql_map(&self) -> String {
        match self {
            Self::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Self::NetworkTopology { datacenter, factor } => format!(
                "{{'class': 'NetworkTopologyStrategy', '{}': {factor}}}",
                datacenter.replace('\'', "''")
            ),
        }
    }
}

/// `CREATE KEYSPACE IF NOT EXISTS`. On ScyllaDB versions with tablets, tablets are turned
/// off for the keyspace: ScyllaDB does not support lightweight transactions on tablets.
pub fn create_keyspace_cql(
    keyspace: &str,
    replication: &Replication,
    disable_tablets: bool,
) -> String {
    let mut cql = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
        replication.cql_map()
    );
    if disable_tablets {
        cql.push_str(" AND tablets = {'enabled': false}");
    }
    cql
}

/// Why a schema command failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(
        "keyspace {0:?} does not exist; `temper schema setup` creates it (migrate only \
         updates an existing one)"
    )]
    KeyspaceMissing(String),
    #[error("{file}: {reason}")]
    Script { file: &'static str, reason: String },
    #[error("{what}: {reason}")]
    Request { what: String, reason: String },
}

/// What a schema command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    pub keyspace: String,
    pub created_keyspace: bool,
    /// The version found before (0: none).
    pub from: i32,
    /// The version now.
    pub to: i32,
    /// Versions applied, in order.
    pub applied: Vec<i32>,
}

/// The migrations after `current`, in order.
pub fn pending(current: i32) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |m| m.version > current)
}

/// Whether a server may run against `found`. Older: refused (migrate first). Newer: allowed
/// with a warning, since migrations only add tables and columns.
pub fn check_version(keyspace: &str, found: Option<i32>) -> Result<(), ConnectError> {
    match found {
        None => Err(ConnectError::SchemaMissing {
            keyspace: keyspace.to_owned(),
        }),
        Some(found) if found < LATEST_SCHEMA_VERSION => Err(ConnectError::SchemaTooOld {
            keyspace: keyspace.to_owned(),
            found,
            expected: LATEST_SCHEMA_VERSION,
        }),
        Some(found) => {
            if found > LATEST_SCHEMA_VERSION {
                tracing::warn!(
                    keyspace,
                    found,
                    known = LATEST_SCHEMA_VERSION,
                    "the schema is newer than this temper; running anyway (migrations are additive)"
                );
            }
            Ok(())
        }
    }
}

/// Split a script into statements: `;` ends a statement, `--` and `//` start a comment to
/// the end of the line, `/* */` is a comment, and none of these count inside `'...'`
/// strings (with `''` escapes) or `"..."` identifiers.
pub fn split_statements(script: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                current.push(c);
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            current.push(q);
                            if chars.peek() == Some(&c) {
                                current.push(c);
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(other) => current.push(other),
                        None => return Err(format!("unterminated {c}...{c} in the script")),
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        Some('/') if prev == '*' => break,
                        Some(ch) => prev = ch,
                        None => return Err("unterminated /* comment in the script".to_owned()),
                    }
                }
                current.push(' ');
            }
            ';' => {
                let stmt = current.trim();
                if !stmt.is_empty() {
                    out.push(stmt.to_owned());
                }
                current.clear();
            }
            other => current.push(other),
        }
    }
    if !current.trim().is_empty() {
        return Err(format!(
            "the script ends with a statement without ';': {:?}",
            current.trim()
        ));
    }
    Ok(out)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for ch in chars.by_ref() {
        if ch == '\n' {
            break;
        }
    }
}

fn request_error(what: impl Into<String>, e: impl std::fmt::Display) -> SchemaError {
    SchemaError::Request {
        what: what.into(),
        reason: e.to_string(),
    }
}

async fn keyspace_exists(session: &Session, keyspace: &str) -> Result<bool, (String, String)> {
    let result = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(|e| ("looking up the keyspace".to_owned(), e.to_string()))?;
    let rows = Rows::from_result(result)
        .map_err(|e| ("looking up the keyspace".to_owned(), e.to_string()))?;
    Ok(!rows.is_empty())
}

async fn table_exists(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> Result<bool, (String, String)> {
    let what = || format!("looking up table {keyspace}.{table}");
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, table),
        )
        .await
        .map_err(|e| (what(), e.to_string()))?;
    let rows = Rows::from_result(result).map_err(|e| (what(), e.to_string()))?;
    Ok(!rows.is_empty())
}

/// The newest applied version, if the bookkeeping table exists.
async fn applied_version(
    session: &Session,
    keyspace: &str,
) -> Result<Option<i32>, (String, String)> {
    if !table_exists(session, keyspace, "schema_version").await? {
        return Ok(None);
    }
    let what = || format!("reading {keyspace}.schema_version");
    // The keyspace name is validated (letters, digits, '_'), so it is safe in the text.
    let result = session
        .query_unpaged(
            format!(
                "SELECT version FROM {keyspace}.schema_version WHERE version_partition = 0 LIMIT 1"
            ),
            (),
        )
        .await
        .map_err(|e| (what(), e.to_string()))?;
    let rows = Rows::from_result(result).map_err(|e| (what(), e.to_string()))?;
    match rows.first() {
        Some(row) => row.opt_int("version").map_err(|e| (what(), e.to_string())),
        None => Ok(None),
    }
}

/// Fail unless the keyspace exists and holds at least the schema this binary needs.
pub(crate) async fn check_ready(session: &Session, keyspace: &str) -> Result<(), ConnectError> {
    let transient = |(what, reason): (String, String)| ConnectError::Request { what, reason };
    if !keyspace_exists(session, keyspace)
        .await
        .map_err(transient)?
    {
        return Err(ConnectError::KeyspaceMissing {
            keyspace: keyspace.to_owned(),
        });
    }
    let found = applied_version(session, keyspace)
        .await
        .map_err(transient)?;
    check_version(keyspace, found)
}

/// Whether the cluster is a ScyllaDB with tablets (which must be turned off for LWT).
async fn has_tablets(session: &Session) -> bool {
    let Ok(result) = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = 'system_schema' \
             AND table_name = 'scylla_keyspaces'",
            (),
        )
        .await
    else {
        return false;
    };
    let Ok(rows) = Rows::from_result(result) else {
        return false;
    };
    rows.iter()
        .any(|row| row.opt_text("column_name").ok().flatten() == Some("initial_tablets"))
}

/// Create the keyspace if needed, then apply every pending migration.
pub async fn setup(
    config: CassandraConfig,
    replication: &Replication,
) -> Result<SchemaReport, SchemaError> {
    let config = config.validated().map_err(ConnectError::from)?;
    let session = session::open(&config).await?;
    let keyspace = &config.keyspace;
    let existed = keyspace_exists(&session, keyspace)
        .await
        .map_err(|(w, r)| request_error(w, r))?;
    if !existed {
        let cql = create_keyspace_cql(keyspace, replication, has_tablets(&session).await);
        tracing::info!(%cql, "creating keyspace");
        session
            .query_unpaged(cql, ())
            .await
            .map_err(|e| request_error(format!("creating keyspace {keyspace}"), e))?;
    }
    let mut report = migrate_in(&session, keyspace).await?;
    report.created_keyspace = !existed;
    Ok(report)
}

/// Apply every pending migration to an existing keyspace.
pub async fn migrate(config: CassandraConfig) -> Result<SchemaReport, SchemaError> {
    let config = config.validated().map_err(ConnectError::from)?;
    let session = session::open(&config).await?;
    if !keyspace_exists(&session, &config.keyspace)
        .await
        .map_err(|(w, r)| request_error(w, r))?
    {
        return Err(SchemaError::KeyspaceMissing(config.keyspace.clone()));
    }
    migrate_in(&session, &config.keyspace).await
}

async fn migrate_in(session: &Session, keyspace: &str) -> Result<SchemaReport, SchemaError> {
    session
        .use_keyspace(keyspace, false)
        .await
        .map_err(|e| request_error(format!("selecting keyspace {keyspace}"), e))?;
    session
        .query_unpaged(SCHEMA_VERSION_TABLE, ())
        .await
        .map_err(|e| request_error("creating schema_version", e))?;
    let from = applied_version(session, keyspace)
        .await
        .map_err(|(w, r)| request_error(w, r))?
        .unwrap_or(0);
    let mut report = SchemaReport {
        keyspace: keyspace.to_owned(),
        created_keyspace: false,
        from,
        to: from,
        applied: Vec::new(),
    };
    for migration in pending(from) {
        let statements = split_statements(migration.cql).map_err(|reason| SchemaError::Script {
            file: migration.file,
            reason,
        })?;
        for (i, statement) in statements.iter().enumerate() {
            // The driver waits for schema agreement after each DDL statement.
            session
                .query_unpaged(statement.as_str(), ())
                .await
                .map_err(|e| SchemaError::Script {
                    file: migration.file,
                    reason: format!("statement {} failed: {e}", i + 1),
                })?;
        }
        let now_ms = temper_types::wall_clock_millis();
        session
            .query_unpaged(
                // Qualified: a statement with values is prepared, and Cassandra 5 warns about
                // prepared statements that rely on `USE`.
                format!(
                    "INSERT INTO {keyspace}.schema_version \
                     (version_partition, version, applied_at_ms, file) VALUES (0, ?, ?, ?)"
                ),
                (
                    CqlValue::Int(migration.version),
                    CqlValue::BigInt(now_ms),
                    CqlValue::Text(migration.file.to_owned()),
                ),
            )
            .await
            .map_err(|e| {
                request_error(format!("recording schema version {}", migration.version), e)
            })?;
        tracing::info!(
            keyspace,
            version = migration.version,
            file = migration.file,
            "applied schema migration"
        );
        report.applied.push(migration.version);
        report.to = migration.version;
    }
    Ok(report)
}

/// Drop a keyspace and everything in it (test harnesses).
pub async fn drop_keyspace(config: CassandraConfig) -> Result<(), SchemaError> {
    let config = config.validated().map_err(ConnectError::from)?;
    let session = session::open(&config).await?;
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", config.keyspace), ())
        .await
        .map_err(|e| request_error(format!("dropping keyspace {}", config.keyspace), e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
