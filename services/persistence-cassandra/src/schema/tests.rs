//! Migration files, their order and parsing, the version check and the keyspace statement.

use super::*;

#[test]
fn migrations_ascend_from_one_without_gaps_and_match_their_files() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(
            m.version,
            i32::try_from(i + 1).expect("small"),
            "{}",
            m.file
        );
        assert!(
            m.file.starts_with(&format!("{:04}_", m.version)) && m.file.ends_with(".cql"),
            "{} must be named NNNN_name.cql after its version",
            m.file
        );
    }
    assert_eq!(
        LATEST_SCHEMA_VERSION,
        MIGRATIONS[MIGRATIONS.len() - 1].version
    );
    // Every file of schema/cassandra/ is listed, so none is forgotten.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/cassandra");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("schema/cassandra exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".cql"))
        .collect();
    files.sort();
    let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.file).collect();
    assert_eq!(files, listed);
}

#[test]
fn every_migration_statement_is_idempotent() {
    for m in MIGRATIONS {
        let statements = split_statements(m.cql).expect("parses");
        assert!(!statements.is_empty(), "{}", m.file);
        for s in statements {
            let upper = s.to_ascii_uppercase();
            assert!(
                upper.starts_with("CREATE TABLE IF NOT EXISTS")
                    || upper.starts_with("CREATE TYPE IF NOT EXISTS")
                    || upper.starts_with("CREATE INDEX IF NOT EXISTS"),
                "{}: not idempotent, so an interrupted migration could not be re-run: {s}",
                m.file
            );
            assert!(
                !upper.contains("KEYSPACE"),
                "{}: keyspaces are the runner's job",
                m.file
            );
        }
    }
    let first = split_statements(MIGRATIONS[0].cql).expect("parses");
    let tables: Vec<&str> = first
        .iter()
        .map(|s| s.split_whitespace().nth(5).expect("a table name"))
        .collect();
    assert_eq!(
        tables,
        [
            "cluster_metadata",
            "executions",
            "history_node",
            "task_queues",
            "namespaces",
            "namespaces_by_id",
            "cluster_membership"
        ]
    );
}

#[test]
fn pending_migrations_come_in_order_after_the_current_version() {
    assert_eq!(
        pending(0).map(|m| m.version).collect::<Vec<_>>(),
        (1..=LATEST_SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(pending(LATEST_SCHEMA_VERSION).count(), 0);
    assert_eq!(pending(LATEST_SCHEMA_VERSION + 5).count(), 0);
}

#[test]
fn servers_refuse_older_and_missing_schemas() {
    assert!(matches!(
        check_version("ks", None),
        Err(ConnectError::SchemaMissing { .. })
    ));
    let err = check_version("ks", Some(LATEST_SCHEMA_VERSION - 1)).expect_err("older");
    assert!(
        matches!(err, ConnectError::SchemaTooOld { found, expected, .. }
        if found == LATEST_SCHEMA_VERSION - 1 && expected == LATEST_SCHEMA_VERSION)
    );
    assert!(err.to_string().contains("temper schema migrate"), "{err}");
    assert!(!err.is_transient());
    check_version("ks", Some(LATEST_SCHEMA_VERSION)).expect("current");
    check_version("ks", Some(LATEST_SCHEMA_VERSION + 1)).expect("newer is additive");
}

#[test]
fn scripts_split_on_semicolons_outside_comments_and_strings() {
    let script = "-- a comment; with a semicolon\n\
        CREATE TABLE IF NOT EXISTS a (k int PRIMARY KEY); // trailing; comment\n\
        /* block; comment */ CREATE TABLE IF NOT EXISTS b (k text PRIMARY KEY)\n\
        WITH comment = 'it''s; fine';\n\
        \n  ;\n";
    assert_eq!(
        split_statements(script).expect("parses"),
        vec![
            "CREATE TABLE IF NOT EXISTS a (k int PRIMARY KEY)".to_owned(),
            "CREATE TABLE IF NOT EXISTS b (k text PRIMARY KEY)\nWITH comment = 'it''s; fine'"
                .to_owned(),
        ]
    );
    assert!(split_statements("CREATE TABLE x (k int PRIMARY KEY)").is_err());
    assert!(split_statements("SELECT 'open;").is_err());
    assert!(split_statements("/* open; ").is_err());
}

#[test]
fn keyspaces_are_created_with_the_requested_replication() {
    let simple = Replication::new(3, None).expect("valid");
    assert_eq!(
        create_keyspace_cql("temper", &simple, false),
        "CREATE KEYSPACE IF NOT EXISTS temper WITH replication = \
         {'class': 'SimpleStrategy', 'replication_factor': 3}"
    );
    let nts = Replication::new(3, Some("dc1")).expect("valid");
    assert_eq!(
        create_keyspace_cql("temper", &nts, true),
        "CREATE KEYSPACE IF NOT EXISTS temper WITH replication = \
         {'class': 'NetworkTopologyStrategy', 'dc1': 3} AND tablets = {'enabled': false}"
    );
    assert_eq!(
        Replication::new(1, Some("it's")).expect("valid").cql_map(),
        "{'class': 'NetworkTopologyStrategy', 'it''s': 1}"
    );
    assert_eq!(
        Replication::new(1, Some("  ")).expect("valid"),
        Replication::Simple { factor: 1 }
    );
    assert!(Replication::new(0, None).is_err());
}
