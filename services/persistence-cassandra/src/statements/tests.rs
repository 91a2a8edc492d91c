//! Every statement checked against the schema without a server: the tables and columns it
//! names exist, every bind marker gets a value of the column's CQL type (what the server
//! would check when the prepared statement executes), the partition key is bound (token-aware
//! routing), and exactly the conditional statements are marked as lightweight transactions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use scylla::value::CqlValue;
use temper_persistence::{
    BranchId, ClusterMetadata, CurrentExecution, CurrentRunCondition, CurrentRunWrite,
    ExecutionKey, ExecutionWrite, HistoryNode, NamespaceRecord, NexusEndpointRecord, QueueTask,
    ShardRecord, TaskCategory, TaskKey, TaskQueueKey, TaskRecord,
};
use temper_types::{NamespaceId, RangeId, ShardId};

use super::*;
use crate::executions::{self, RowKey};
use crate::rows::Values;
use crate::schema::{MIGRATIONS, split_statements};
use crate::task_queues::LeaseStep;
use crate::{commit, history, membership, namespaces, nexus_endpoints, task_queues};

/// A table of the schema: column types and the partition key.
#[derive(Debug, Default)]
struct Table {
    columns: HashMap<String, String>,
    partition_key: Vec<String>,
    clustering: Vec<String>,
}

fn tokens(cql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = cql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '[' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '[' || c == ']' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(word);
        } else if c == '\'' {
            let mut s = String::from("'");
            chars.next();
            for c in chars.by_ref() {
                s.push(c);
                if c == '\'' {
                    break;
                }
            }
            out.push(s);
        } else if matches!(c, '<' | '>' | '!') {
            chars.next();
            let mut op = c.to_string();
            if chars.peek() == Some(&'=') {
                op.push('=');
                chars.next();
            }
            out.push(op);
        } else {
            out.push(c.to_string());
            chars.next();
        }
    }
    out
}

/// The items of a parenthesized list starting at `tokens[open]` (`(`), split at top-level
/// commas, and the index after the closing `)`.
fn group(tokens: &[String], open: usize) -> (Vec<Vec<String>>, usize) {
    assert_eq!(tokens[open], "(", "a group starts with '('");
    let mut items = vec![Vec::new()];
    let mut depth = 0;
    let mut i = open + 1;
    loop {
        let t = &tokens[i];
        match t.as_str() {
            "(" | "{" => depth += 1,
            ")" | "}" if depth > 0 => depth -= 1,
            ")" => return (items, i + 1),
            "," if depth == 0 => {
                items.push(Vec::new());
                i += 1;
                continue;
            }
            _ => {}
        }
        items.last_mut().expect("an item").push(t.clone());
        i += 1;
    }
}

fn schema() -> HashMap<String, Table> {
    let mut tables = HashMap::new();
    for migration in MIGRATIONS {
        for statement in split_statements(migration.cql).expect("the scripts parse") {
            let t = tokens(&statement);
            if !(t[0].eq_ignore_ascii_case("CREATE") && t[1].eq_ignore_ascii_case("TABLE")) {
                continue;
            }
            let name = t[5].clone();
            let (items, _) = group(&t, 6);
            let mut table = Table::default();
            for item in items {
                if item[0].eq_ignore_ascii_case("PRIMARY") {
                    let (key, _) = group(&item, 2);
                    table.partition_key = if key[0][0] == "(" {
                        let (pk, _) = group(&key[0], 0);
                        pk.into_iter().map(|c| c[0].clone()).collect()
                    } else {
                        vec![key[0][0].clone()]
                    };
                    table.clustering = key[1..].iter().map(|c| c[0].clone()).collect();
                } else {
                    table
                        .columns
                        .insert(item[0].clone(), item[1].to_lowercase());
                }
            }
            tables.insert(name, table);
        }
    }
    tables
}

/// What a statement touches: its table, the columns it reads, and the column each bind
/// marker stands for (`[limit]` and `[ttl]` for those clauses).
#[derive(Debug)]
struct Parsed {
    table: String,
    selected: Vec<String>,
    named: Vec<String>,
    binds: Vec<String>,
    /// The column lists of tuple relations, `(a, b) > (?, ?)`.
    tuples: Vec<Vec<String>>,
}

/// The statement with its table names unqualified, as in the schema file.
fn bare(stmt: Stmt) -> String {
    stmt.cql().replace("{ks}.", "")
}

fn parse(cql: &str) -> Parsed {
    let t = tokens(cql);
    let upper = |i: usize| t[i].to_ascii_uppercase();
    let table_at = (0..t.len())
        .find(|&i| matches!(upper(i).as_str(), "FROM" | "INTO"))
        .map(|i| i + 1)
        .unwrap_or(1);
    let table = t[table_at].clone();
    let mut selected = Vec::new();
    if upper(0) == "SELECT" {
        selected = t[1..table_at - 1]
            .iter()
            .filter(|c| *c != ",")
            .cloned()
            .collect();
    }
    let mut named = Vec::new();
    let mut binds = Vec::new();
    let mut tuples = Vec::new();
    let mut i = table_at + 1;
    if upper(0) == "INSERT" {
        let (columns, after) = group(&t, i);
        assert_eq!(upper(after), "VALUES", "{cql}");
        let (values, after) = group(&t, after + 1);
        assert_eq!(columns.len(), values.len(), "{cql}: columns and values");
        for (c, v) in columns.iter().zip(&values) {
            named.push(c[0].clone());
            if v[0] == "?" {
                binds.push(c[0].clone());
            }
        }
        i = after;
    }
    while i < t.len() {
        match t[i].as_str() {
            "?" => {
                let before = t[i - 1].to_ascii_uppercase();
                binds.push(match before.as_str() {
                    "LIMIT" => "[limit]".to_owned(),
                    "TTL" => "[ttl]".to_owned(),
                    "TIMESTAMP" => "[timestamp]".to_owned(),
                    "=" | "<" | ">" | "<=" | ">=" | "!=" => t[i - 2].clone(),
                    other => panic!("{cql}: a bind marker after {other:?}"),
                });
                i += 1;
            }
            "(" => {
                // A tuple comparison: (a, b) op (?, ?).
                let (lhs, after) = group(&t, i);
                let (rhs, end) = group(&t, after + 1);
                assert_eq!(lhs.len(), rhs.len(), "{cql}: tuple arity");
                tuples.push(lhs.iter().map(|c| c[0].clone()).collect());
                for (c, v) in lhs.iter().zip(&rhs) {
                    named.push(c[0].clone());
                    assert_eq!(v[0], "?", "{cql}: tuples compare with bind markers");
                    binds.push(c[0].clone());
                }
                i = end;
            }
            word if word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && t.get(i + 1).is_some_and(|n| {
                    matches!(n.as_str(), "=" | "<" | ">" | "<=" | ">=" | "!=")
                }) =>
            {
                named.push(word.to_owned());
                i += 1;
            }
            _ => i += 1,
        }
    }
    Parsed {
        table,
        selected,
        named,
        binds,
        tuples,
    }
}

fn cql_type(v: &CqlValue) -> &'static str {
    match v {
        CqlValue::Int(_) => "int",
        CqlValue::BigInt(_) => "bigint",
        CqlValue::Text(_) => "text",
        CqlValue::Blob(_) => "blob",
        CqlValue::Boolean(_) => "boolean",
        other => panic!("unexpected bind value {other:?}"),
    }
}

fn exec_key() -> ExecutionKey {
    ExecutionKey {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: "wf".into(),
        run_id: "run".into(),
    }
}

fn pointer() -> CurrentExecution {
    CurrentExecution {
        run_id: "run".into(),
        create_request_id: "req".into(),
        state: 2,
        status: 1,
        start_time_ms: 5,
    }
}

fn queue() -> TaskQueueKey {
    TaskQueueKey {
        namespace_id: NamespaceId("ns".into()),
        name: "q".into(),
        task_type: 1,
        partition: 0,
    }
}

fn namespace() -> NamespaceRecord {
    NamespaceRecord {
        id: NamespaceId("id".into()),
        name: "default".into(),
        detail: b"d".to_vec(),
        notification_version: 1,
    }
}

/// Values for every statement, from the same functions the store uses.
fn nexus_endpoint() -> NexusEndpointRecord {
    NexusEndpointRecord {
        id: "ep".into(),
        name: "orders".into(),
        version: 2,
        data: b"spec".to_vec(),
    }
}

fn samples() -> Vec<(Stmt, Values)> {
    let key = exec_key();
    let mut out = vec![
        executions::select_cluster_metadata(),
        executions::insert_cluster_metadata(&ClusterMetadata {
            cluster_name: "c".into(),
            num_shards: 4,
        })
        .expect("fits"),
        (Stmt::SelectShard, RowKey::shard_row(1).values()),
        executions::insert_shard(1, b"info"),
    ];
    out.push(executions::update_shard(
        1,
        RangeId(1),
        &ShardRecord {
            shard_id: ShardId(1),
            range_id: RangeId(2),
            info: b"i".to_vec(),
        },
    ));
    let create = ExecutionWrite {
        visibility: None,
        key: key.clone(),
        expected_version: None,
        new_version: 1,
        state: b"s".to_vec(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::MustNotExist,
            record: pointer(),
        }),
        tasks: TaskCategory::ALL
            .iter()
            .map(|&category| TaskRecord {
                category,
                key: TaskKey::immediate(1),
                data: b"t".to_vec(),
            })
            .collect(),
    };
    let mut other = exec_key();
    other.workflow_id = "wf2".into();
    let update = ExecutionWrite {
        visibility: None,
        key: other,
        expected_version: Some(1),
        new_version: 2,
        state: b"s".to_vec(),
        current: Some(CurrentRunWrite {
            condition: CurrentRunCondition::RunIdIs("run".into()),
            record: pointer(),
        }),
        tasks: vec![],
    };
    out.extend(commit::statements(1, RangeId(1), &[create, update]));
    out.extend(commit::delete_statements(1, RangeId(1), &key, true));
    out.push((Stmt::SelectExecution, RowKey::execution(1, &key).values()));
    out.push((Stmt::SelectCurrent, RowKey::current(1, "ns", "wf").values()));
    out.push((
        Stmt::SelectTasks,
        executions::select_tasks_values(1, TaskCategory::Timer, TaskKey::MIN, TaskKey::MAX, 10),
    ));
    out.push((
        Stmt::DeleteTask,
        RowKey::task(1, TaskCategory::Timer, TaskKey::MAX).values(),
    ));
    out.extend(executions::delete_tasks_before_statements(
        1,
        TaskCategory::Timer,
        TaskKey::MAX,
    ));

    let branch = BranchId {
        tree_id: "t".into(),
        branch_id: "b".into(),
    };
    out.push((
        Stmt::InsertHistoryNode,
        history::insert_values(
            &branch,
            &HistoryNode {
                node_id: 1,
                txn_id: 1,
                events: vec![1],
            },
        ),
    ));
    out.push(history::slice_statement(
        &branch,
        history::Slice::Nodes { from: 1, to: 9 },
        5,
    ));
    out.push(history::slice_statement(
        &branch,
        history::Slice::Versions {
            node: 1,
            below_txn: 9,
        },
        5,
    ));
    out.push((Stmt::DeleteHistoryBranch, history::branch_values(&branch)));

    let q = queue();
    out.push(task_queues::select_lease(&q));
    out.push(task_queues::lease_statement(&q, &LeaseStep::Create));
    out.push(task_queues::lease_statement(
        &q,
        &LeaseStep::Bump { range: 1, ack: 0 },
    ));
    out.push(task_queues::update_ack(&q, RangeId(1), 5));
    out.extend(task_queues::create_statements(
        &q,
        RangeId(1),
        &[QueueTask {
            task_id: 1,
            priority: QueueTask::DEFAULT_PRIORITY,
            data: b"x".to_vec(),
        }],
    ));
    out.push(task_queues::select_tasks(&q, 3, 0, 10));
    out.push(task_queues::delete_task(&q, 3, 1));
    out.push(task_queues::delete_tasks_through(&q, 3, 1));

    let ns = namespace();
    out.push(namespaces::select_by_name("default"));
    out.push(namespaces::list(None, 10));
    out.push(namespaces::list(Some("a"), 10));
    out.push((Stmt::InsertNamespace, namespaces::insert_values(&ns)));
    out.push(namespaces::update(0, &ns));
    out.extend(namespaces::rename_statements("old", 0, &ns));
    out.push(namespaces::select_id(&ns.id));
    out.push(namespaces::claim_id(&ns));
    out.push(namespaces::release_id(&ns));
    out.push(namespaces::point_id(&ns.id, "default"));

    let ep = nexus_endpoint();
    out.push(nexus_endpoints::select_endpoint(&ep.id));
    out.push(nexus_endpoints::select_name(&ep.name));
    out.push(nexus_endpoints::list());
    out.extend(nexus_endpoints::create_statements(&ep));
    out.extend(nexus_endpoints::update_statements("old", 1, &ep));
    out.extend(nexus_endpoints::delete_statements(&ep));

    let member = membership::ClusterMember {
        role: "history".into(),
        host_id: "h".into(),
        rpc_address: "a:1".into(),
        session_start_ms: 1,
        last_heartbeat_ms: 2,
    };
    out.push((
        Stmt::UpsertMember,
        membership::upsert_values(&member, std::time::Duration::from_secs(10)).expect("ttl"),
    ));
    out.push(membership::select_members(None));
    out.push(membership::select_members(Some("history")));
    out.push(membership::delete_member("history", "h"));
    out.extend(crate::visibility::statement_samples());
    out
}

#[test]
fn every_statement_has_sample_values() {
    let covered: BTreeSet<String> = samples().iter().map(|(s, _)| format!("{s:?}")).collect();
    let all: BTreeSet<String> = Stmt::ALL.iter().map(|s| format!("{s:?}")).collect();
    assert_eq!(covered, all, "add the missing statements to samples()");
    assert_eq!(
        Stmt::ALL
            .iter()
            .enumerate()
            .find(|(i, s)| **s as usize != *i),
        None,
        "Stmt::ALL indexes the prepared statements"
    );
}

#[test]
fn statements_match_the_schema_and_their_values_match_the_column_types() {
    let tables = schema();
    let mut checked = BTreeMap::new();
    for (stmt, values) in samples() {
        assert!(
            stmt.cql().contains("{ks}.") && !stmt.qualified("temper").contains('{'),
            "{stmt:?}: tables must be qualified with the keyspace: {}",
            stmt.cql()
        );
        let cql = &bare(stmt);
        let parsed = parse(cql);
        let table = tables
            .get(&parsed.table)
            .unwrap_or_else(|| panic!("{stmt:?}: no table {:?} in the schema", parsed.table));
        for column in parsed.selected.iter().chain(&parsed.named) {
            assert!(
                table.columns.contains_key(column),
                "{stmt:?}: {:?} has no column {column:?}",
                parsed.table
            );
        }
        assert_eq!(
            parsed.binds.len(),
            values.len(),
            "{stmt:?}: {} bind markers ({:?}) but {} values",
            parsed.binds.len(),
            parsed.binds,
            values.len()
        );
        for (column, value) in parsed.binds.iter().zip(&values) {
            let expected = match column.as_str() {
                "[limit]" | "[ttl]" => "int",
                "[timestamp]" => "bigint",
                c => table.columns[c].as_str(),
            };
            assert_eq!(
                cql_type(value),
                expected,
                "{stmt:?}: the value for {column} is {value:?}"
            );
        }
        for pk in &table.partition_key {
            assert!(
                parsed.binds.contains(pk),
                "{stmt:?}: partition key column {pk} is not bound (token-aware routing needs it)"
            );
        }
        checked.insert(format!("{stmt:?}"), parsed.binds.len());
    }
    assert_eq!(checked.len(), Stmt::ALL.len());
}

#[test]
fn exactly_the_conditional_statements_are_lightweight_transactions() {
    for &stmt in Stmt::ALL {
        let conditional = stmt.cql().contains(" IF ");
        assert_eq!(
            stmt.kind() == Kind::Lwt,
            conditional,
            "{stmt:?}: Kind::Lwt must match an IF clause"
        );
        if stmt.kind() != Kind::Lwt {
            assert!(!stmt.cql().contains("IF NOT EXISTS"), "{stmt:?}");
        }
    }
    // The list the README gives.
    let lwt: Vec<String> = lwt_statements().map(|s| format!("{s:?}")).collect();
    assert_eq!(
        lwt,
        [
            "InsertClusterMetadata",
            "InsertShard",
            "UpdateShard",
            "FenceShard",
            "InsertExecution",
            "UpdateExecution",
            "InsertCurrent",
            "UpdateCurrent",
            "DeleteCurrentIf",
            "InsertTaskQueue",
            "LeaseTaskQueue",
            "UpdateTaskQueueAck",
            "FenceTaskQueue",
            "InsertNamespace",
            "UpdateNamespace",
            "DeleteNamespaceIf",
            "InsertNamespaceId",
            "DeleteNamespaceIdIf",
            "InsertNexusEndpoint",
            "UpdateNexusEndpoint",
            "DeleteNexusEndpointIf",
            "InsertNexusEndpointName",
            "DeleteNexusEndpointNameIf",
        ]
    );
}

#[test]
fn conditional_batches_stay_in_one_table_and_one_partition() {
    // Cassandra and ScyllaDB refuse conditional batches over several tables or partitions.
    let tables = schema();
    let key = exec_key();
    let write = ExecutionWrite {
        visibility: None,
        key: key.clone(),
        expected_version: Some(1),
        new_version: 2,
        state: vec![],
        current: None,
        tasks: vec![TaskRecord {
            category: TaskCategory::Timer,
            key: TaskKey::immediate(3),
            data: vec![],
        }],
    };
    let batches = [
        commit::statements(7, RangeId(1), &[write]),
        commit::delete_statements(7, RangeId(1), &key, true),
        task_queues::create_statements(
            &queue(),
            RangeId(1),
            &[QueueTask {
                task_id: 1,
                priority: QueueTask::DEFAULT_PRIORITY,
                data: vec![],
            }],
        ),
        namespaces::rename_statements("old", 0, &namespace()),
        nexus_endpoints::create_statements(&nexus_endpoint()),
        nexus_endpoints::update_statements("old", 1, &nexus_endpoint()),
        nexus_endpoints::delete_statements(&nexus_endpoint()),
    ];
    for batch in batches {
        let first = parse(&bare(batch[0].0));
        let pk = &tables[&first.table].partition_key;
        let pk_values = |(stmt, values): &(Stmt, Values)| -> Vec<CqlValue> {
            let parsed = parse(&bare(*stmt));
            assert_eq!(parsed.table, first.table, "{stmt:?} is in another table");
            pk.iter()
                .map(|c| {
                    let i = parsed.binds.iter().position(|b| b == c).expect("bound");
                    values[i].clone()
                })
                .collect()
        };
        let partition = pk_values(&batch[0]);
        for entry in &batch {
            assert_eq!(
                pk_values(entry),
                partition,
                "{:?} is in another partition",
                entry.0
            );
        }
    }
}

#[test]
fn tuple_relations_are_portable_to_scylladb() {
    // ScyllaDB accepts multi-column relations only on a prefix of the clustering key
    // (scylladb#64), and tuple comparisons over columns of mixed clustering order differ
    // between servers (CASSANDRA-7281, scylladb#65): tuples must start at the first
    // clustering column, and tables with a DESC column are read with single-column slices.
    let tables = schema();
    let mut seen = 0;
    for &stmt in Stmt::ALL {
        let parsed = parse(&bare(stmt));
        let table = &tables[&parsed.table];
        for tuple in &parsed.tuples {
            seen += 1;
            assert_eq!(
                tuple[..],
                table.clustering[..tuple.len()],
                "{stmt:?}: a tuple relation must cover a clustering key prefix"
            );
            assert_ne!(
                parsed.table, "history_node",
                "{stmt:?}: history_node has a DESC column"
            );
        }
    }
    assert!(seen > 0, "SelectTasks uses tuple relations");
}

#[test]
fn the_statement_parser_understands_the_forms_we_use() {
    let p = parse("SELECT a, b FROM t WHERE k = ? AND (c, d) > (?, ?) AND (c, d) < (?, ?) LIMIT ?");
    assert_eq!(p.table, "t");
    assert_eq!(p.selected, ["a", "b"]);
    assert_eq!(p.binds, ["k", "c", "d", "c", "d", "[limit]"]);
    let p = parse("INSERT INTO t (k, v, w) VALUES (?, 0, ?) IF NOT EXISTS USING TTL ?");
    assert_eq!(p.binds, ["k", "w", "[ttl]"]);
    let p = parse("UPDATE t SET v = ?, w = ? WHERE k = ? IF v = ? AND w != ?");
    assert_eq!(p.binds, ["v", "w", "k", "v", "w"]);
}
