//! History nodes: order, paging, bounds, the orphan rule, branches.

use crate::history::winning_nodes;
use crate::{BranchId, HistoryNode, Persistence};

fn branch(name: &str) -> BranchId {
    BranchId {
        tree_id: format!("tree-{name}"),
        branch_id: format!("branch-{name}"),
    }
}

fn node(node_id: i64, txn_id: i64) -> HistoryNode {
    HistoryNode {
        node_id,
        txn_id,
        events: format!("events {node_id}@{txn_id}").into_bytes(),
    }
}

fn ids(nodes: &[HistoryNode]) -> Vec<(i64, i64)> {
    nodes.iter().map(|n| (n.node_id, n.txn_id)).collect()
}

async fn append(p: &Persistence, b: &BranchId, nodes: &[HistoryNode]) {
    for n in nodes {
        p.history
            .append_history_node(b, n)
            .await
            .expect("append_history_node");
    }
}

async fn read(
    p: &Persistence,
    b: &BranchId,
    min: i64,
    max: i64,
    after: Option<(i64, i64)>,
    limit: usize,
) -> Vec<HistoryNode> {
    p.history
        .read_history_nodes(b, min, max, after, limit)
        .await
        .expect("read_history_nodes")
}

/// Nodes come back by node id ascending, txn id descending; pages continue after `after`.
pub async fn case_history_order_and_paging(p: &Persistence) {
    let b = branch("a");
    append(
        p,
        &b,
        &[
            node(5, 50),
            node(1, 10),
            node(3, 20),
            node(3, 35),
            node(7, 70),
            node(3, 30),
        ],
    )
    .await;

    let all = read(p, &b, 1, i64::MAX, None, 100).await;
    assert_eq!(
        ids(&all),
        vec![(1, 10), (3, 35), (3, 30), (3, 20), (5, 50), (7, 70)]
    );
    assert_eq!(all[1], node(3, 35), "events come back as written");

    // Paging through, two at a time, including a page break inside node 3's versions.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = read(p, &b, 1, i64::MAX, after, 2).await;
        assert!(page.len() <= 2, "limit is respected");
        let Some(last) = page.last() else { break };
        after = Some((last.node_id, last.txn_id));
        pages.push(ids(&page));
    }
    assert_eq!(
        pages,
        vec![
            vec![(1, 10), (3, 35)],
            vec![(3, 30), (3, 20)],
            vec![(5, 50), (7, 70)],
        ]
    );

    // min is inclusive, max exclusive.
    assert_eq!(
        ids(&read(p, &b, 3, 7, None, 100).await),
        vec![(3, 35), (3, 30), (3, 20), (5, 50)]
    );
    assert_eq!(ids(&read(p, &b, 4, 5, None, 100).await), vec![]);
    assert_eq!(ids(&read(p, &b, 7, 8, None, 100).await), vec![(7, 70)]);
    // `after` and the bounds together.
    assert_eq!(
        ids(&read(p, &b, 3, 7, Some((3, 30)), 100).await),
        vec![(3, 20), (5, 50)]
    );

    // Writing the same (node, txn) again replaces it.
    let mut rewritten = node(5, 50);
    rewritten.events = b"rewritten".to_vec();
    append(p, &b, std::slice::from_ref(&rewritten)).await;
    let five = read(p, &b, 5, 6, None, 100).await;
    assert_eq!(five, vec![rewritten]);
}

/// Orphans from failed commits lose to the highest txn id, even across a page boundary.
pub async fn case_history_orphans_across_pages(p: &Persistence) {
    let b = branch("orphans");
    // Node 2 was first written by txn 3 whose commit failed, then again by txn 5; node 4
    // likewise by txns 4 and 6. Read two at a time, each node's losing version falls at
    // the start of the next page.
    append(
        p,
        &b,
        &[
            node(1, 1),
            node(2, 3),
            node(2, 5),
            node(4, 4),
            node(4, 6),
            node(6, 7),
        ],
    )
    .await;

    let mut won = Vec::new();
    let mut after = None;
    let mut last_node_id = None;
    let mut pages = 0;
    loop {
        let page = read(p, &b, 1, 100, after, 2).await;
        let Some(last) = page.last() else { break };
        after = Some((last.node_id, last.txn_id));
        pages += 1;
        let page_won = winning_nodes(page, last_node_id);
        if let Some(n) = page_won.last() {
            last_node_id = Some(n.node_id);
        }
        won.extend(page_won);
    }
    assert_eq!(pages, 3);
    assert_eq!(ids(&won), vec![(1, 1), (2, 5), (4, 6), (6, 7)]);
    assert_eq!(won[1], node(2, 5));
}

/// Branches are separate, and deleting one removes all its nodes and nothing else.
pub async fn case_history_branches_and_delete(p: &Persistence) {
    let a = branch("a");
    let b = branch("b");
    // Same tree, another branch.
    let a_fork = BranchId {
        tree_id: a.tree_id.clone(),
        branch_id: "branch-fork".to_owned(),
    };
    append(p, &a, &[node(1, 1), node(3, 2)]).await;
    append(p, &b, &[node(1, 9)]).await;
    append(p, &a_fork, &[node(1, 1), node(3, 5)]).await;

    assert_eq!(
        ids(&read(p, &a, 1, 100, None, 100).await),
        vec![(1, 1), (3, 2)]
    );
    assert_eq!(ids(&read(p, &b, 1, 100, None, 100).await), vec![(1, 9)]);
    assert_eq!(
        ids(&read(p, &a_fork, 1, 100, None, 100).await),
        vec![(1, 1), (3, 5)]
    );

    p.history
        .delete_history_branch(&a)
        .await
        .expect("delete_history_branch");
    assert!(read(p, &a, 1, 100, None, 100).await.is_empty());
    assert_eq!(ids(&read(p, &b, 1, 100, None, 100).await), vec![(1, 9)]);
    assert_eq!(
        ids(&read(p, &a_fork, 1, 100, None, 100).await),
        vec![(1, 1), (3, 5)]
    );

    // Deleting again, or an unknown branch, is fine; a deleted branch can be written anew.
    p.history
        .delete_history_branch(&a)
        .await
        .expect("delete twice");
    append(p, &a, &[node(1, 11)]).await;
    assert_eq!(ids(&read(p, &a, 1, 100, None, 100).await), vec![(1, 11)]);
}
