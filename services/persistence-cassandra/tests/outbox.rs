//! The visibility outbox on a real cluster (`TEMPER_CASSANDRA_CONTACT_POINTS`): a record
//! that a commit put in the shard's outbox but whose visibility rows were never written (the
//! process stopped in between) is written when the shard is next acquired, and the outbox
//! row is removed.

mod common;

use prost::Message;
use scylla::client::session_builder::SessionBuilder;
use temper_persistence::{ExecutionKey, ShardRecord, VisibilityFilter};
use temper_persistence_cassandra::CassandraStore;
use temper_persistence_cassandra::schema;
use temper_proto::persistence::v1::VisibilityOutboxRecord;
use temper_types::{NamespaceId, RangeId, ShardId};

#[tokio::test]
async fn a_record_left_in_the_outbox_is_written_when_the_shard_is_acquired() {
    let config = common::fresh_keyspace("temper_outbox").await;
    let ks = config.keyspace.clone();
    let store = CassandraStore::connect(config.clone())
        .await
        .expect("connect");
    let p = store.clone().into_persistence();
    let shard = ShardId(3);
    let row = p
        .executions
        .get_or_create_shard(shard, b"")
        .await
        .expect("shard");

    // What a commit's batch leaves when the process dies right after it.
    let record = VisibilityOutboxRecord {
        namespace_id: "ns".into(),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        workflow_type: "T".into(),
        task_queue: "q".into(),
        status: 2,
        start_time_ns: 1_000,
        execution_time_ns: 1_000,
        close_time_ns: Some(2_000),
        root_workflow_id: "wf".into(),
        root_run_id: "run".into(),
        version: 4,
        ..Default::default()
    };
    let session = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .build()
        .await
        .expect("session");
    session
        .query_unpaged(
            format!(
                "INSERT INTO {ks}.executions (shard_id, row_type, namespace_id, workflow_id, \
                 run_id, fire_time_ms, task_id, data, data_encoding) \
                 VALUES (3, 6, '-', '-', '-', 5, 9, ?, 'proto3')"
            ),
            (record.encode_to_vec(),),
        )
        .await
        .expect("outbox row");
    let key = ExecutionKey {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: "wf".into(),
        run_id: "run".into(),
    };
    assert_eq!(p.visibility.get_visibility(&key).await.expect("get"), None);

    p.executions
        .update_shard(
            row.range_id,
            &ShardRecord {
                shard_id: shard,
                range_id: RangeId(row.range_id.0 + 1),
                info: Vec::new(),
            },
        )
        .await
        .expect("acquire");

    let got = p
        .visibility
        .get_visibility(&key)
        .await
        .expect("get")
        .expect("replayed");
    assert_eq!((got.version, got.close_time_ns), (4, Some(2_000)));
    let listed = p
        .visibility
        .list_visibility(
            &key.namespace_id,
            &VisibilityFilter {
                statuses: Some(vec![2]),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let left = session
        .query_unpaged(
            format!("SELECT task_id FROM {ks}.executions WHERE shard_id = 3 AND row_type = 6"),
            (),
        )
        .await
        .expect("read outbox")
        .into_rows_result()
        .expect("rows")
        .rows_num();
    assert_eq!(left, 0, "the replayed outbox row is removed");
    drop(store);
    schema::drop_keyspace(config).await.expect("drop keyspace");
}
