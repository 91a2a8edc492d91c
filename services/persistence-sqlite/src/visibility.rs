//! Visibility records: one row per run in `visibility`, upserted by the commit that changes
//! the run (guarded by version) and read in the default order with a keyset cursor.
//!
//! The filter becomes a `WHERE` clause built from fixed fragments and bound parameters; the
//! indexes (`schema/sqlite/0003_visibility.sql`) serve the namespace's default order and the
//! namespace + status, + type, + workflow id and + start time shapes.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use temper_persistence::{
    ExecutionKey, StatusCounts, StoreError, VisibilityCursor, VisibilityFilter, VisibilityRecord,
    VisibilityStore, close_sort,
};
use temper_types::NamespaceId;

use crate::{SqliteStore, sql_limit};

const COLUMNS: &str = "namespace_id, workflow_id, run_id, workflow_type, task_queue, status, \
     start_time_ns, execution_time_ns, close_time_ns, history_length, history_size_bytes, \
     state_transition_count, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id, \
     namespace_division, memo, search_attributes, version";

const ORDER: &str = "ORDER BY close_sort DESC, start_time_ns DESC, run_id ASC";

/// Write `r` unless the stored record of the run has the same or a higher version.
pub(crate) fn upsert(conn: &Connection, r: &VisibilityRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO visibility (namespace_id, workflow_id, run_id, workflow_type, task_queue,
             status, start_time_ns, execution_time_ns, close_time_ns, close_sort, history_length,
             history_size_bytes, state_transition_count, parent_workflow_id, parent_run_id,
             root_workflow_id, root_run_id, namespace_division, memo, search_attributes, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21)
         ON CONFLICT (namespace_id, workflow_id, run_id) DO UPDATE SET
             workflow_type = excluded.workflow_type, task_queue = excluded.task_queue,
             status = excluded.status, start_time_ns = excluded.start_time_ns,
             execution_time_ns = excluded.execution_time_ns,
             close_time_ns = excluded.close_time_ns, close_sort = excluded.close_sort,
             history_length = excluded.history_length,
             history_size_bytes = excluded.history_size_bytes,
             state_transition_count = excluded.state_transition_count,
             parent_workflow_id = excluded.parent_workflow_id,
             parent_run_id = excluded.parent_run_id, root_workflow_id = excluded.root_workflow_id,
             root_run_id = excluded.root_run_id,
             namespace_division = excluded.namespace_division, memo = excluded.memo,
             search_attributes = excluded.search_attributes, version = excluded.version
         WHERE excluded.version > visibility.version",
    )?
    .execute(rusqlite::params![
        r.namespace_id.as_str(),
        &r.workflow_id,
        &r.run_id,
        &r.workflow_type,
        &r.task_queue,
        r.status,
        r.start_time_ns,
        r.execution_time_ns,
        r.close_time_ns,
        close_sort(r.close_time_ns),
        r.history_length,
        r.history_size_bytes,
        r.state_transition_count,
        &r.parent_workflow_id,
        &r.parent_run_id,
        &r.root_workflow_id,
        &r.root_run_id,
        &r.namespace_division,
        &r.memo,
        &r.search_attributes,
        r.version,
    ])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, key: &ExecutionKey) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM visibility WHERE namespace_id = ?1 AND workflow_id = ?2 AND run_id = ?3",
    )?
    .execute((key.namespace_id.as_str(), &key.workflow_id, &key.run_id))?;
    Ok(())
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<VisibilityRecord> {
    Ok(VisibilityRecord {
        namespace_id: NamespaceId(row.get(0)?),
        workflow_id: row.get(1)?,
        run_id: row.get(2)?,
        workflow_type: row.get(3)?,
        task_queue: row.get(4)?,
        status: row.get(5)?,
        start_time_ns: row.get(6)?,
        execution_time_ns: row.get(7)?,
        close_time_ns: row.get(8)?,
        history_length: row.get(9)?,
        history_size_bytes: row.get(10)?,
        state_transition_count: row.get(11)?,
        parent_workflow_id: row.get(12)?,
        parent_run_id: row.get(13)?,
        root_workflow_id: row.get(14)?,
        root_run_id: row.get(15)?,
        namespace_division: row.get(16)?,
        memo: row.get(17)?,
        search_attributes: row.get(18)?,
        version: row.get(19)?,
    })
}

/// A `WHERE` clause and its parameters, each placeholder numbered as it is added.
struct Clause {
    sql: String,
    params: Vec<Value>,
}

impl Clause {
    /// Bind `value` and return its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    /// `AND column op value`.
    fn and(&mut self, column_op: &str, value: Value) {
        let p = self.bind(value);
        self.sql.push_str(&format!(" AND {column_op} {p}"));
    }
}

/// The clause for a namespace and filter.
fn where_clause(namespace_id: &NamespaceId, f: &VisibilityFilter) -> Clause {
    let mut c = Clause {
        sql: String::new(),
        params: Vec::new(),
    };
    let ns = c.bind(Value::Text(namespace_id.0.clone()));
    c.sql = format!("namespace_id = {ns}");
    if let Some(t) = &f.workflow_type {
        c.and("workflow_type =", Value::Text(t.clone()));
    }
    if let Some(w) = &f.workflow_id {
        c.and("workflow_id =", Value::Text(w.clone()));
    }
    if let Some(v) = f.start_time_min_ns {
        c.and("start_time_ns >=", Value::Integer(v));
    }
    if let Some(v) = f.start_time_max_ns {
        c.and("start_time_ns <=", Value::Integer(v));
    }
    if let Some(v) = f.close_time_min_ns {
        c.and("close_time_ns >=", Value::Integer(v));
    }
    if let Some(v) = f.close_time_max_ns {
        c.and("close_time_ns <=", Value::Integer(v));
    }
    if let Some(statuses) = &f.statuses {
        let list: Vec<String> = statuses
            .iter()
            .map(|s| c.bind(Value::Integer(i64::from(*s))))
            .collect();
        if list.is_empty() {
            c.sql.push_str(" AND 0");
        } else {
            c.sql
                .push_str(&format!(" AND status IN ({})", list.join(", ")));
        }
    }
    if f.no_namespace_division {
        c.sql.push_str(" AND namespace_division IS NULL");
    }
    c
}

#[async_trait]
impl VisibilityStore for SqliteStore {
    async fn list_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
        after: Option<&VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<VisibilityRecord>, StoreError> {
        let mut clause = where_clause(namespace_id, filter);
        if let Some(cursor) = after {
            // Strictly after the cursor in (close_sort DESC, start DESC, run_id ASC).
            let close = clause.bind(Value::Integer(cursor.close_sort()));
            let start = clause.bind(Value::Integer(cursor.start_time_ns));
            let run = clause.bind(Value::Text(cursor.run_id.clone()));
            clause.sql.push_str(&format!(
                " AND (close_sort < {close} OR (close_sort = {close} AND (start_time_ns < {start} \
                 OR (start_time_ns = {start} AND run_id > {run}))))"
            ));
        }
        let limit = clause.bind(Value::Integer(sql_limit(limit)));
        let Clause {
            sql: clause,
            params,
        } = clause;
        let sql = format!("SELECT {COLUMNS} FROM visibility WHERE {clause} {ORDER} LIMIT {limit}");
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(params), read_record)?
                .collect()
        })
        .await
    }

    async fn count_visibility(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<u64, StoreError> {
        let Clause {
            sql: clause,
            params,
        } = where_clause(namespace_id, filter);
        let sql = format!("SELECT COUNT(*) FROM visibility WHERE {clause}");
        let n: i64 = self
            .read(move |c| {
                c.prepare_cached(&sql)?
                    .query_row(params_from_iter(params), |r| r.get(0))
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count_visibility_by_status(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError> {
        let Clause {
            sql: clause,
            params,
        } = where_clause(namespace_id, filter);
        let sql = format!(
            "SELECT status, COUNT(*) FROM visibility WHERE {clause} GROUP BY status ORDER BY status"
        );
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(params), |r| {
                    let n: i64 = r.get(1)?;
                    Ok((r.get(0)?, u64::try_from(n).unwrap_or(0)))
                })?
                .collect()
        })
        .await
    }

    async fn get_visibility(
        &self,
        key: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError> {
        let key = key.clone();
        let sql = format!(
            "SELECT {COLUMNS} FROM visibility
             WHERE namespace_id = ?1 AND workflow_id = ?2 AND run_id = ?3"
        );
        self.read(move |c| {
            c.prepare_cached(&sql)?
                .query_row(
                    (key.namespace_id.as_str(), &key.workflow_id, &key.run_id),
                    read_record,
                )
                .optional()
        })
        .await
    }

    async fn delete_visibility(&self, key: &ExecutionKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| delete(c, &key)).await
    }
}
