use temper_persistence::VisibilityRecord;
use temper_proto::temporal::api::common::v1::{Payload, SearchAttributes as SaPayloads};
use temper_types::NamespaceId;

use super::*;

fn attrs() -> SearchAttributes {
    SearchAttributes::system_and_predefined()
        .with_custom("CustomerId", ValueType::Keyword)
        .and_then(|a| a.with_custom("Tags", ValueType::KeywordList))
        .and_then(|a| a.with_custom("Amount", ValueType::Double))
        .and_then(|a| a.with_custom("Due", ValueType::Datetime))
        .expect("custom attributes")
}

fn json(v: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn record(status: i32, close: Option<i64>) -> VisibilityRecord {
    let sa = SaPayloads {
        indexed_fields: [
            ("CustomerId".to_owned(), json("\"c-1\"")),
            ("Tags".to_owned(), json("[\"red\",\"blue\"]")),
            ("Amount".to_owned(), json("2.5")),
            ("Due".to_owned(), json("\"2024-05-01T10:00:00Z\"")),
        ]
        .into(),
    };
    VisibilityRecord {
        namespace_id: NamespaceId("ns".into()),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        workflow_type: "Order".into(),
        task_queue: "q".into(),
        status,
        start_time_ns: 1_000_000_000,
        execution_time_ns: 1_000_000_000,
        close_time_ns: close,
        history_length: 5,
        history_size_bytes: 100,
        state_transition_count: 3,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: "wf".into(),
        root_run_id: "run".into(),
        namespace_division: None,
        memo: Vec::new(),
        search_attributes: sa.encode_to_vec(),
        keywords: Some(vec![
            ("CustomerId".into(), "c-1".into()),
            ("Due".into(), "2024-05-01T10:00:00Z".into()),
            ("Tags".into(), "blue".into()),
            ("Tags".into(), "red".into()),
        ]),
        version: 1,
    }
}

fn matches(q: &str, r: &VisibilityRecord) -> bool {
    let a = attrs();
    parse(q, &a)
        .expect("valid query")
        .matches(&Row::new(r.clone(), &a))
}

#[test]
fn rows_answer_system_and_custom_attributes() {
    let running = record(1, None);
    let done = record(2, Some(3_000_000_000));
    assert!(matches(
        "ExecutionStatus = 'Running' AND WorkflowType = 'Order'",
        &running
    ));
    assert!(!matches("ExecutionStatus = 'Running'", &done));
    assert!(matches("CloseTime IS NULL", &running));
    assert!(matches("ExecutionDuration = '2s'", &done));
    assert!(matches(
        "CustomerId = 'c-1' AND Tags = 'blue' AND Amount > 2",
        &running
    ));
    assert!(matches("Due < '2024-05-02T00:00:00Z'", &running));
    assert!(!matches("Tags = 'green'", &running));
    assert!(matches(
        "ParentWorkflowId IS NULL AND RootWorkflowId = 'wf'",
        &running
    ));
}

#[test]
fn simple_conjunctions_are_pushed_down_whole() {
    let a = attrs();
    let q = parse(
        "ExecutionStatus IN ('Completed', 'Failed') AND WorkflowType = 'Order' \
         AND StartTime > '1970-01-01T00:00:01Z' AND StartTime <= '1970-01-01T00:00:05Z'",
        &a,
    )
    .expect("query");
    let (f, covered) = store_filter(&q, true);
    assert!(covered);
    assert_eq!(f.statuses, Some(vec![2, 3]));
    assert_eq!(f.workflow_type.as_deref(), Some("Order"));
    assert_eq!(f.start_time_min_ns, Some(1_000_000_001));
    assert_eq!(f.start_time_max_ns, Some(5_000_000_000));
    assert!(f.no_namespace_division);

    let q = parse("WorkflowType = 'a' OR WorkflowType = 'b'", &a).expect("query");
    let (f, covered) = store_filter(&q, true);
    assert!(!covered);
    assert_eq!(f.workflow_type, None);
    assert!(f.no_namespace_division);

    let q = parse("CustomerId = 'x' AND ExecutionStatus = 'Running'", &a).expect("query");
    let (f, covered) = store_filter(&q, true);
    assert!(!covered);
    assert_eq!(f.statuses, Some(vec![1]));
}

#[test]
fn keyword_equality_narrows_stores_that_index_keywords() {
    let a = attrs();
    let q = parse(
        "CustomerId = 'x' AND Tags IN ('red', 'blue') AND WorkflowId = 'w' \
         AND CustomerId != 'y' AND Amount = 2.5",
        &a,
    )
    .expect("query");
    let (f, covered) = store_filter(&q, true);
    assert!(
        !covered,
        "keyword conditions are re-checked, never counted as covered"
    );
    assert_eq!(
        f.keywords,
        vec![
            ("CustomerId".to_owned(), vec!["x".to_owned()]),
            ("Tags".to_owned(), vec!["red".to_owned(), "blue".to_owned()]),
        ]
    );
    assert_eq!(f.workflow_id.as_deref(), Some("w"));
    // Not under OR or NOT, and never for a store without the index.
    let q = parse("CustomerId = 'x' OR Tags = 'red'", &a).expect("query");
    assert!(store_filter(&q, true).0.keywords.is_empty());
    let q = parse("CustomerId = 'x'", &a).expect("query");
    assert!(store_filter(&q, false).0.keywords.is_empty());
    // A record passes the narrowing exactly when it has one of the values.
    let r = record(2, Some(3_000_000_000));
    let q = parse("CustomerId = 'c-1' AND Tags = 'red'", &a).expect("query");
    assert!(store_filter(&q, true).0.matches(&r));
    let q = parse("Tags IN ('green', 'blue')", &a).expect("query");
    assert!(store_filter(&q, true).0.matches(&r));
    let q = parse("CustomerId = 'c-2'", &a).expect("query");
    assert!(!store_filter(&q, true).0.matches(&r));
}

#[test]
fn a_division_equality_goes_to_the_store() {
    let a = attrs();
    let q = parse(
        "TemporalNamespaceDivision = 'TemporalBatcher' AND ExecutionStatus = 'Running'",
        &a,
    )
    .expect("query");
    let (f, covered) = store_filter(&q, false);
    assert!(covered);
    assert_eq!(f.namespace_division.as_deref(), Some("TemporalBatcher"));
    assert!(
        !f.no_namespace_division,
        "a named division drops the implicit filter"
    );
    assert_eq!(f.statuses, Some(vec![1]));
    let mut r = record(1, None);
    assert!(!f.matches(&r));
    r.namespace_division = Some("TemporalBatcher".into());
    assert!(f.matches(&r));
    // Only a top-level equality narrows.
    let q = parse(
        "TemporalNamespaceDivision = 'a' OR TemporalNamespaceDivision = 'b'",
        &a,
    )
    .expect("query");
    let (f, covered) = store_filter(&q, false);
    assert!(!covered);
    assert_eq!(f.namespace_division, None);
}

#[test]
fn list_entries_carry_search_attribute_types() {
    let a = attrs();
    let info = Row::new(record(2, Some(3_000_000_000)), &a).info(&a);
    let sa = info.search_attributes.expect("attributes");
    assert_eq!(
        sa.indexed_fields["Tags"]
            .metadata
            .get("type")
            .map(Vec::as_slice),
        Some(b"KeywordList".as_slice())
    );
    assert_eq!(info.close_time.map(|t| t.seconds), Some(3));
    assert_eq!(info.execution_duration.map(|d| d.seconds), Some(2));
    assert!(info.memo.is_some());
}

#[test]
fn bad_queries_and_tokens_are_invalid_arguments() {
    let err = parse("Nope = 1", &attrs()).expect_err("unknown attribute");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid query: invalid expression: column name 'Nope' is not a valid search attribute"
    );
    let err = PageToken::decode_token(b"\xff\xff garbage").expect_err("garbage token");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[test]
fn page_sizes_follow_temporal() {
    assert_eq!(page_size(0), MAX_PAGE_SIZE);
    assert_eq!(page_size(-3), MAX_PAGE_SIZE);
    assert_eq!(page_size(10), 10);
    assert_eq!(page_size(5000), MAX_PAGE_SIZE);
}

#[test]
fn group_values_are_keyword_json() {
    let p = keyword_payload("Running");
    assert_eq!(p.data, b"\"Running\"");
    assert_eq!(
        p.metadata.get("type").map(Vec::as_slice),
        Some(b"Keyword".as_slice())
    );
}
