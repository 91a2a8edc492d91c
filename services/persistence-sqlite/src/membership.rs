//! The membership table: a row per `(role, host_id)` with an expiry time; reads skip
//! expired rows and heartbeats delete them.

use std::time::Duration;

use async_trait::async_trait;
use temper_persistence::{MemberRow, MembershipStore, StoreError};

use crate::SqliteStore;

/// Wall-clock milliseconds since the epoch (expiry is a wall-clock notion: several
/// processes share the file).
fn now_ms() -> i64 {
    temper_types::wall_clock_millis()
}

#[async_trait]
impl MembershipStore for SqliteStore {
    async fn heartbeat_member(&self, row: &MemberRow, ttl: Duration) -> Result<(), StoreError> {
        let row = row.clone();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.write(move |c| {
            let now = now_ms();
            let tx = c.savepoint()?;
            tx.prepare_cached("DELETE FROM cluster_membership WHERE expires_at_ms <= ?1")?
                .execute([now])?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO cluster_membership (role, host_id, rpc_address, \
                 session_start_ms, last_heartbeat_ms, expires_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute((
                &row.role,
                &row.host_id,
                &row.rpc_address,
                row.session_start_ms,
                row.last_heartbeat_ms,
                now.saturating_add(ttl_ms),
            ))?;
            tx.commit()
        })
        .await
    }

    async fn live_members(&self) -> Result<Vec<MemberRow>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT host_id, role, rpc_address, session_start_ms, last_heartbeat_ms \
                 FROM cluster_membership WHERE expires_at_ms > ?1 ORDER BY role, host_id",
            )?
            .query_map([now_ms()], |row| {
                Ok(MemberRow {
                    host_id: row.get(0)?,
                    role: row.get(1)?,
                    rpc_address: row.get(2)?,
                    session_start_ms: row.get(3)?,
                    last_heartbeat_ms: row.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }
}
