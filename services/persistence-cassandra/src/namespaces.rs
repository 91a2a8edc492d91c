//! Namespaces, unique by name and by id.
//!
//! The truth is the `namespaces` table: one partition ordered by name, so a name is claimed
//! with `INSERT ... IF NOT EXISTS` and a rename (insert the new name, delete the old one) is
//! one single-partition conditional batch. `namespaces_by_id` claims each id, also with
//! `IF NOT EXISTS`, and points at the name. A namespace exists when its name row exists; a
//! reader by id follows the pointer and checks that the name row carries the same id, so a
//! claim left by a creation that failed half way (or a pointer not yet moved by a rename)
//! never shows a namespace that is not there.

use async_trait::async_trait;
use temper_persistence::{NamespaceRecord, NamespaceStore, StoreError};
use temper_types::NamespaceId;

use crate::CassandraStore;
use crate::rows::{ENCODING, RowView, Values, bigint, blob, int, limit, text};
use crate::statements::Stmt;

/// All namespaces live in this partition of `namespaces`.
const PARTITION: i32 = 0;

pub(crate) fn decode_namespace(row: &RowView<'_>) -> Result<NamespaceRecord, StoreError> {
    Ok(NamespaceRecord {
        id: NamespaceId(row.text("id")?.to_owned()),
        name: row.text("name")?.to_owned(),
        detail: row.encoded_blob("detail", "detail_encoding")?,
        notification_version: row.bigint("notification_version")?,
    })
}

pub(crate) fn insert_values(record: &NamespaceRecord) -> Values {
    vec![
        int(PARTITION),
        text(&record.name),
        text(record.id.as_str()),
        blob(&record.detail),
        text(ENCODING),
        bigint(record.notification_version),
    ]
}

pub(crate) fn select_by_name(name: &str) -> (Stmt, Values) {
    (
        Stmt::SelectNamespaceByName,
        vec![int(PARTITION), text(name)],
    )
}

/// Namespaces ordered by name, after `after` if given.
pub(crate) fn list(after: Option<&str>, max: usize) -> (Stmt, Values) {
    match after {
        Some(after) => (
            Stmt::ListNamespacesAfter,
            vec![int(PARTITION), text(after), limit(max)],
        ),
        None => (Stmt::ListNamespaces, vec![int(PARTITION), limit(max)]),
    }
}

/// Replace detail and version if the name row is still this namespace at `expected`.
pub(crate) fn update(expected_version: i64, record: &NamespaceRecord) -> (Stmt, Values) {
    (
        Stmt::UpdateNamespace,
        vec![
            blob(&record.detail),
            text(ENCODING),
            bigint(record.notification_version),
            int(PARTITION),
            text(&record.name),
            text(record.id.as_str()),
            bigint(expected_version),
        ],
    )
}

pub(crate) fn select_id(id: &NamespaceId) -> (Stmt, Values) {
    (Stmt::SelectNamespaceIdName, vec![text(id.as_str())])
}

/// Claim the id: `IF NOT EXISTS`.
pub(crate) fn claim_id(record: &NamespaceRecord) -> (Stmt, Values) {
    (
        Stmt::InsertNamespaceId,
        vec![text(record.id.as_str()), text(&record.name)],
    )
}

/// Give the id back, only if the claim is still ours.
pub(crate) fn release_id(record: &NamespaceRecord) -> (Stmt, Values) {
    (
        Stmt::DeleteNamespaceIdIf,
        vec![text(record.id.as_str()), text(&record.name)],
    )
}

pub(crate) fn point_id(id: &NamespaceId, name: &str) -> (Stmt, Values) {
    (
        Stmt::UpdateNamespaceIdName,
        vec![text(name), text(id.as_str())],
    )
}

/// The rename batch: claim the new name, delete the old one if it still is this namespace
/// at the expected version.
pub(crate) fn rename_statements(
    old_name: &str,
    expected_version: i64,
    record: &NamespaceRecord,
) -> Vec<(Stmt, Values)> {
    vec![
        (Stmt::InsertNamespace, insert_values(record)),
        (
            Stmt::DeleteNamespaceIf,
            vec![
                int(PARTITION),
                text(old_name),
                text(record.id.as_str()),
                bigint(expected_version),
            ],
        ),
    ]
}

/// Why a rename batch was not applied, from its rows (matched by name). The old row's
/// condition is reported first, as the embedded store checks the version first.
pub(crate) fn rename_failure(
    old_name: &str,
    expected_version: i64,
    record: &NamespaceRecord,
    rows: &crate::rows::Rows,
) -> Result<StoreError, StoreError> {
    let mut old = None;
    let mut new = None;
    for row in rows.iter() {
        match row.opt_text("name")? {
            Some(n) if n == old_name => old = Some(row),
            Some(n) if n == record.name => new = Some(row),
            _ => {}
        }
    }
    let old_holds = match &old {
        Some(row) => {
            row.opt_text("id")? == Some(record.id.as_str())
                && row.opt_bigint("notification_version")? == Some(expected_version)
        }
        None => false,
    };
    if !old_holds {
        return Ok(StoreError::ConditionFailed(format!(
            "namespace {} changed since version {expected_version} was read; reload it and \
             retry",
            record.id
        )));
    }
    if new.is_some() {
        return Ok(StoreError::AlreadyExists(format!(
            "a namespace named {:?} exists already",
            record.name
        )));
    }
    Ok(StoreError::ConditionFailed(format!(
        "renaming namespace {} was not applied; reload it and retry",
        record.id
    )))
}

impl CassandraStore {
    async fn namespace_named(&self, name: &str) -> Result<Option<NamespaceRecord>, StoreError> {
        let (stmt, values) = select_by_name(name);
        let rows = self
            .execute(&format!("reading namespace {name:?}"), stmt, values)
            .await?;
        rows.first().map(|row| decode_namespace(&row)).transpose()
    }

    /// Look a namespace up by id in the whole partition: for a pointer that a rename has not
    /// moved yet (it failed after the rename itself). Repairs the pointer.
    async fn scan_for_id(&self, id: &NamespaceId) -> Result<Option<NamespaceRecord>, StoreError> {
        let (stmt, values) = list(None, usize::MAX);
        let rows = self.select_all("scanning namespaces", stmt, values).await?;
        for row in rows.iter() {
            if row.opt_text("id")? == Some(id.as_str()) {
                let found = decode_namespace(&row)?;
                self.point_id_at(id, &found.name).await?;
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn point_id_at(&self, id: &NamespaceId, name: &str) -> Result<(), StoreError> {
        let (stmt, values) = point_id(id, name);
        self.execute(
            &format!("pointing namespace id {id} at {name:?}"),
            stmt,
            values,
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl NamespaceStore for CassandraStore {
    async fn create_namespace(&self, record: &NamespaceRecord) -> Result<(), StoreError> {
        let what = format!("creating namespace {:?}", record.name);
        let id = record.id.as_str();
        let (stmt, values) = claim_id(record);
        let rows = self.execute(&what, stmt, values).await?;
        if !rows.applied()? {
            return Err(StoreError::AlreadyExists(format!(
                "a namespace with id {id} exists already"
            )));
        }
        let rows = self
            .execute(&what, Stmt::InsertNamespace, insert_values(record))
            .await?;
        if rows.applied()? {
            return Ok(());
        }
        // The name is taken: give the id back (only our own claim). If this fails the claim
        // stays, harmless: readers by id check the name row's id.
        let (stmt, values) = release_id(record);
        if let Err(e) = self.execute(&what, stmt, values).await {
            tracing::warn!(error = %e, namespace_id = id, "could not release a namespace id claim");
        }
        Err(StoreError::AlreadyExists(format!(
            "a namespace named {:?} exists already",
            record.name
        )))
    }

    async fn get_namespace_by_name(
        &self,
        name: &str,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        self.namespace_named(name).await
    }

    async fn get_namespace_by_id(
        &self,
        id: &NamespaceId,
    ) -> Result<Option<NamespaceRecord>, StoreError> {
        let (stmt, values) = select_id(id);
        let rows = self
            .execute(&format!("reading namespace id {id}"), stmt, values)
            .await?;
        let Some(name) = rows
            .first()
            .map(|row| row.opt_text("name").map(|n| n.map(str::to_owned)))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        match self.namespace_named(&name).await? {
            Some(found) if found.id == *id => Ok(Some(found)),
            // A claim without a namespace (a creation that lost its name) or a pointer a
            // rename has not moved yet.
            _ => self.scan_for_id(id).await,
        }
    }

    async fn update_namespace(
        &self,
        expected_version: i64,
        record: &NamespaceRecord,
    ) -> Result<(), StoreError> {
        let what = format!("updating namespace {}", record.id);
        let Some(current) = self.get_namespace_by_id(&record.id).await? else {
            return Err(StoreError::NotFound(format!("namespace id {}", record.id)));
        };
        if current.name == record.name {
            let (stmt, values) = update(expected_version, record);
            let rows = self.execute(&what, stmt, values).await?;
            if rows.applied()? {
                return Ok(());
            }
            return Err(StoreError::ConditionFailed(format!(
                "namespace {} is no longer at notification version {expected_version}; \
                 reload it and retry",
                record.id
            )));
        }
        let rows = self
            .batch(
                &what,
                rename_statements(&current.name, expected_version, record),
            )
            .await?;
        if !rows.applied()? {
            return Err(rename_failure(
                &current.name,
                expected_version,
                record,
                &rows,
            )?);
        }
        // The rename is done; a pointer left behind is found (and repaired) by readers.
        if let Err(e) = self.point_id_at(&record.id, &record.name).await {
            tracing::warn!(error = %e, namespace_id = %record.id, "renamed, but could not move the id pointer yet");
        }
        Ok(())
    }

    async fn list_namespaces(
        &self,
        after_name: Option<&str>,
        max: usize,
    ) -> Result<Vec<NamespaceRecord>, StoreError> {
        let (stmt, values) = list(after_name, max);
        let rows = self
            .select_paged("listing namespaces", stmt, values, max)
            .await?;
        rows.iter().map(|row| decode_namespace(&row)).collect()
    }
}

#[cfg(test)]
mod tests {
    use scylla::value::CqlValue;

    use super::*;
    use crate::rows::APPLIED;
    use crate::rows::testing::{row_from_binds, rows};

    fn record(id: &str, name: &str, version: i64) -> NamespaceRecord {
        NamespaceRecord {
            id: NamespaceId(id.into()),
            name: name.into(),
            detail: format!("detail of {name}").into_bytes(),
            notification_version: version,
        }
    }

    #[test]
    fn namespaces_round_trip() {
        let r = record("id-1", "default", 3);
        let back = row_from_binds(
            &[
                "namespaces_partition",
                "name",
                "id",
                "detail",
                "detail_encoding",
                "notification_version",
            ],
            &insert_values(&r),
        );
        assert_eq!(
            decode_namespace(&back.first().expect("row")).expect("decode"),
            r
        );
    }

    fn ns_row(name: &str, id: &str, version: i64) -> Vec<(&'static str, CqlValue)> {
        vec![
            (APPLIED, CqlValue::Boolean(false)),
            ("namespaces_partition", int(0)),
            ("name", text(name)),
            ("id", text(id)),
            ("notification_version", bigint(version)),
        ]
    }

    fn result(rs: &[Vec<(&'static str, CqlValue)>]) -> crate::rows::Rows {
        let refs: Vec<&[(&str, CqlValue)]> = rs.iter().map(Vec::as_slice).collect();
        rows(
            &[
                APPLIED,
                "namespaces_partition",
                "name",
                "detail",
                "detail_encoding",
                "id",
                "notification_version",
            ],
            &refs,
        )
    }

    #[test]
    fn rename_is_one_conditional_batch_and_its_failures_are_told_apart() {
        let renamed = record("id-1", "new-name", 2);
        let stmts = rename_statements("old-name", 1, &renamed);
        assert_eq!(stmts[0].0, Stmt::InsertNamespace);
        assert_eq!(stmts[1].0, Stmt::DeleteNamespaceIf);
        assert_eq!(
            stmts[1].1,
            vec![int(0), text("old-name"), text("id-1"), bigint(1)]
        );

        // The new name belongs to someone else.
        let taken = result(&[ns_row("new-name", "id-9", 0), ns_row("old-name", "id-1", 1)]);
        assert!(matches!(
            rename_failure("old-name", 1, &renamed, &taken).expect("decodable"),
            StoreError::AlreadyExists(_)
        ));
        // Our namespace moved on (stale version), whatever the new name's state.
        let stale = result(&[ns_row("new-name", "id-9", 0), ns_row("old-name", "id-1", 2)]);
        assert!(matches!(
            rename_failure("old-name", 1, &renamed, &stale).expect("decodable"),
            StoreError::ConditionFailed(_)
        ));
        // Our old name is gone (renamed concurrently).
        let gone = result(&[]);
        assert!(matches!(
            rename_failure("old-name", 1, &renamed, &gone).expect("decodable"),
            StoreError::ConditionFailed(_)
        ));
    }
}
