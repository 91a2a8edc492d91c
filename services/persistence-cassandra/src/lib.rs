//! temper's Cassandra / ScyllaDB store: every persistence trait on the `scylla` driver.
//!
//! The data model follows the persistence contract (`temper-persistence`): all of a
//! shard's mutable rows (shard row, executions, current-run pointers, the transfer / timer /
//! visibility task outbox) live in ONE partition of the `executions` table, so a workflow
//! commit is one single-partition logged batch made conditional by lightweight
//! transactions: `IF range_id = ?` on the shard row, `IF db_record_version = ?` or
//! `IF NOT EXISTS` on each execution row, `IF current_run_id = ?` or `IF NOT EXISTS` on each
//! current-run row. When the batch is not applied, the returned rows tell which condition
//! failed (`commit.rs`). History nodes, the matching backlog (under a `range_id` lease per
//! task queue partition), namespaces, Nexus endpoints and cluster membership have tables of
//! their own
//! (`schema/cassandra/`).
//!
//! Consistency: ordinary reads and writes at the configured consistency (default
//! `LOCAL_QUORUM`), Paxos at the serial consistency (default `LOCAL_SERIAL`), reads of
//! fencing rows before a compare-and-set at the serial consistency. Statements are prepared
//! once per session and routed token-aware. A conditional write is never retried blindly:
//! if its outcome is unknown the caller gets `StoreError::OutcomeUnknown` and must reload
//! (see `errors.rs`).

mod commit;
pub mod config;
mod errors;
mod executions;
mod history;
mod membership;
mod namespaces;
mod nexus_endpoints;
mod retry;
mod rows;
pub mod schema;
mod session;
mod statements;
mod task_queues;
mod tls;
mod visibility;

use std::ops::ControlFlow;
use std::sync::Arc;

use scylla::client::session::Session;
use scylla::response::PagingState;
use scylla::statement::batch::{Batch, BatchType};
use temper_persistence::{Persistence, StoreError};

pub use config::{CassandraConfig, ConsistencyLevel, SerialConsistencyLevel, TlsConfig};
pub use membership::ClusterMember;
pub use schema::{LATEST_SCHEMA_VERSION, Replication};
pub use session::ConnectError;
pub use visibility::{VisibilityReadStats, VisibilityReadTotals};

use errors::{Op, store_error};
use rows::{Rows, Values};
use statements::{Kind, Prepared, Stmt};

/// A Cassandra or ScyllaDB keyspace implementing every store trait of `temper-persistence`.
///
/// Cheap to clone: clones share the session and its prepared statements.
#[derive(Clone)]
pub struct CassandraStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    prepared: Prepared,
    config: CassandraConfig,
    outbox: visibility::Outbox,
    visibility_buckets: visibility::WrittenBuckets,
    visibility_reads: visibility::ReadCounters,
}

impl std::fmt::Debug for CassandraStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraStore")
            .field("contact_points", &self.inner.config.contact_points)
            .field("keyspace", &self.inner.config.keyspace)
            .finish()
    }
}

impl CassandraStore {
    /// Connect, check that the keyspace holds the schema version this binary expects (an
    /// older one is refused: run `temper schema migrate`), and prepare every statement.
    pub async fn connect(config: CassandraConfig) -> Result<Self, ConnectError> {
        let config = config.validated()?;
        let session = session::open(&config).await?;
        schema::check_ready(&session, &config.keyspace).await?;
        let prepared = Prepared::prepare(&session, &config)
            .await
            .map_err(|(stmt, e)| ConnectError::Prepare {
                statement: format!("{stmt:?}"),
                reason: e.to_string(),
            })?;
        tracing::info!(
            contact_points = %config.contact_points.join(","),
            keyspace = %config.keyspace,
            consistency = %config.consistency,
            serial_consistency = %config.serial_consistency,
            "connected to Cassandra"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                session,
                prepared,
                config,
                outbox: Default::default(),
                visibility_buckets: Default::default(),
                visibility_reads: Default::default(),
            }),
        })
    }

    /// This store as the services' bundle of trait objects.
    pub fn into_persistence(self) -> Persistence {
        Persistence::from_backend(Arc::new(self))
    }

    pub fn config(&self) -> &CassandraConfig {
        &self.inner.config
    }

    fn op(stmt: Stmt) -> Op {
        match stmt.kind() {
            Kind::Lwt => Op::Conditional,
            Kind::Read | Kind::Write => Op::Idempotent,
        }
    }

    /// Run one statement in one request (writes, lightweight transactions, reads of one
    /// row). Conditional statements come back with their `[applied]` rows.
    async fn execute(&self, what: &str, stmt: Stmt, values: Values) -> Result<Rows, StoreError> {
        let prepared = self.inner.prepared.get(stmt);
        let result = self
            .inner
            .session
            .execute_unpaged(prepared, values)
            .await
            .map_err(|e| store_error(what, Self::op(stmt), &e))?;
        Rows::from_result(result)
    }

    /// Read one row linearizably (at the serial consistency): sees every lightweight
    /// transaction that completed, and completes one left half way.
    async fn read_serial(
        &self,
        what: &str,
        stmt: Stmt,
        values: Values,
    ) -> Result<Rows, StoreError> {
        let mut prepared = self.inner.prepared.get(stmt).clone();
        prepared.set_consistency(self.inner.config.serial_consistency.as_read_consistency());
        let result = self
            .inner
            .session
            .execute_unpaged(&prepared, values)
            .await
            .map_err(|e| store_error(what, Op::Idempotent, &e))?;
        Rows::from_result(result)
    }

    /// Read up to `limit` rows, a page at a time (the statement's page size), stopping as
    /// soon as `limit` rows are in.
    async fn select_paged(
        &self,
        what: &str,
        stmt: Stmt,
        values: Values,
        limit: usize,
    ) -> Result<Rows, StoreError> {
        let mut out = Rows::default();
        if limit == 0 {
            return Ok(out);
        }
        let prepared = self.inner.prepared.get(stmt);
        let mut paging = PagingState::start();
        loop {
            let (result, next) = self
                .inner
                .session
                .execute_single_page(prepared, &values, paging)
                .await
                .map_err(|e| store_error(what, Op::Idempotent, &e))?;
            out.extend(Rows::from_result(result)?);
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(state) => paging = state,
            }
        }
    }

    /// Every row, a page at a time.
    async fn select_all(&self, what: &str, stmt: Stmt, values: Values) -> Result<Rows, StoreError> {
        self.select_paged(what, stmt, values, usize::MAX).await
    }

    /// One logged batch of statements on ONE partition, conditional if any of them is.
    /// Returns the `[applied]` rows of a conditional batch.
    async fn batch(&self, what: &str, statements: Vec<(Stmt, Values)>) -> Result<Rows, StoreError> {
        let conditional = statements.iter().any(|(s, _)| s.kind() == Kind::Lwt);
        let mut batch = Batch::new(BatchType::Logged);
        let mut values = Vec::with_capacity(statements.len());
        for (stmt, v) in statements {
            batch.append_statement(self.inner.prepared.get(stmt).clone());
            values.push(v);
        }
        let config = &self.inner.config;
        batch.set_consistency(config.consistency.into());
        batch.set_serial_consistency(Some(config.serial_consistency.into()));
        batch.set_is_idempotent(!conditional);
        if conditional {
            batch.set_retry_policy(Some(Arc::new(retry::ConditionalRetryPolicy)));
        }
        batch.set_request_timeout(Some(config.request_timeout()));
        let op = if conditional {
            Op::Conditional
        } else {
            Op::Idempotent
        };
        let result = self
            .inner
            .session
            .batch(&batch, values)
            .await
            .map_err(|e| store_error(what, op, &e))?;
        Rows::from_result(result)
    }
}
