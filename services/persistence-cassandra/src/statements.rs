//! Every CQL statement the store runs, prepared once per session.
//!
//! Each statement says whether it is a lightweight transaction (conditional, never retried
//! blindly: its outcome after a timeout is unknown) or an ordinary idempotent read or write
//! (the driver's retry policy may retry it on another node).

use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::errors::PrepareError;
use scylla::statement::prepared::PreparedStatement;

use crate::config::CassandraConfig;

/// The key of one row of the `executions` table, as bind markers.
macro_rules! exec_key {
    () => {
        "shard_id = ? AND row_type = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ? \
         AND fire_time_ms = ? AND task_id = ?"
    };
}

/// The key columns of the `executions` table, in primary key order.
macro_rules! exec_key_columns {
    () => {
        "shard_id, row_type, namespace_id, workflow_id, run_id, fire_time_ms, task_id"
    };
}

/// The partition key of a task queue partition in `task_queues`.
macro_rules! queue_key {
    () => {
        "namespace_id = ? AND name = ? AND task_type = ? AND partition_id = ?"
    };
}

/// The columns of a visibility record after `namespace_id`, the same in every visibility
/// table (in `visibility_open` `close_time_ns` is always null).
macro_rules! vis_columns {
    () => {
        "workflow_id, run_id, workflow_type, task_queue, status, start_time_ns, \
         execution_time_ns, close_time_ns, history_length, history_size_bytes, \
         state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, \
         root_run_id, namespace_division, memo, search_attributes, keywords, version"
    };
}

/// One bind marker per column of [`vis_columns`].
macro_rules! vis_markers {
    () => {
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    };
}

/// How a statement may be executed and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A read; idempotent.
    Read,
    /// A write that can be repeated with the same effect; idempotent.
    Write,
    /// A conditional write (lightweight transaction); not idempotent.
    Lwt,
}

macro_rules! statements {
    ($($(#[$meta:meta])* $name:ident: $kind:ident = $cql:expr;)*) => {
        /// A statement of the store; see [`Stmt::cql`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Stmt {
            $($(#[$meta])* $name,)*
        }

        impl Stmt {
            pub(crate) const ALL: &'static [Stmt] = &[$(Stmt::$name,)*];

            pub(crate) fn cql(self) -> &'static str {
                match self {
                    $(Stmt::$name => $cql,)*
                }
            }

            pub(crate) fn kind(self) -> Kind {
                match self {
                    $(Stmt::$name => Kind::$kind,)*
                }
            }
        }

        impl Stmt {
            /// The statement with its tables in `keyspace`: every table name is qualified
            /// (`{ks}.executions`), so sessions never `USE` a keyspace, which Cassandra 5
            /// warns about on every statement prepared after one.
            pub(crate) fn qualified(self, keyspace: &str) -> String {
                self.cql().replace("{ks}", keyspace)
            }
        }
    };
}

statements! {
    // ---- cluster metadata ----
    SelectClusterMetadata: Read =
        "SELECT cluster_name, num_shards FROM {ks}.cluster_metadata WHERE metadata_partition = ?";
    InsertClusterMetadata: Lwt =
        "INSERT INTO {ks}.cluster_metadata (metadata_partition, cluster_name, num_shards) \
         VALUES (?, ?, ?) IF NOT EXISTS";

    // ---- the shard partition: shard row ----
    SelectShard: Read = concat!(
        "SELECT range_id, shard_info, shard_info_encoding FROM {ks}.executions WHERE ",
        exec_key!()
    );
    InsertShard: Lwt = concat!(
        "INSERT INTO {ks}.executions (", exec_key_columns!(),
        ", range_id, shard_info, shard_info_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         IF NOT EXISTS"
    );
    UpdateShard: Lwt = concat!(
        "UPDATE {ks}.executions SET range_id = ?, shard_info = ?, shard_info_encoding = ? WHERE ",
        exec_key!(),
        " IF range_id = ?"
    );
    /// The fencing statement of every conditional batch on a shard partition: it writes the
    /// range id it checks, so it changes nothing but makes the batch conditional on it.
    FenceShard: Lwt = concat!(
        "UPDATE {ks}.executions SET range_id = ? WHERE ",
        exec_key!(),
        " IF range_id = ?"
    );

    // ---- the shard partition: executions and current-run pointers ----
    SelectExecution: Read = concat!(
        "SELECT state, state_encoding, db_record_version FROM {ks}.executions WHERE ",
        exec_key!()
    );
    InsertExecution: Lwt = concat!(
        "INSERT INTO {ks}.executions (", exec_key_columns!(),
        ", state, state_encoding, db_record_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         IF NOT EXISTS"
    );
    UpdateExecution: Lwt = concat!(
        "UPDATE {ks}.executions SET state = ?, state_encoding = ?, db_record_version = ? WHERE ",
        exec_key!(),
        " IF db_record_version = ?"
    );
    DeleteExecution: Write = concat!("DELETE FROM {ks}.executions WHERE ", exec_key!());
    SelectCurrent: Read = concat!(
        "SELECT current_run_id, create_request_id, run_state, run_status, start_time_ms \
         FROM {ks}.executions WHERE ",
        exec_key!()
    );
    InsertCurrent: Lwt = concat!(
        "INSERT INTO {ks}.executions (", exec_key_columns!(),
        ", current_run_id, create_request_id, run_state, run_status, start_time_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
    );
    UpdateCurrent: Lwt = concat!(
        "UPDATE {ks}.executions SET current_run_id = ?, create_request_id = ?, run_state = ?, \
         run_status = ?, start_time_ms = ? WHERE ",
        exec_key!(),
        " IF current_run_id = ?"
    );
    DeleteCurrentIf: Lwt = concat!(
        "DELETE FROM {ks}.executions WHERE ",
        exec_key!(),
        " IF current_run_id = ?"
    );

    // ---- the shard partition: tasks (the outbox) ----
    InsertTask: Write = concat!(
        "INSERT INTO {ks}.executions (", exec_key_columns!(),
        ", data, data_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    /// Tasks of one category between two exclusive `(fire time, id)` bounds. The tuple
    /// spans the whole clustering key: ScyllaDB accepts multi-column relations only on a
    /// clustering prefix (scylladb#64), and with equal leading values in both bounds the
    /// slice is exactly the category's keys between the bounds.
    SelectTasks: Read =
        "SELECT fire_time_ms, task_id, data, data_encoding FROM {ks}.executions \
         WHERE shard_id = ? \
         AND (row_type, namespace_id, workflow_id, run_id, fire_time_ms, task_id) \
           > (?, ?, ?, ?, ?, ?) \
         AND (row_type, namespace_id, workflow_id, run_id, fire_time_ms, task_id) \
           < (?, ?, ?, ?, ?, ?) LIMIT ?";
    DeleteTask: Write = concat!("DELETE FROM {ks}.executions WHERE ", exec_key!());
    /// Range delete: every task of a category due strictly before a time.
    DeleteTasksBeforeTime: Write =
        "DELETE FROM {ks}.executions WHERE shard_id = ? AND row_type = ? AND namespace_id = ? \
         AND workflow_id = ? AND run_id = ? AND fire_time_ms < ?";
    /// Range delete: the tasks at one time with an id strictly below a bound.
    DeleteTasksAtTimeBefore: Write =
        "DELETE FROM {ks}.executions WHERE shard_id = ? AND row_type = ? AND namespace_id = ? \
         AND workflow_id = ? AND run_id = ? AND fire_time_ms = ? AND task_id < ?";

    /// The visibility outbox rows of a shard (row type 6) due before a time.
    SelectVisibilityOutbox: Read =
        "SELECT fire_time_ms, task_id, data, data_encoding FROM {ks}.executions \
         WHERE shard_id = ? AND row_type = ? AND namespace_id = ? AND workflow_id = ? \
         AND run_id = ? AND fire_time_ms < ?";

    // ---- visibility (every write stamped with the record's version) ----
    UpsertVisibilityRun: Write = concat!(
        "INSERT INTO {ks}.visibility_runs (namespace_id, ", vis_columns!(), ") VALUES (?, ",
        vis_markers!(), ") USING TIMESTAMP ?"
    );
    UpsertVisibilityOpen: Write = concat!(
        "INSERT INTO {ks}.visibility_open (namespace_id, scope, bucket, ", vis_columns!(),
        ") VALUES (?, ?, ?, ", vis_markers!(), ") USING TIMESTAMP ?"
    );
    UpsertVisibilityClosed: Write = concat!(
        "INSERT INTO {ks}.visibility_closed (namespace_id, scope, bucket, ", vis_columns!(),
        ") VALUES (?, ?, ?, ", vis_markers!(), ") USING TIMESTAMP ?"
    );
    DeleteVisibilityRun: Write =
        "DELETE FROM {ks}.visibility_runs USING TIMESTAMP ? WHERE namespace_id = ? \
         AND workflow_id = ? AND run_id = ?";
    DeleteVisibilityOpen: Write =
        "DELETE FROM {ks}.visibility_open USING TIMESTAMP ? WHERE namespace_id = ? \
         AND scope = ? AND bucket = ? AND start_time_ns = ? AND run_id = ?";
    DeleteVisibilityClosed: Write =
        "DELETE FROM {ks}.visibility_closed USING TIMESTAMP ? WHERE namespace_id = ? \
         AND scope = ? AND bucket = ? AND close_time_ns = ? AND start_time_ns = ? \
         AND run_id = ?";
    InsertVisibilityBucket: Write =
        "INSERT INTO {ks}.visibility_buckets (namespace_id, scope, bucket) VALUES (?, ?, ?)";
    SelectVisibilityBuckets: Read =
        "SELECT bucket FROM {ks}.visibility_buckets WHERE namespace_id = ? AND scope = ? \
         AND bucket >= ? AND bucket <= ?";
    SelectVisibilityRun: Read = concat!(
        "SELECT namespace_id, ", vis_columns!(), " FROM {ks}.visibility_runs \
         WHERE namespace_id = ? AND workflow_id = ? AND run_id = ?"
    );
    SelectVisibilityWorkflow: Read = concat!(
        "SELECT namespace_id, ", vis_columns!(), " FROM {ks}.visibility_runs \
         WHERE namespace_id = ? AND workflow_id = ?"
    );
    SelectVisibilityOpen: Read = concat!(
        "SELECT namespace_id, ", vis_columns!(), " FROM {ks}.visibility_open \
         WHERE namespace_id = ? AND scope = ? AND bucket = ? AND start_time_ns >= ? \
         AND start_time_ns <= ?"
    );
    /// What a count needs of an open row (no memo or search attributes).
    CountVisibilityOpen: Read =
        "SELECT namespace_id, workflow_id, run_id, workflow_type, status, start_time_ns, \
         close_time_ns, namespace_division FROM {ks}.visibility_open \
         WHERE namespace_id = ? AND scope = ? AND bucket = ? AND start_time_ns >= ? \
         AND start_time_ns <= ?";
    /// What a count needs of a closed row.
    CountVisibilityClosed: Read =
        "SELECT namespace_id, workflow_id, run_id, workflow_type, status, start_time_ns, \
         close_time_ns, namespace_division FROM {ks}.visibility_closed \
         WHERE namespace_id = ? AND scope = ? AND bucket = ? AND close_time_ns >= ? \
         AND close_time_ns <= ?";
    SelectVisibilityClosed: Read = concat!(
        "SELECT namespace_id, ", vis_columns!(), " FROM {ks}.visibility_closed \
         WHERE namespace_id = ? AND scope = ? AND bucket = ? AND close_time_ns >= ? \
         AND close_time_ns <= ?"
    );

    // ---- history ----
    InsertHistoryNode: Write =
        "INSERT INTO {ks}.history_node (tree_id, branch_id, node_id, txn_id, data, data_encoding) \
         VALUES (?, ?, ?, ?, ?, ?)";
    SelectHistoryNodes: Read =
        "SELECT node_id, txn_id, data, data_encoding FROM {ks}.history_node \
         WHERE tree_id = ? AND branch_id = ? AND node_id >= ? AND node_id < ? LIMIT ?";
    SelectHistoryNodeVersions: Read =
        "SELECT node_id, txn_id, data, data_encoding FROM {ks}.history_node \
         WHERE tree_id = ? AND branch_id = ? AND node_id = ? AND txn_id < ? LIMIT ?";
    DeleteHistoryBranch: Write =
        "DELETE FROM {ks}.history_node WHERE tree_id = ? AND branch_id = ?";

    // ---- matching backlog ----
    SelectTaskQueue: Read = concat!(
        "SELECT range_id, ack_level FROM {ks}.task_queues WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id = ?"
    );
    InsertTaskQueue: Lwt =
        "INSERT INTO {ks}.task_queues (namespace_id, name, task_type, partition_id, row_type, \
         task_id, range_id, ack_level) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS";
    /// Take the lease: the ack level is part of the condition so that the new holder knows
    /// the exact ack level it took over.
    LeaseTaskQueue: Lwt = concat!(
        "UPDATE {ks}.task_queues SET range_id = ? WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id = ? IF range_id = ? AND ack_level = ?"
    );
    UpdateTaskQueueAck: Lwt = concat!(
        "UPDATE {ks}.task_queues SET ack_level = ? WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id = ? IF range_id = ?"
    );
    FenceTaskQueue: Lwt = concat!(
        "UPDATE {ks}.task_queues SET range_id = ? WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id = ? IF range_id = ?"
    );
    InsertQueueTask: Write =
        "INSERT INTO {ks}.task_queues (namespace_id, name, task_type, partition_id, row_type, \
         task_id, data, data_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    SelectQueueTasks: Read = concat!(
        "SELECT task_id, data, data_encoding FROM {ks}.task_queues WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id > ? LIMIT ?"
    );
    DeleteQueueTask: Write = concat!(
        "DELETE FROM {ks}.task_queues WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id = ?"
    );
    DeleteQueueTasksThrough: Write = concat!(
        "DELETE FROM {ks}.task_queues WHERE ",
        queue_key!(),
        " AND row_type = ? AND task_id <= ?"
    );

    // ---- namespaces ----
    SelectNamespaceByName: Read =
        "SELECT name, id, detail, detail_encoding, notification_version FROM {ks}.namespaces \
         WHERE namespaces_partition = ? AND name = ?";
    ListNamespaces: Read =
        "SELECT name, id, detail, detail_encoding, notification_version FROM {ks}.namespaces \
         WHERE namespaces_partition = ? LIMIT ?";
    ListNamespacesAfter: Read =
        "SELECT name, id, detail, detail_encoding, notification_version FROM {ks}.namespaces \
         WHERE namespaces_partition = ? AND name > ? LIMIT ?";
    InsertNamespace: Lwt =
        "INSERT INTO {ks}.namespaces (namespaces_partition, name, id, detail, detail_encoding, \
         notification_version) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS";
    UpdateNamespace: Lwt =
        "UPDATE {ks}.namespaces SET detail = ?, detail_encoding = ?, notification_version = ? \
         WHERE namespaces_partition = ? AND name = ? IF id = ? AND notification_version = ?";
    DeleteNamespaceIf: Lwt =
        "DELETE FROM {ks}.namespaces WHERE namespaces_partition = ? AND name = ? \
         IF id = ? AND notification_version = ?";
    SelectNamespaceIdName: Read = "SELECT name FROM {ks}.namespaces_by_id WHERE id = ?";
    InsertNamespaceId: Lwt =
        "INSERT INTO {ks}.namespaces_by_id (id, name) VALUES (?, ?) IF NOT EXISTS";
    DeleteNamespaceIdIf: Lwt = "DELETE FROM {ks}.namespaces_by_id WHERE id = ? IF name = ?";
    UpdateNamespaceIdName: Write = "UPDATE {ks}.namespaces_by_id SET name = ? WHERE id = ?";

    // ---- Nexus endpoints (one partition: endpoint rows and name claims) ----
    SelectNexusEndpointRow: Read =
        "SELECT row_key, id, name, version, data, data_encoding FROM {ks}.nexus_endpoints \
         WHERE endpoints_partition = ? AND row_type = ? AND row_key = ?";
    ListNexusEndpoints: Read =
        "SELECT row_key, id, name, version, data, data_encoding FROM {ks}.nexus_endpoints \
         WHERE endpoints_partition = ? AND row_type = ?";
    InsertNexusEndpoint: Lwt =
        "INSERT INTO {ks}.nexus_endpoints (endpoints_partition, row_type, row_key, id, name, \
         version, data, data_encoding) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS";
    UpdateNexusEndpoint: Lwt =
        "UPDATE {ks}.nexus_endpoints SET name = ?, version = ?, data = ?, data_encoding = ? \
         WHERE endpoints_partition = ? AND row_type = ? AND row_key = ? IF version = ?";
    DeleteNexusEndpointIf: Lwt =
        "DELETE FROM {ks}.nexus_endpoints WHERE endpoints_partition = ? AND row_type = ? \
         AND row_key = ? IF version = ?";
    InsertNexusEndpointName: Lwt =
        "INSERT INTO {ks}.nexus_endpoints (endpoints_partition, row_type, row_key, id) \
         VALUES (?, ?, ?, ?) IF NOT EXISTS";
    DeleteNexusEndpointNameIf: Lwt =
        "DELETE FROM {ks}.nexus_endpoints WHERE endpoints_partition = ? AND row_type = ? \
         AND row_key = ? IF id = ?";

    // ---- cluster membership ----
    UpsertMember: Write =
        "INSERT INTO {ks}.cluster_membership (membership_partition, role, host_id, rpc_address, \
         session_start_ms, last_heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?";
    SelectMembers: Read =
        "SELECT role, host_id, rpc_address, session_start_ms, last_heartbeat_ms \
         FROM {ks}.cluster_membership WHERE membership_partition = ?";
    SelectMembersOfRole: Read =
        "SELECT role, host_id, rpc_address, session_start_ms, last_heartbeat_ms \
         FROM {ks}.cluster_membership WHERE membership_partition = ? AND role = ?";
    DeleteMember: Write =
        "DELETE FROM {ks}.cluster_membership WHERE membership_partition = ? AND role = ? \
         AND host_id = ?";
}

/// Every statement, prepared on one session with the configured consistency levels.
pub(crate) struct Prepared {
    statements: Vec<PreparedStatement>,
}

impl Prepared {
    /// Prepare every statement (concurrently; each once per session, the driver
    /// re-prepares on nodes that lost them).
    pub(crate) async fn prepare(
        session: &Session,
        config: &CassandraConfig,
    ) -> Result<Self, (Stmt, PrepareError)> {
        let statements = try_join_all(Stmt::ALL.iter().map(|&stmt| async move {
            let cql = stmt.qualified(&config.keyspace);
            let mut prepared = session.prepare(cql).await.map_err(|e| (stmt, e))?;
            configure(&mut prepared, stmt.kind(), config);
            Ok::<_, (Stmt, PrepareError)>(prepared)
        }))
        .await?;
        Ok(Self { statements })
    }

    pub(crate) fn get(&self, stmt: Stmt) -> &PreparedStatement {
        // `ALL` lists the variants in declaration order, so the discriminant is the index.
        &self.statements[stmt as usize]
    }
}

/// Consistency, idempotence, page size and timeout of one prepared statement.
fn configure(prepared: &mut PreparedStatement, kind: Kind, config: &CassandraConfig) {
    prepared.set_consistency(config.consistency.into());
    prepared.set_serial_consistency(Some(config.serial_consistency.into()));
    prepared.set_is_idempotent(kind != Kind::Lwt);
    if kind == Kind::Lwt {
        prepared.set_retry_policy(Some(std::sync::Arc::new(
            crate::retry::ConditionalRetryPolicy,
        )));
    }
    prepared.set_page_size(config.page_size);
    prepared.set_request_timeout(Some(config.request_timeout()));
}

/// The statements that are lightweight transactions, for documentation and tests.
#[cfg(test)]
pub(crate) fn lwt_statements() -> impl Iterator<Item = Stmt> {
    Stmt::ALL.iter().copied().filter(|s| s.kind() == Kind::Lwt)
}

#[cfg(test)]
mod tests;
