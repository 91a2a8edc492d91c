//! Nexus endpoints, unique by id and by name, each update a compare-and-set on the version.
//!
//! Everything lives in one partition of `nexus_endpoints` (see
//! `schema/cassandra/0003_nexus_endpoints.cql`): an endpoint row per id and a claim row per
//! name, naming the id that holds it. Because both kinds share the partition, every change
//! is ONE conditional batch: a creation claims the name and inserts the endpoint (both
//! `IF NOT EXISTS`); a rename claims the new name (`IF NOT EXISTS`), replaces the endpoint
//! (`IF version = ?`) and drops the old claim (`IF id = ?`); a delete drops the endpoint
//! (`IF version = ?`) and its claim. So a name is claimed exactly while an endpoint holds
//! it, and nothing is left half done by a failure between steps.
//!
//! When a batch is not applied, a read at the serial consistency of the rows involved says
//! why (the rows the server returns differ between Cassandra and ScyllaDB). A batch that
//! timed out is `OutcomeUnknown`, never retried blindly (as for namespaces).

use async_trait::async_trait;
use temper_persistence::{NexusEndpointRecord, NexusEndpointStore, StoreError};

use crate::CassandraStore;
use crate::rows::{ENCODING, RowView, Values, bigint, blob, int, text};
use crate::statements::Stmt;

/// All endpoints live in this partition of `nexus_endpoints`.
const PARTITION: i32 = 0;
/// `row_type` of an endpoint row (`row_key` is the id).
const ENDPOINT: i32 = 1;
/// `row_type` of a name claim (`row_key` is the name).
const NAME: i32 = 2;

/// How often a delete re-reads and tries again when the endpoint changed in between.
const DELETE_ATTEMPTS: usize = 5;

pub(crate) fn decode_endpoint(row: &RowView<'_>) -> Result<NexusEndpointRecord, StoreError> {
    Ok(NexusEndpointRecord {
        id: row.text("id")?.to_owned(),
        name: row.text("name")?.to_owned(),
        version: row.bigint("version")?,
        data: row.encoded_blob("data", "data_encoding")?,
    })
}

pub(crate) fn select_endpoint(id: &str) -> (Stmt, Values) {
    (
        Stmt::SelectNexusEndpointRow,
        vec![int(PARTITION), int(ENDPOINT), text(id)],
    )
}

pub(crate) fn select_name(name: &str) -> (Stmt, Values) {
    (
        Stmt::SelectNexusEndpointRow,
        vec![int(PARTITION), int(NAME), text(name)],
    )
}

pub(crate) fn list() -> (Stmt, Values) {
    (
        Stmt::ListNexusEndpoints,
        vec![int(PARTITION), int(ENDPOINT)],
    )
}

fn claim_name(record: &NexusEndpointRecord) -> (Stmt, Values) {
    (
        Stmt::InsertNexusEndpointName,
        vec![
            int(PARTITION),
            int(NAME),
            text(&record.name),
            text(&record.id),
        ],
    )
}

fn release_name(name: &str, id: &str) -> (Stmt, Values) {
    (
        Stmt::DeleteNexusEndpointNameIf,
        vec![int(PARTITION), int(NAME), text(name), text(id)],
    )
}

/// Claim the name and insert the endpoint.
pub(crate) fn create_statements(record: &NexusEndpointRecord) -> Vec<(Stmt, Values)> {
    vec![
        claim_name(record),
        (
            Stmt::InsertNexusEndpoint,
            vec![
                int(PARTITION),
                int(ENDPOINT),
                text(&record.id),
                text(&record.id),
                text(&record.name),
                bigint(record.version),
                blob(&record.data),
                text(ENCODING),
            ],
        ),
    ]
}

/// Replace the endpoint if it is at `expected_version`; on a rename (`old_name` differs)
/// also claim the new name and release the old one.
pub(crate) fn update_statements(
    old_name: &str,
    expected_version: i64,
    record: &NexusEndpointRecord,
) -> Vec<(Stmt, Values)> {
    let update = (
        Stmt::UpdateNexusEndpoint,
        vec![
            text(&record.name),
            bigint(record.version),
            blob(&record.data),
            text(ENCODING),
            int(PARTITION),
            int(ENDPOINT),
            text(&record.id),
            bigint(expected_version),
        ],
    );
    if old_name == record.name {
        return vec![update];
    }
    vec![
        claim_name(record),
        update,
        release_name(old_name, &record.id),
    ]
}

/// Drop the endpoint if it is at `version`, and its name claim.
pub(crate) fn delete_statements(current: &NexusEndpointRecord) -> Vec<(Stmt, Values)> {
    vec![
        (
            Stmt::DeleteNexusEndpointIf,
            vec![
                int(PARTITION),
                int(ENDPOINT),
                text(&current.id),
                bigint(current.version),
            ],
        ),
        release_name(&current.name, &current.id),
    ]
}

fn name_taken(name: &str) -> StoreError {
    StoreError::AlreadyExists(format!("a Nexus endpoint named {name:?} exists already"))
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("Nexus endpoint id {id}"))
}

impl CassandraStore {
    /// Endpoint `id` as the last completed lightweight transaction left it.
    async fn endpoint_serial(&self, id: &str) -> Result<Option<NexusEndpointRecord>, StoreError> {
        let (stmt, values) = select_endpoint(id);
        let rows = self
            .read_serial(&format!("reading Nexus endpoint {id}"), stmt, values)
            .await?;
        rows.first().map(|row| decode_endpoint(&row)).transpose()
    }

    /// The id holding `name`, read at the serial consistency.
    async fn name_holder_serial(&self, name: &str) -> Result<Option<String>, StoreError> {
        let (stmt, values) = select_name(name);
        let rows = self
            .read_serial(
                &format!("reading the claim on Nexus endpoint name {name:?}"),
                stmt,
                values,
            )
            .await?;
        match rows.first() {
            Some(row) => Ok(row.opt_text("id")?.map(str::to_owned)),
            None => Ok(None),
        }
    }

    /// Run one conditional batch; a single statement goes alone (a batch of one is the
    /// same transaction at a higher price).
    async fn conditional(
        &self,
        what: &str,
        mut statements: Vec<(Stmt, Values)>,
    ) -> Result<bool, StoreError> {
        let rows = if statements.len() == 1 {
            let (stmt, values) = statements.remove(0);
            self.execute(what, stmt, values).await?
        } else {
            self.batch(what, statements).await?
        };
        rows.applied()
    }
}

#[async_trait]
impl NexusEndpointStore for CassandraStore {
    async fn create_nexus_endpoint(&self, record: &NexusEndpointRecord) -> Result<(), StoreError> {
        let what = format!("creating Nexus endpoint {:?}", record.name);
        if self.conditional(&what, create_statements(record)).await? {
            return Ok(());
        }
        if self.endpoint_serial(&record.id).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "a Nexus endpoint with id {} exists already",
                record.id
            )));
        }
        if self.name_holder_serial(&record.name).await?.is_some() {
            return Err(name_taken(&record.name));
        }
        // Both were taken when the batch ran and are free now (deleted in between).
        Err(StoreError::ConditionFailed(format!(
            "creating Nexus endpoint {} raced with a delete; retry",
            record.id
        )))
    }

    async fn update_nexus_endpoint(
        &self,
        expected_version: i64,
        record: &NexusEndpointRecord,
    ) -> Result<(), StoreError> {
        let what = format!("updating Nexus endpoint {}", record.id);
        let Some(current) = self.endpoint_serial(&record.id).await? else {
            return Err(not_found(&record.id));
        };
        let stale = || {
            StoreError::ConditionFailed(format!(
                "Nexus endpoint {} is no longer at version {expected_version}; reload it and \
                 retry",
                record.id
            ))
        };
        if current.version != expected_version {
            return Err(stale());
        }
        let statements = update_statements(&current.name, expected_version, record);
        if self.conditional(&what, statements).await? {
            return Ok(());
        }
        // Why: the endpoint is gone or moved on (reported first, as the embedded store
        // checks the version first), or the new name is someone else's.
        match self.endpoint_serial(&record.id).await? {
            None => return Err(not_found(&record.id)),
            Some(now) if now.version != expected_version => return Err(stale()),
            Some(_) => {}
        }
        match self.name_holder_serial(&record.name).await? {
            Some(holder) if holder != record.id => Err(name_taken(&record.name)),
            _ => Err(stale()),
        }
    }

    async fn delete_nexus_endpoint(&self, id: &str) -> Result<(), StoreError> {
        let what = format!("deleting Nexus endpoint {id}");
        // The batch is conditional on the version read, so that the name claim dropped is
        // the one the endpoint holds; an update in between makes it read again.
        for _ in 0..DELETE_ATTEMPTS {
            let Some(current) = self.endpoint_serial(id).await? else {
                return Err(not_found(id));
            };
            if self.conditional(&what, delete_statements(&current)).await? {
                return Ok(());
            }
        }
        Err(StoreError::ConditionFailed(format!(
            "Nexus endpoint {id} changed {DELETE_ATTEMPTS} times while it was being deleted; \
             retry"
        )))
    }

    async fn get_nexus_endpoint(
        &self,
        id: &str,
    ) -> Result<Option<NexusEndpointRecord>, StoreError> {
        let (stmt, values) = select_endpoint(id);
        let rows = self
            .execute(&format!("reading Nexus endpoint {id}"), stmt, values)
            .await?;
        rows.first().map(|row| decode_endpoint(&row)).transpose()
    }

    async fn list_nexus_endpoints(&self) -> Result<Vec<NexusEndpointRecord>, StoreError> {
        let (stmt, values) = list();
        let rows = self
            .select_all("listing Nexus endpoints", stmt, values)
            .await?;
        let mut endpoints = rows
            .iter()
            .map(|row| decode_endpoint(&row))
            .collect::<Result<Vec<_>, _>>()?;
        // Clustered by id; names are unique, so this order is total.
        endpoints.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::row_from_binds;

    fn record(id: &str, name: &str, version: i64) -> NexusEndpointRecord {
        NexusEndpointRecord {
            id: id.into(),
            name: name.into(),
            version,
            data: format!("spec of {name}").into_bytes(),
        }
    }

    #[test]
    fn endpoints_round_trip() {
        let r = record("ep-1", "orders", 3);
        let (_, values) = &create_statements(&r)[1];
        let back = row_from_binds(
            &[
                "endpoints_partition",
                "row_type",
                "row_key",
                "id",
                "name",
                "version",
                "data",
                "data_encoding",
            ],
            values,
        );
        assert_eq!(
            decode_endpoint(&back.first().expect("row")).expect("decode"),
            r
        );
    }

    #[test]
    fn a_rename_claims_the_new_name_and_releases_the_old_one_in_the_same_batch() {
        let renamed = record("ep-1", "new-name", 2);
        let stmts: Vec<Stmt> = update_statements("old-name", 1, &renamed)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            stmts,
            [
                Stmt::InsertNexusEndpointName,
                Stmt::UpdateNexusEndpoint,
                Stmt::DeleteNexusEndpointNameIf
            ]
        );
        let (_, release) = &update_statements("old-name", 1, &renamed)[2];
        assert_eq!(
            release,
            &vec![int(0), int(NAME), text("old-name"), text("ep-1")]
        );
        // Without a rename the claims are left alone.
        let same = update_statements("new-name", 1, &renamed);
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].0, Stmt::UpdateNexusEndpoint);
    }
}
