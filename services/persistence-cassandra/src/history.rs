//! History nodes, a partition per branch, clustered by `node_id ASC, txn_id DESC`.
//!
//! Reading "after `(node, txn)`" in that order means: the older versions of `node`
//! (`node_id = node AND txn_id < txn`), then the later nodes (`node_id > node`). These are
//! two single-column slices; a tuple comparison over columns of mixed clustering order is
//! not portable across Cassandra and ScyllaDB.

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};
use temper_persistence::{BranchId, HistoryNode, HistoryStore, StoreError};

use crate::CassandraStore;
use crate::rows::{ENCODING, RowView, Values, bigint, blob, limit, text};
use crate::statements::Stmt;

/// Node writes in flight at once for one `append_history_nodes` call.
const APPEND_CONCURRENCY: usize = 16;

/// One slice of a read, in the order they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slice {
    /// `node_id = node AND txn_id < below_txn` (older versions of one node).
    Versions { node: i64, below_txn: i64 },
    /// `from <= node_id < to`.
    Nodes { from: i64, to: i64 },
}

/// The slices that read `min <= node_id < max` after `after`, in (node ASC, txn DESC)
/// order.
pub(crate) fn plan(min: i64, max: i64, after: Option<(i64, i64)>) -> Vec<Slice> {
    let mut out = Vec::new();
    match after {
        None => {
            if min < max {
                out.push(Slice::Nodes { from: min, to: max });
            }
        }
        Some((node, txn)) => {
            if node >= min && node < max {
                out.push(Slice::Versions {
                    node,
                    below_txn: txn,
                });
            }
            if let Some(next) = node.checked_add(1) {
                let from = next.max(min);
                if from < max {
                    out.push(Slice::Nodes { from, to: max });
                }
            }
        }
    }
    out
}

pub(crate) fn slice_statement(branch: &BranchId, slice: Slice, max_rows: usize) -> (Stmt, Values) {
    let mut values = vec![text(&branch.tree_id), text(&branch.branch_id)];
    let stmt = match slice {
        Slice::Versions { node, below_txn } => {
            values.extend([bigint(node), bigint(below_txn)]);
            Stmt::SelectHistoryNodeVersions
        }
        Slice::Nodes { from, to } => {
            values.extend([bigint(from), bigint(to)]);
            Stmt::SelectHistoryNodes
        }
    };
    values.push(limit(max_rows));
    (stmt, values)
}

/// The partition key of a branch.
pub(crate) fn branch_values(branch: &BranchId) -> Values {
    vec![text(&branch.tree_id), text(&branch.branch_id)]
}

pub(crate) fn insert_values(branch: &BranchId, node: &HistoryNode) -> Values {
    vec![
        text(&branch.tree_id),
        text(&branch.branch_id),
        bigint(node.node_id),
        bigint(node.txn_id),
        blob(&node.events),
        text(ENCODING),
    ]
}

pub(crate) fn decode_node(row: &RowView<'_>) -> Result<HistoryNode, StoreError> {
    Ok(HistoryNode {
        node_id: row.bigint("node_id")?,
        txn_id: row.bigint("txn_id")?,
        events: row.encoded_blob("data", "data_encoding")?,
    })
}

#[async_trait]
impl HistoryStore for CassandraStore {
    async fn append_history_node(
        &self,
        branch: &BranchId,
        node: &HistoryNode,
    ) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "appending history node {} of {}",
                node.node_id, branch.branch_id
            ),
            Stmt::InsertHistoryNode,
            insert_values(branch, node),
        )
        .await
        .map(drop)
    }

    async fn append_history_nodes(
        &self,
        nodes: &[(BranchId, HistoryNode)],
    ) -> Result<(), StoreError> {
        // Different branches are different partitions: write them side by side (a
        // multi-partition batch would only add a batch log round trip).
        let writes: Vec<_> = nodes
            .iter()
            .map(|(branch, node)| self.append_history_node(branch, node))
            .collect();
        stream::iter(writes)
            .buffer_unordered(APPEND_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    async fn read_history_nodes(
        &self,
        branch: &BranchId,
        min_node_id: i64,
        max_node_id: i64,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<HistoryNode>, StoreError> {
        let what = format!("reading history of {}", branch.branch_id);
        let mut out = Vec::new();
        for slice in plan(min_node_id, max_node_id, after) {
            let wanted = limit.saturating_sub(out.len());
            if wanted == 0 {
                break;
            }
            let (stmt, values) = slice_statement(branch, slice, wanted);
            let rows = self.select_paged(&what, stmt, values, wanted).await?;
            for row in rows.iter() {
                out.push(decode_node(&row)?);
            }
        }
        Ok(out)
    }

    async fn delete_history_branch(&self, branch: &BranchId) -> Result<(), StoreError> {
        self.execute(
            &format!("deleting history branch {}", branch.branch_id),
            Stmt::DeleteHistoryBranch,
            branch_values(branch),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::testing::row_from_binds;

    #[test]
    fn reads_after_a_node_take_its_older_versions_then_later_nodes() {
        assert_eq!(plan(1, 100, None), vec![Slice::Nodes { from: 1, to: 100 }]);
        assert_eq!(plan(5, 5, None), vec![], "an empty range reads nothing");
        assert_eq!(
            plan(1, 100, Some((3, 30))),
            vec![
                Slice::Versions {
                    node: 3,
                    below_txn: 30
                },
                Slice::Nodes { from: 4, to: 100 },
            ]
        );
        // `after` below the range: only nodes from `min` on.
        assert_eq!(
            plan(5, 100, Some((3, 30))),
            vec![Slice::Nodes { from: 5, to: 100 }]
        );
        // `after` at the last node of the range: only its older versions.
        assert_eq!(
            plan(1, 8, Some((7, 70))),
            vec![Slice::Versions {
                node: 7,
                below_txn: 70
            }]
        );
        assert_eq!(
            plan(1, i64::MAX, Some((i64::MAX, 1))),
            vec![],
            "nothing follows the largest node id"
        );
    }

    #[test]
    fn slices_bind_the_branch_bounds_and_limit() {
        let b = BranchId {
            tree_id: "t".into(),
            branch_id: "b".into(),
        };
        let (stmt, values) = slice_statement(
            &b,
            Slice::Versions {
                node: 3,
                below_txn: 30,
            },
            2,
        );
        assert_eq!(stmt, Stmt::SelectHistoryNodeVersions);
        assert_eq!(
            values,
            vec![text("t"), text("b"), bigint(3), bigint(30), limit(2)]
        );
        let (stmt, values) = slice_statement(&b, Slice::Nodes { from: 4, to: 9 }, 7);
        assert_eq!(stmt, Stmt::SelectHistoryNodes);
        assert_eq!(
            values,
            vec![text("t"), text("b"), bigint(4), bigint(9), limit(7)]
        );
    }

    #[test]
    fn nodes_round_trip() {
        let b = BranchId {
            tree_id: "t".into(),
            branch_id: "b".into(),
        };
        let node = HistoryNode {
            node_id: 5,
            txn_id: 1 << 20,
            events: vec![0, 1, 2, 255],
        };
        let values = insert_values(&b, &node);
        let back = row_from_binds(
            &[
                "tree_id",
                "branch_id",
                "node_id",
                "txn_id",
                "data",
                "data_encoding",
            ],
            &values,
        );
        assert_eq!(
            decode_node(&back.first().expect("row")).expect("decode"),
            node
        );
    }
}
