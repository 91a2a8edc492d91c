//! The reading rule for history nodes, shared by every backend's callers.
//!
//! Events are appended before the mutable-state commit, so a failed commit leaves orphan
//! nodes. For a node id, the version with the highest transaction id wins; events past the
//! committed `next_event_id` are ignored by the caller's bound.

use crate::HistoryNode;

/// Keeps, from nodes ordered by `(node_id ASC, txn_id DESC)`, the winning version of each
/// node id. `last_node_id` is the node id of the last node taken on a previous page, so a
/// node's losing versions that spill onto the next page are skipped too.
pub fn winning_nodes(nodes: Vec<HistoryNode>, last_node_id: Option<i64>) -> Vec<HistoryNode> {
    let mut out: Vec<HistoryNode> = Vec::with_capacity(nodes.len());
    let mut last = last_node_id;
    for node in nodes {
        if Some(node.node_id) == last {
            continue;
        }
        last = Some(node.node_id);
        out.push(node);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(node_id: i64, txn_id: i64) -> HistoryNode {
        HistoryNode {
            node_id,
            txn_id,
            events: vec![txn_id as u8],
        }
    }

    #[test]
    fn highest_txn_wins_and_spill_over_is_skipped() {
        let nodes = vec![node(1, 10), node(3, 30), node(3, 20), node(5, 50)];
        let won = winning_nodes(nodes, None);
        assert_eq!(
            won.iter()
                .map(|n| (n.node_id, n.txn_id))
                .collect::<Vec<_>>(),
            vec![(1, 10), (3, 30), (5, 50)]
        );
        let next_page = vec![node(5, 40), node(7, 70)];
        let won = winning_nodes(next_page, Some(5));
        assert_eq!(won.len(), 1);
        assert_eq!(won[0].node_id, 7);
    }
}
