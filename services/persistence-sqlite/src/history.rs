//! History nodes, a partition per branch; readers apply the orphan rule themselves.

use async_trait::async_trait;
use rusqlite::Row;
use temper_persistence::{BranchId, HistoryNode, HistoryStore, StoreError};

use crate::{SqliteStore, sql_limit};

fn node(row: &Row<'_>) -> rusqlite::Result<HistoryNode> {
    Ok(HistoryNode {
        node_id: row.get(0)?,
        txn_id: row.get(1)?,
        events: row.get(2)?,
    })
}

/// Insert (or replace: a retried append writes the same node again) history nodes, in the
/// caller's transaction.
pub(crate) fn insert_nodes(
    c: &rusqlite::Connection,
    nodes: &[(BranchId, HistoryNode)],
) -> rusqlite::Result<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut stmt = c.prepare_cached(
        "INSERT OR REPLACE INTO history_node (tree_id, branch_id, node_id, txn_id, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (branch, node) in nodes {
        stmt.execute((
            &branch.tree_id,
            &branch.branch_id,
            node.node_id,
            node.txn_id,
            &node.events,
        ))?;
    }
    Ok(())
}

#[async_trait]
impl HistoryStore for SqliteStore {
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        let one = [(branch.clone(), node.clone())];
        self.write(move |c| insert_nodes(c, &one)).await
    }

    async fn append_history_nodes(
        &self,
        nodes: &[(BranchId, HistoryNode)],
    ) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let nodes = nodes.to_vec();
        // One transaction for the whole batch: a group commit's nodes cost one lock and one
        // WAL append instead of one each.
        self.write(move |c| {
            let tx = c.savepoint()?;
            insert_nodes(&tx, &nodes)?;
            tx.commit()
        })
        .await
    }

    async fn read_history_nodes(
        &self,
        branch: &BranchId,
        min_node_id: i64,
        max_node_id: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        let branch = branch.clone();
        self.read(move |c| match after {
            None => {
                let mut stmt = c.prepare_cached(
                    "SELECT node_id, txn_id, data FROM history_node
                     WHERE tree_id = ?1 AND branch_id = ?2 AND node_id >= ?3 AND node_id < ?4
                     ORDER BY node_id ASC, txn_id DESC
                     LIMIT ?5",
                )?;
                let rows = stmt.query_map(
                    (
                        &branch.tree_id,
                        &branch.branch_id,
                        min_node_id,
                        max_node_id,
                        sql_limit(limit),
                    ),
                    node,
                )?;
                rows.collect()
            }
            Some((after_node, after_txn)) => {
                // Next in (node_id ASC, txn_id DESC) order: a later node, or an older
                // version of the same node. The plain lower bound keeps the index seek.
                let mut stmt = c.prepare_cached(
                    "SELECT node_id, txn_id, data FROM history_node
                     WHERE tree_id = ?1 AND branch_id = ?2
                       AND node_id >= max(?3, ?5) AND node_id < ?4
                       AND (node_id > ?5 OR txn_id < ?6)
                     ORDER BY node_id ASC, txn_id DESC
                     LIMIT ?7",
                )?;
                let rows = stmt.query_map(
                    (
                        &branch.tree_id,
                        &branch.branch_id,
                        min_node_id,
                        max_node_id,
                        after_node,
                        after_txn,
                        sql_limit(limit),
                    ),
                    node,
                )?;
                rows.collect()
            }
        })
        .await
    }

    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError> {
        let branch = branch.clone();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM history_node WHERE tree_id = ?1 AND branch_id = ?2")?
                .execute((&branch.tree_id, &branch.branch_id))?;
            Ok(())
        })
        .await
    }
}
