//! Cluster membership rows with a TTL: each node re-writes its row as a heartbeat, so a
//! node that stops heartbeating disappears by itself. Gossip seeds from the live rows.

use std::time::Duration;

use async_trait::async_trait;
use temper_persistence::{MemberRow, MembershipStore, StoreError};

use crate::CassandraStore;
use crate::rows::{RowView, Values, bigint, int, text};
use crate::statements::Stmt;

/// All members live in this partition (clusters have tens of nodes, not thousands).
const PARTITION: i32 = 0;

/// One live member of the cluster, as it last announced itself (the store-independent row
/// of [`MembershipStore`]).
pub type ClusterMember = MemberRow;

pub(crate) fn upsert_values(member: &ClusterMember, ttl: Duration) -> Result<Values, StoreError> {
    // Whole seconds, rounded up: a TTL must never be shorter than asked.
    let ttl_secs = i32::try_from(ttl.as_millis().div_ceil(1000).max(1))
        .map_err(|_| StoreError::Invalid(format!("membership TTL {ttl:?} is too long")))?;
    Ok(vec![
        int(PARTITION),
        text(&member.role),
        text(&member.host_id),
        text(&member.rpc_address),
        bigint(member.session_start_ms),
        bigint(member.last_heartbeat_ms),
        int(ttl_secs),
    ])
}

pub(crate) fn select_members(role: Option<&str>) -> (Stmt, Values) {
    match role {
        Some(role) => (Stmt::SelectMembersOfRole, vec![int(PARTITION), text(role)]),
        None => (Stmt::SelectMembers, vec![int(PARTITION)]),
    }
}

pub(crate) fn delete_member(role: &str, host_id: &str) -> (Stmt, Values) {
    (
        Stmt::DeleteMember,
        vec![int(PARTITION), text(role), text(host_id)],
    )
}

pub(crate) fn decode_member(row: &RowView<'_>) -> Result<ClusterMember, StoreError> {
    Ok(ClusterMember {
        role: row.text("role")?.to_owned(),
        host_id: row.text("host_id")?.to_owned(),
        rpc_address: row.text("rpc_address")?.to_owned(),
        session_start_ms: row.bigint("session_start_ms")?,
        last_heartbeat_ms: row.bigint("last_heartbeat_ms")?,
    })
}

impl CassandraStore {
    /// Write (or refresh) a member's row; it expires `ttl` after this write.
    pub async fn upsert_cluster_member(
        &self,
        member: &ClusterMember,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.execute(
            &format!("announcing cluster member {}", member.host_id),
            Stmt::UpsertMember,
            upsert_values(member, ttl)?,
        )
        .await
        .map(drop)
    }

    /// Live members, of one role or all.
    pub async fn list_cluster_members(
        &self,
        role: Option<&str>,
    ) -> Result<Vec<ClusterMember>, StoreError> {
        let (stmt, values) = select_members(role);
        let rows = self
            .select_all("listing cluster members", stmt, values)
            .await?;
        rows.iter().map(|row| decode_member(&row)).collect()
    }

    /// Remove a member's row at once (graceful shutdown).
    pub async fn remove_cluster_member(&self, role: &str, host_id: &str) -> Result<(), StoreError> {
        let (stmt, values) = delete_member(role, host_id);
        self.execute(&format!("removing cluster member {host_id}"), stmt, values)
            .await
            .map(drop)
    }
}

#[async_trait]
impl MembershipStore for CassandraStore {
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError> {
        self.upsert_cluster_member(row, ttl).await
    }

    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        self.list_cluster_members(None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::row_from_binds;

    #[test]
    fn members_round_trip_and_carry_a_ttl() {
        let m = ClusterMember {
            role: "history".into(),
            host_id: "node-1".into(),
            rpc_address: "10.0.0.1:7234".into(),
            session_start_ms: 1,
            last_heartbeat_ms: 2,
        };
        let values = upsert_values(&m, Duration::from_secs(30)).expect("values");
        assert_eq!(values.last(), Some(&int(30)));
        let back = row_from_binds(
            &[
                "membership_partition",
                "role",
                "host_id",
                "rpc_address",
                "session_start_ms",
                "last_heartbeat_ms",
            ],
            &values[..6],
        );
        assert_eq!(
            decode_member(&back.first().expect("row")).expect("decode"),
            m
        );
        assert_eq!(
            upsert_values(&m, Duration::ZERO).expect("values").last(),
            Some(&int(1)),
            "a zero TTL would mean forever"
        );
        assert_eq!(
            upsert_values(&m, Duration::from_millis(1_500))
                .expect("values")
                .last(),
            Some(&int(2)),
            "a TTL is rounded up to whole seconds"
        );
        assert!(upsert_values(&m, Duration::from_secs(u64::MAX)).is_err());
    }
}
