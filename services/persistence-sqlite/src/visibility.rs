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
    VisibilityStore, close_sort, decode_keywords, encode_keywords,
};
use temper_types::NamespaceId;

use crate::{SqliteStore, sql_limit};

/// A record's columns, of alias `v`.
const COLUMNS: &str = "v.namespace_id, v.workflow_id, v.run_id, v.workflow_type, v.task_queue, \
     v.status, v.start_time_ns, v.execution_time_ns, v.close_time_ns, v.history_length, \
     v.history_size_bytes, v.state_transition_count, v.parent_workflow_id, v.parent_run_id, \
     v.root_workflow_id, v.root_run_id, v.namespace_division, v.memo, v.search_attributes, \
     v.version, v.keywords";

/// Write `r` unless the stored record of the run has the same or a higher version. An update
/// leaves the fields fixed at a run's start (type, task queue, start time, parent and root)
/// as they are, so the indexes on them are not rewritten.
pub(crate) fn upsert(conn: &Connection, r: &VisibilityRecord) -> rusqlite::Result<()> {
    // The run's keywords and close_sort as stored: its keyword entries change with them.
    let old: Option<(Option<Vec<u8>>, i64)> = conn
        .prepare_cached(
            "SELECT keywords, close_sort FROM visibility
             WHERE namespace_id = ?1 AND workflow_id = ?2 AND run_id = ?3",
        )?
        .query_row(
            (r.namespace_id.as_str(), &r.workflow_id, &r.run_id),
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let keywords = r.keywords.as_deref().map(encode_keywords);
    let changed = conn
        .prepare_cached(
            "INSERT INTO visibility (namespace_id, workflow_id, run_id, workflow_type, task_queue,
             status, start_time_ns, execution_time_ns, close_time_ns, close_sort, history_length,
             history_size_bytes, state_transition_count, parent_workflow_id, parent_run_id,
             root_workflow_id, root_run_id, namespace_division, memo, search_attributes, version,
             keywords)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21, ?22)
         ON CONFLICT (namespace_id, workflow_id, run_id) DO UPDATE SET
             status = excluded.status, execution_time_ns = excluded.execution_time_ns,
             close_time_ns = excluded.close_time_ns, close_sort = excluded.close_sort,
             history_length = excluded.history_length,
             history_size_bytes = excluded.history_size_bytes,
             state_transition_count = excluded.state_transition_count,
             namespace_division = excluded.namespace_division, memo = excluded.memo,
             search_attributes = excluded.search_attributes, version = excluded.version,
             keywords = excluded.keywords
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
            &keywords,
        ])?;
    let sort = close_sort(r.close_time_ns);
    if changed == 0 || old.as_ref() == Some(&(keywords.clone(), sort)) {
        return Ok(());
    }
    if old.is_some() {
        delete_keywords(conn, &r.key())?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO visibility_keywords (namespace_id, name, value, close_sort,
             start_time_ns, run_id, workflow_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (name, value) in r.keywords.iter().flatten() {
        insert.execute((
            r.namespace_id.as_str(),
            name,
            value,
            sort,
            r.start_time_ns,
            &r.run_id,
            &r.workflow_id,
        ))?;
    }
    Ok(())
}

fn delete_keywords(conn: &Connection, key: &ExecutionKey) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM visibility_keywords
         WHERE namespace_id = ?1 AND workflow_id = ?2 AND run_id = ?3",
    )?
    .execute((key.namespace_id.as_str(), &key.workflow_id, &key.run_id))?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, key: &ExecutionKey) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM visibility WHERE namespace_id = ?1 AND workflow_id = ?2 AND run_id = ?3",
    )?
    .execute((key.namespace_id.as_str(), &key.workflow_id, &key.run_id))?;
    delete_keywords(conn, key)
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
        keywords: row
            .get::<_, Option<Vec<u8>>>(20)?
            .map(|b| {
                decode_keywords(&b).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        20,
                        rusqlite::types::Type::Blob,
                        "the keywords column holds bytes temper did not write".into(),
                    )
                })
            })
            .transpose()?,
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

    /// `AND status IN (...)`, of alias `v`; an empty set matches nothing.
    fn and_status_in(&mut self, statuses: &[i32]) {
        self.and_in("v.status", statuses);
    }

    /// `AND column IN (...)`; an empty set matches nothing.
    fn and_in(&mut self, column: &str, statuses: &[i32]) {
        let list: Vec<String> = statuses
            .iter()
            .map(|s| self.bind(Value::Integer(i64::from(*s))))
            .collect();
        if list.is_empty() {
            self.sql.push_str(" AND 0");
        } else {
            self.sql
                .push_str(&format!(" AND {column} IN ({})", list.join(", ")));
        }
    }

    /// `AND column op value`.
    fn and(&mut self, column_op: &str, value: Value) {
        let p = self.bind(value);
        self.sql.push_str(&format!(" AND {column_op} {p}"));
    }
}

/// The `FROM` and `WHERE` of a query for a namespace and filter, and the alias whose sort
/// columns (`close_sort`, `start_time_ns`, `run_id`) order it. The record's columns are
/// always those of `v`.
///
/// An equality on one keyword drives the query from `visibility_keywords`, whose key holds
/// the default order: a page of a rare value reads a page of index entries, not the whole
/// namespace. Further keyword conditions are `IN` lookups. Keyword conditions are left out
/// when the namespace has `unindexed` runs (written before keywords were indexed), which
/// pass them: the caller checks every record against the whole query anyway.
struct Select {
    from: &'static str,
    clause: Clause,
    sort: &'static str,
}

const FROM_RUNS: &str = "visibility v";
const FROM_KEYWORD: &str = "visibility_keywords k CROSS JOIN visibility v \
     ON v.namespace_id = k.namespace_id AND v.workflow_id = k.workflow_id \
     AND v.run_id = k.run_id";

fn select(namespace_id: &NamespaceId, f: &VisibilityFilter, unindexed: bool) -> Select {
    let mut c = Clause {
        sql: String::new(),
        params: Vec::new(),
    };
    let ns = c.bind(Value::Text(namespace_id.0.clone()));
    c.sql = format!("v.namespace_id = {ns}");
    let keywords: &[(String, Vec<String>)] = if unindexed { &[] } else { &f.keywords };
    // One value per run and condition, so the join yields each run once.
    let driving = keywords.iter().position(|(_, values)| values.len() == 1);
    let (from, sort) = match driving {
        Some(i) => {
            let (name, values) = &keywords[i];
            let name = c.bind(Value::Text(name.clone()));
            let value = c.bind(Value::Text(values[0].clone()));
            c.sql.push_str(&format!(
                " AND k.namespace_id = {ns} AND k.name = {name} AND k.value = {value}"
            ));
            (FROM_KEYWORD, "k")
        }
        None => (FROM_RUNS, "v"),
    };
    if let Some(t) = &f.workflow_type {
        c.and("v.workflow_type =", Value::Text(t.clone()));
    }
    if let Some(w) = &f.workflow_id {
        c.and("v.workflow_id =", Value::Text(w.clone()));
    }
    if let Some(v) = f.start_time_min_ns {
        c.and("v.start_time_ns >=", Value::Integer(v));
    }
    if let Some(v) = f.start_time_max_ns {
        c.and("v.start_time_ns <=", Value::Integer(v));
    }
    if let Some(v) = f.close_time_min_ns {
        c.and("v.close_time_ns >=", Value::Integer(v));
    }
    if let Some(v) = f.close_time_max_ns {
        c.and("v.close_time_ns <=", Value::Integer(v));
    }
    if let Some(statuses) = &f.statuses {
        c.and_status_in(statuses);
    }
    if f.no_namespace_division {
        c.sql.push_str(" AND v.namespace_division IS NULL");
    }
    if let Some(d) = &f.namespace_division {
        // Served by the `visibility_divided` index.
        c.and("v.namespace_division =", Value::Text(d.clone()));
    }
    for (i, (name, values)) in keywords.iter().enumerate() {
        if Some(i) == driving {
            continue;
        }
        let name = c.bind(Value::Text(name.clone()));
        let values: Vec<String> = values
            .iter()
            .map(|v| c.bind(Value::Text(v.clone())))
            .collect();
        c.sql.push_str(&format!(
            " AND (v.workflow_id, v.run_id) IN (SELECT workflow_id, run_id \
             FROM visibility_keywords WHERE namespace_id = {ns} AND name = {name} \
             AND value IN ({}))",
            values.join(", ")
        ));
    }
    Select {
        from,
        clause: c,
        sort,
    }
}

/// Whether the namespace has runs whose keywords are not indexed.
fn has_unindexed(conn: &Connection, namespace_id: &NamespaceId) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM visibility WHERE namespace_id = ?1 AND keywords IS NULL)",
    )?
    .query_row([namespace_id.as_str()], |r| r.get(0))
}

/// The per-status counts of `visibility_counts` when they answer `filter` exactly: only the
/// namespace division's implicit condition and, optionally, a set of statuses.
fn counts_table_query(
    namespace_id: &NamespaceId,
    f: &VisibilityFilter,
) -> Option<(String, Vec<Value>)> {
    let only_statuses = VisibilityFilter {
        statuses: f.statuses.clone(),
        no_namespace_division: true,
        ..Default::default()
    };
    if *f != only_statuses {
        return None;
    }
    let mut c = Clause {
        sql: String::new(),
        params: Vec::new(),
    };
    let ns = c.bind(Value::Text(namespace_id.0.clone()));
    c.sql = format!("namespace_id = {ns} AND runs > 0");
    if let Some(statuses) = &f.statuses {
        c.and_in("status", statuses);
    }
    Some((
        format!(
            "SELECT status, runs FROM visibility_counts WHERE {} ORDER BY status",
            c.sql
        ),
        c.params,
    ))
}

impl SqliteStore {
    /// Write visibility records outside any run's commit, in one transaction, each guarded
    /// by version as a commit's write is. For benchmarks and tests that need a namespace
    /// with very many runs (`loadtest/visibility`); the server never calls it.
    pub async fn load_visibility(&self, records: Vec<VisibilityRecord>) -> Result<(), StoreError> {
        self.write(move |c| {
            let tx = c.savepoint()?;
            for r in &records {
                upsert(&tx, r)?;
            }
            tx.commit()
        })
        .await
    }
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
        let (namespace_id, filter, after) = (namespace_id.clone(), filter.clone(), after.cloned());
        self.read(move |c| {
            let unindexed = !filter.keywords.is_empty() && has_unindexed(c, &namespace_id)?;
            let Select {
                from,
                mut clause,
                sort,
            } = select(&namespace_id, &filter, unindexed);
            if let Some(cursor) = after {
                // Strictly after the cursor in (close_sort DESC, start DESC, run_id ASC).
                let close = clause.bind(Value::Integer(cursor.close_sort()));
                let start = clause.bind(Value::Integer(cursor.start_time_ns));
                let run = clause.bind(Value::Text(cursor.run_id.clone()));
                clause.sql.push_str(&format!(
                    " AND ({sort}.close_sort < {close} OR ({sort}.close_sort = {close} AND \
                     ({sort}.start_time_ns < {start} OR ({sort}.start_time_ns = {start} \
                     AND {sort}.run_id > {run}))))"
                ));
            }
            let limit = clause.bind(Value::Integer(sql_limit(limit)));
            let Clause {
                sql: clause,
                params,
            } = clause;
            let sql = format!(
                "SELECT {COLUMNS} FROM {from} WHERE {clause} ORDER BY {sort}.close_sort DESC, \
                 {sort}.start_time_ns DESC, {sort}.run_id ASC LIMIT {limit}"
            );
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
        let groups = self
            .count_visibility_by_status(namespace_id, filter)
            .await?;
        Ok(groups.iter().map(|(_, n)| n).sum())
    }

    async fn count_visibility_by_status(
        &self,
        namespace_id: &NamespaceId,
        filter: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError> {
        let (namespace_id, filter) = (namespace_id.clone(), filter.clone());
        self.read(move |c| {
            let (sql, params) = match counts_table_query(&namespace_id, &filter) {
                Some(q) => q,
                None => {
                    let unindexed = !filter.keywords.is_empty() && has_unindexed(c, &namespace_id)?;
                    let Select { from, clause, .. } = select(&namespace_id, &filter, unindexed);
                    (
                        format!(
                            "SELECT v.status, COUNT(*) FROM {from} WHERE {} \
                             GROUP BY v.status ORDER BY v.status",
                            clause.sql
                        ),
                        clause.params,
                    )
                }
            };
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
            "SELECT {COLUMNS} FROM visibility v
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

    fn filters_keywords(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use temper_persistence::{VisibilityFilter, VisibilityStore};
    use temper_types::NamespaceId;

    use crate::SqliteStore;
    use crate::schema::MIGRATIONS;

    /// A database at schema version 3 (visibility without keywords or counts) holding two
    /// runs of namespace `ns`: `old-open` and `old-closed`.
    fn version_3_database(path: &std::path::Path) {
        let mut conn = Connection::open(path).expect("open");
        let tx = conn.transaction().expect("tx");
        for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v <= 3) {
            tx.execute_batch(script).expect("script");
            tx.execute(
                "INSERT INTO schema_version (version, applied_at_ms) VALUES (?1, 0)",
                [version],
            )
            .expect("record version");
        }
        for (wf, status, close) in [("old-open", 1, None), ("old-closed", 2, Some(20_i64))] {
            tx.execute(
                "INSERT INTO visibility (namespace_id, workflow_id, run_id, workflow_type,
                     task_queue, status, start_time_ns, execution_time_ns, close_time_ns,
                     close_sort, history_length, history_size_bytes, state_transition_count,
                     root_workflow_id, root_run_id, memo, search_attributes, version)
                 VALUES ('ns', ?1, 'run', 't', 'q', ?2, 10, 10, ?3, ?4, 3, 3, 3, ?1, 'run',
                     x'', x'', 1)",
                rusqlite::params![wf, status, close, close.unwrap_or(i64::MAX)],
            )
            .expect("row");
        }
        tx.commit().expect("commit");
    }

    #[tokio::test]
    async fn a_version_3_database_gets_counts_and_keeps_unindexed_runs_listed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("v3.sqlite");
        version_3_database(&path);
        let store = SqliteStore::open(&path).expect("open and migrate");
        let ns = NamespaceId("ns".into());
        let visible_runs = VisibilityFilter {
            no_namespace_division: true,
            ..Default::default()
        };
        assert_eq!(
            store
                .count_visibility_by_status(&ns, &visible_runs)
                .await
                .expect("count"),
            vec![(1, 1), (2, 1)]
        );
        let old = store
            .get_visibility(&temper_persistence::ExecutionKey {
                namespace_id: ns.clone(),
                workflow_id: "old-open".into(),
                run_id: "run".into(),
            })
            .await
            .expect("get")
            .expect("record");
        assert_eq!(old.keywords, None);
        // Runs from before keywords were indexed pass keyword conditions, to be checked by
        // the caller.
        let by_keyword = VisibilityFilter {
            keywords: vec![("Customer".into(), vec!["c-1".into()])],
            ..visible_runs.clone()
        };
        let got = store
            .list_visibility(&ns, &by_keyword, None, 10)
            .await
            .expect("list");
        assert_eq!(got.len(), 2);

        // Once rewritten, a run is indexed; with no unindexed runs left, the index answers.
        for mut r in got {
            r.version += 1;
            r.keywords = Some(if r.workflow_id == "old-open" {
                vec![("Customer".into(), "c-1".into())]
            } else {
                vec![]
            });
            store.load_visibility(vec![r]).await.expect("rewrite");
        }
        let got = store
            .list_visibility(&ns, &by_keyword, None, 10)
            .await
            .expect("list");
        let ids: Vec<_> = got.iter().map(|r| r.workflow_id.as_str()).collect();
        assert_eq!(ids, ["old-open"]);
    }
}
