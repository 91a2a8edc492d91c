//! The history read rule: for a node id the highest transaction id wins, and nodes at or
//! beyond the committed `next_event_id` do not exist, so orphans of failed commits are
//! never read.

use temper_persistence::HistoryNode;
use temper_proto::temporal::api::enums::v1::EventType;
use temper_proto::temporal::api::history::v1::History;

use super::*;
use crate::shard::read_history;
use crate::writer::branch_of;

fn event(event_id: i64, t: EventType, task_id: i64) -> HistoryEvent {
    HistoryEvent {
        event_id,
        event_type: t as i32,
        task_id,
        ..Default::default()
    }
}

fn node(node_id: i64, txn_id: i64, events: Vec<HistoryEvent>) -> HistoryNode {
    HistoryNode {
        node_id,
        txn_id,
        events: History { events }.encode_to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_nodes_are_ignored_and_later_writes_win() {
    let store = store();
    let p = store.inner().clone();
    let first = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let run = start(&first, "wf", Duration::ZERO).await;
    let key = key("wf", &run);
    let committed = api_history(&first, "wf", &run).await;
    assert_eq!(ids_of(&committed), vec![1, 2]);
    first.shutdown().await;
    drop(first);

    // Orphans of failed commits: an older version of node 1, and a node past the end.
    let branch = branch_of(&key);
    let orphans = [
        node(
            1,
            1,
            vec![event(1, EventType::WorkflowExecutionSignaled, 1)],
        ),
        node(
            3,
            2,
            vec![event(3, EventType::WorkflowExecutionSignaled, 2)],
        ),
    ];
    for n in &orphans {
        p.history
            .append_history_node(&branch, n)
            .await
            .expect("append orphan");
    }
    assert_eq!(read_history(&p, &key, 3).await.expect("read"), committed);

    // A new owner with a cold cache reads the same, and its next write replaces the orphan
    // of node 3 (its transaction id is higher).
    let second = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    assert_eq!(api_history(&second, "wf", &run).await, committed);
    signal(&second, "wf", "sig").await.expect("signal");
    let history = read_history(&p, &key, 4).await.expect("read");
    assert_eq!(ids_of(&history), vec![1, 2, 3]);
    assert_eq!(history[..2], committed[..]);
    assert!(history[2].task_id > 2, "the new write, not the orphan");
    assert_eq!(api_history(&second, "wf", &run).await, history);
}

fn ids_of(events: &[HistoryEvent]) -> Vec<i64> {
    events.iter().map(|e| e.event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_losing_version_on_the_next_read_page_is_skipped() {
    let store = store();
    let p = store.inner().clone();
    let key = key("wf", "run");
    let branch = branch_of(&key);
    // Nodes 1..=1001, one event each. Node 1000 has three versions: the first read page
    // (1000 nodes) ends with its winner, the two losers open the second page.
    let t = EventType::WorkflowExecutionSignaled;
    for id in 1..=1001 {
        p.history
            .append_history_node(&branch, &node(id, 10, vec![event(id, t, 10)]))
            .await
            .expect("append");
    }
    p.history
        .append_history_node(&branch, &node(1000, 20, vec![event(1000, t, 20)]))
        .await
        .expect("append winner");
    p.history
        .append_history_node(&branch, &node(1000, 5, vec![event(1000, t, 5)]))
        .await
        .expect("append loser");

    let history = read_history(&p, &key, 1002).await.expect("read");
    assert_eq!(ids_of(&history), (1..=1001).collect::<Vec<_>>());
    assert_eq!(history[999].task_id, 20, "the highest transaction id wins");
    assert!(history.iter().all(|e| e.task_id != 5));
}
