//! Visibility is not on Cassandra yet: the commit leaves `ExecutionWrite::visibility` out,
//! and every read answers [`StoreError::Unsupported`] (the frontend's UNIMPLEMENTED), never
//! an empty list that would look like "no workflows".

use async_trait::async_trait;
use temper_persistence::{
    ExecutionKey, StatusCounts, StoreError, VisibilityCursor, VisibilityFilter, VisibilityRecord,
    VisibilityStore,
};
use temper_types::NamespaceId;

use crate::CassandraStore;

fn unsupported() -> StoreError {
    StoreError::Unsupported(
        "listing and counting workflows is not supported on Cassandra yet; use the SQLite store \
         for visibility"
            .into(),
    )
}

#[async_trait]
impl VisibilityStore for CassandraStore {
    async fn list_visibility(
        &self,
        _: &NamespaceId,
        _: &VisibilityFilter,
        _: Option<&VisibilityCursor>,
        _: usize,
    ) -> Result<Vec<VisibilityRecord>, StoreError> {
        Err(unsupported())
    }

    async fn count_visibility(
        &self,
        _: &NamespaceId,
        _: &VisibilityFilter,
    ) -> Result<u64, StoreError> {
        Err(unsupported())
    }

    async fn count_visibility_by_status(
        &self,
        _: &NamespaceId,
        _: &VisibilityFilter,
    ) -> Result<StatusCounts, StoreError> {
        Err(unsupported())
    }

    async fn get_visibility(
        &self,
        _: &ExecutionKey,
    ) -> Result<Option<VisibilityRecord>, StoreError> {
        Err(unsupported())
    }

    async fn delete_visibility(&self, _: &ExecutionKey) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_unsupported_not_empty() {
        assert!(matches!(unsupported(), StoreError::Unsupported(m) if m.contains("Cassandra")));
    }
}
