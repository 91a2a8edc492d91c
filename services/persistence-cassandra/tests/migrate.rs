//! `temper schema migrate` brings a keyspace of schema version 1 (before visibility and
//! Nexus endpoints) up to the newest version, on a real cluster
//! (`TEMPER_CASSANDRA_CONTACT_POINTS`, as the conformance suite; without it the test fails
//! saying so).

mod common;

use scylla::client::session_builder::SessionBuilder;
use temper_persistence_cassandra::schema;
use temper_persistence_cassandra::{CassandraStore, LATEST_SCHEMA_VERSION};

#[tokio::test]
async fn a_version_1_keyspace_migrates_to_the_newest_version() {
    let config = common::fresh_keyspace("temper_migrate").await;
    let ks = config.keyspace.clone();

    // Turn it back into what version 1 made: no visibility or Nexus endpoint tables, version
    // 1 recorded.
    let session = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .build()
        .await
        .expect("session");
    for table in [
        "visibility_runs",
        "visibility_open",
        "visibility_closed",
        "visibility_buckets",
        "nexus_endpoints",
    ] {
        session
            .query_unpaged(format!("DROP TABLE {ks}.{table}"), ())
            .await
            .expect("drop table");
    }
    session
        .query_unpaged(
            format!("DELETE FROM {ks}.schema_version WHERE version_partition = 0 AND version > 1"),
            (),
        )
        .await
        .expect("forget the versions after 1");
    let err = CassandraStore::connect(config.clone())
        .await
        .expect_err("a version 1 keyspace is refused");
    assert!(err.to_string().contains("migrate"), "{err}");

    let report = schema::migrate(config.clone()).await.expect("migrate");
    assert_eq!((report.from, report.to), (1, LATEST_SCHEMA_VERSION));
    assert_eq!(
        report.applied,
        (2..=LATEST_SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let again = schema::migrate(config.clone())
        .await
        .expect("migrate again");
    assert!(again.applied.is_empty());
    CassandraStore::connect(config.clone())
        .await
        .expect("the migrated keyspace is accepted");
    schema::drop_keyspace(config).await.expect("drop keyspace");
}
