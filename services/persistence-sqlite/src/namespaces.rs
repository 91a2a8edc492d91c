//! Namespaces, unique by id and by name.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row};
use temper_persistence::{NamespaceRecord, NamespaceStore, StoreError};
use temper_types::NamespaceId;

use crate::{SqliteStore, sql_limit};

/// The record's columns, in [`namespace`]'s order.
macro_rules! columns {
    () => {
        "id, name, detail, notification_version"
    };
}

fn namespace(row: &Row<'_>) -> rusqlite::Result<NamespaceRecord> {
    Ok(NamespaceRecord {
        id: NamespaceId(row.get(0)?),
        name: row.get(1)?,
        detail: row.get(2)?,
        notification_version: row.get(3)?,
    })
}

/// The id of the namespace called `name`, if any.
fn id_of_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT id FROM namespaces WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()
}

#[async_trait]
impl NamespaceStore for SqliteStore {
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            if id_of_name(&tx, &record.name)?.is_some() {
                return Ok(Err(StoreError::AlreadyExists(format!(
                    "a namespace named {:?} exists already",
                    record.name
                ))));
            }
            let id_taken = tx
                .prepare_cached("SELECT 1 FROM namespaces WHERE id = ?1")?
                .query_row([record.id.as_str()], |_| Ok(()))
                .optional()?
                .is_some();
            if id_taken {
                return Ok(Err(StoreError::AlreadyExists(format!(
                    "a namespace with id {} exists already",
                    record.id
                ))));
            }
            tx.prepare_cached(concat!(
                "INSERT INTO namespaces (",
                columns!(),
                ") VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute((
                record.id.as_str(),
                &record.name,
                &record.detail,
                record.notification_version,
            ))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM namespaces WHERE name = ?1"
            ))?
            .query_row([&name], namespace)
            .optional()
        })
        .await
    }

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM namespaces WHERE id = ?1"
            ))?
            .query_row([id.as_str()], namespace)
            .optional()
        })
        .await
    }

    async fn update_namespace(
        &self,
        expected_version: i64,
        record: &NamespaceRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            let actual: Option<i64> = tx
                .prepare_cached("SELECT notification_version FROM namespaces WHERE id = ?1")?
                .query_row([record.id.as_str()], |row| row.get(0))
                .optional()?;
            match actual {
                None => {
                    return Ok(Err(StoreError::NotFound(format!("namespace id {}", record.id))));
                }
                Some(actual) if actual != expected_version => {
                    return Ok(Err(StoreError::ConditionFailed(format!(
                        "namespace {} is at notification version {actual}, not {expected_version}; \
                         reload it and retry",
                        record.id
                    ))));
                }
                Some(_) => {}
            }
            // A rename must not take another namespace's name.
            if let Some(owner) = id_of_name(&tx, &record.name)?
                && owner != record.id.as_str()
            {
                return Ok(Err(StoreError::AlreadyExists(format!(
                    "a namespace named {:?} exists already",
                    record.name
                ))));
            }
            tx.prepare_cached(
                "UPDATE namespaces SET name = ?2, detail = ?3, notification_version = ?4 WHERE id = ?1",
            )?
            .execute((record.id.as_str(), &record.name, &record.detail, record.notification_version))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let after_name = after_name.map(str::to_owned);
        self.read(move |c| {
            let limit = sql_limit(limit);
            match &after_name {
                Some(after) => {
                    let mut stmt = c.prepare_cached(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM namespaces WHERE name > ?1 ORDER BY name LIMIT ?2"
                    ))?;
                    stmt.query_map((after, limit), namespace)?.collect()
                }
                None => {
                    let mut stmt = c.prepare_cached(concat!(
                        "SELECT ",
                        columns!(),
                        " FROM namespaces ORDER BY name LIMIT ?1"
                    ))?;
                    stmt.query_map([limit], namespace)?.collect()
                }
            }
        })
        .await
    }
}
