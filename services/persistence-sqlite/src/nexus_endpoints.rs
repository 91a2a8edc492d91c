//! Nexus endpoints, unique by id and by name, each update a compare-and-set on the version.
//!
//! Every condition is checked inside the `BEGIN IMMEDIATE` transaction that writes, so
//! several processes sharing the file see one order of updates.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row};
use temper_persistence::{NexusEndpointRecord, NexusEndpointStore, StoreError};

use crate::SqliteStore;

/// The record's columns, in [`endpoint`]'s order.
macro_rules! columns {
    () => {
        "id, name, version, data"
    };
}

fn endpoint(row: &Row<'_>) -> rusqlite::Result<NexusEndpointRecord> {
    Ok(NexusEndpointRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        data: row.get(3)?,
    })
}

/// The id of the endpoint called `name`, if any.
fn id_of_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT id FROM nexus_endpoints WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()
}

/// The stored version of endpoint `id`, if any.
fn version_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT version FROM nexus_endpoints WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()
}

fn name_taken(name: &str) -> StoreError {
    StoreError::AlreadyExists(format!("a Nexus endpoint named {name:?} exists already"))
}

#[async_trait]
impl NexusEndpointStore for SqliteStore {
    async fn create_nexus_endpoint(&self, record: &NexusEndpointRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            if version_of(&tx, &record.id)?.is_some() {
                return Ok(Err(StoreError::AlreadyExists(format!(
                    "a Nexus endpoint with id {} exists already",
                    record.id
                ))));
            }
            if id_of_name(&tx, &record.name)?.is_some() {
                return Ok(Err(name_taken(&record.name)));
            }
            tx.prepare_cached(concat!(
                "INSERT INTO nexus_endpoints (",
                columns!(),
                ") VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute((&record.id, &record.name, record.version, &record.data))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn update_nexus_endpoint(
        &self,
        expected_version: i64,
        record: &NexusEndpointRecord,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |c| {
            let tx = c.savepoint()?;
            match version_of(&tx, &record.id)? {
                None => {
                    return Ok(Err(StoreError::NotFound(format!(
                        "Nexus endpoint id {}",
                        record.id
                    ))));
                }
                Some(actual) if actual != expected_version => {
                    return Ok(Err(StoreError::ConditionFailed(format!(
                        "Nexus endpoint {} is at version {actual}, not {expected_version}; \
                         reload it and retry",
                        record.id
                    ))));
                }
                Some(_) => {}
            }
            // A rename must not take another endpoint's name.
            if let Some(owner) = id_of_name(&tx, &record.name)?
                && owner != record.id
            {
                return Ok(Err(name_taken(&record.name)));
            }
            tx.prepare_cached(
                "UPDATE nexus_endpoints SET name = ?2, version = ?3, data = ?4 WHERE id = ?1",
            )?
            .execute((&record.id, &record.name, record.version, &record.data))?;
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    async fn delete_nexus_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM nexus_endpoints WHERE id = ?1")?
                .execute([&id])?;
            Ok(if deleted == 0 {
                Err(StoreError::NotFound(format!("Nexus endpoint id {id}")))
            } else {
                Ok(())
            })
        })
        .await?
    }

    async fn get_nexus_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<NexusEndpointRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM nexus_endpoints WHERE id = ?1"
            ))?
            .query_row([&id], endpoint)
            .optional()
        })
        .await
    }

    async fn list_nexus_endpoints(&self) -> Result<Vec<NexusEndpointRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM nexus_endpoints ORDER BY name"
            ))?;
            stmt.query_map([], endpoint)?.collect()
        })
        .await
    }
}
