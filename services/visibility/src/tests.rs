//! End-to-end cases: query strings to their normalized form or Temporal's error text, cases
//! modelled on Temporal's converter tests (`common/persistence/visibility/store/query`), and a
//! property test that garbled input never panics.

use crate::{Query, QueryError, SearchAttributes, ValueType};

const DIV: &str = "TemporalNamespaceDivision IS NULL";

fn attrs() -> SearchAttributes {
    let mut sa = SearchAttributes::system_and_predefined();
    for (name, ty) in [
        ("CustomKeyword", ValueType::Keyword),
        ("CustomText", ValueType::Text),
        ("CustomInt", ValueType::Int),
        ("CustomDouble", ValueType::Double),
        ("CustomBool", ValueType::Bool),
        ("CustomDatetime", ValueType::Datetime),
        ("CustomKeywordList", ValueType::KeywordList),
    ] {
        sa.add_custom(name, ty).expect("free name");
    }
    sa
}

fn parse(q: &str) -> Result<Query, QueryError> {
    Query::parse(q, &attrs())
}

/// The normalized query, with the implicit division filter in front when it applies.
fn normalized(q: &str) -> String {
    match parse(q) {
        Ok(query) => query.to_string(),
        Err(e) => panic!("{q:?} should parse: {e}"),
    }
}

fn error(q: &str) -> String {
    match parse(q) {
        Ok(query) => panic!("{q:?} should fail, got {query}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_queries_normalize() {
    let cases: &[(&str, &str)] = &[
        ("", DIV),
        ("   ", DIV),
        ("WorkflowId = 'wid'", "WorkflowId = 'wid'"),
        ("WorkflowId = \"wid\"", "WorkflowId = 'wid'"),
        ("`WorkflowId` = 'wid'", "WorkflowId = 'wid'"),
        ("WorkflowId != 'a'", "WorkflowId != 'a'"),
        ("WorkflowId <> 'a'", "WorkflowId != 'a'"),
        (
            "WorkflowId='a'AND RunId='b'",
            "WorkflowId = 'a' AND RunId = 'b'",
        ),
    ];
    for (q, want) in cases {
        let want = if *want == DIV {
            DIV.to_owned()
        } else {
            format!("{DIV} AND {want}")
        };
        assert_eq!(normalized(q), want, "{q}");
    }
}

#[test]
fn operators_per_type() {
    let cases: &[(&str, &str)] = &[
        (
            "WorkflowType STARTS_WITH 'Foo'",
            "WorkflowType STARTS_WITH 'Foo'",
        ),
        (
            "WorkflowType NOT STARTS_WITH 'Foo'",
            "WorkflowType NOT STARTS_WITH 'Foo'",
        ),
        (
            "WorkflowType starts_with 'it''s'",
            "WorkflowType STARTS_WITH 'it''s'",
        ),
        (
            "WorkflowId > 'a' AND WorkflowId <= 'b'",
            "WorkflowId > 'a' AND WorkflowId <= 'b'",
        ),
        (
            "WorkflowId BETWEEN 'a' AND 'b'",
            "WorkflowId BETWEEN 'a' AND 'b'",
        ),
        (
            "WorkflowId NOT BETWEEN 'a' AND 'b'",
            "WorkflowId NOT BETWEEN 'a' AND 'b'",
        ),
        ("WorkflowId IN ('a', 'b')", "WorkflowId IN ('a', 'b')"),
        ("WorkflowId NOT IN ('a')", "WorkflowId NOT IN ('a')"),
        ("WorkflowId IS NULL", "WorkflowId IS NULL"),
        (
            "ParentWorkflowId is not null",
            "ParentWorkflowId IS NOT NULL",
        ),
        ("CustomKeywordList = 'x'", "CustomKeywordList = 'x'"),
        ("BuildIds IN ('a', 'b')", "BuildIds IN ('a', 'b')"),
        (
            "TemporalChangeVersion NOT IN ('v1')",
            "TemporalChangeVersion NOT IN ('v1')",
        ),
        ("CustomText = 'hello world'", "CustomText = 'hello world'"),
        ("CustomText != 'hello'", "CustomText != 'hello'"),
        ("HistoryLength >= 10", "HistoryLength >= 10"),
        ("HistoryLength > 1.5", "HistoryLength > 1.5"),
        (
            "HistoryLength BETWEEN 1 AND 10",
            "HistoryLength BETWEEN 1 AND 10",
        ),
        ("CustomInt IN (1, -2, 3)", "CustomInt IN (1, -2, 3)"),
        ("CustomDouble < -0.25", "CustomDouble < -0.25"),
        ("CustomDouble = 2", "CustomDouble = 2"),
        ("CustomDouble > 1e3", "CustomDouble > 1000.0"),
        ("CustomBool = true", "CustomBool = true"),
        (
            "TemporalSchedulePaused = FALSE",
            "TemporalSchedulePaused = false",
        ),
        ("CustomBool != false", "CustomBool != false"),
        (
            "StartTime > '2024-01-02T03:04:05Z'",
            "StartTime > '2024-01-02T03:04:05Z'",
        ),
        (
            "CloseTime <= '2024-01-02T03:04:05.5+01:00'",
            "CloseTime <= '2024-01-02T02:04:05.500Z'",
        ),
        (
            "ExecutionTime = 0",
            "ExecutionTime = '1970-01-01T00:00:00Z'",
        ),
        (
            "StartTime BETWEEN 1700000000000000000 AND '2024-01-01T00:00:00Z'",
            "StartTime BETWEEN '2023-11-14T22:13:20Z' AND '2024-01-01T00:00:00Z'",
        ),
        ("ExecutionStatus = 'Running'", "ExecutionStatus = 'Running'"),
        ("ExecutionStatus = 2", "ExecutionStatus = 'Completed'"),
        (
            "ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_TIMED_OUT'",
            "ExecutionStatus = 'TimedOut'",
        ),
        (
            "ExecutionStatus IN ('Failed', 'Terminated', 6)",
            "ExecutionStatus IN ('Failed', 'Terminated', 'ContinuedAsNew')",
        ),
        (
            "ExecutionStatus != 'Canceled'",
            "ExecutionStatus != 'Canceled'",
        ),
        ("ExecutionDuration > 1000", "ExecutionDuration > 1000"),
        ("ExecutionDuration > '1000'", "ExecutionDuration > 1000"),
        (
            "ExecutionDuration > '2h45m'",
            "ExecutionDuration > 9900000000000",
        ),
        (
            "ExecutionDuration < '1d'",
            "ExecutionDuration < 86400000000000",
        ),
        (
            "ExecutionDuration >= '01:00:00'",
            "ExecutionDuration >= 3600000000000",
        ),
        (
            "TemporalScheduledById = 'sched'",
            "TemporalScheduledById = 'sched'",
        ),
        ("BatcherUser = 'me'", "BatcherUser = 'me'"),
    ];
    for (q, want) in cases {
        assert_eq!(normalized(q), format!("{DIV} AND {want}"), "{q}");
    }
}

#[test]
fn boolean_structure() {
    let cases: &[(&str, &str)] = &[
        (
            "WorkflowId = 'a' OR WorkflowId = 'b' AND RunId = 'c'",
            "(WorkflowId = 'a' OR WorkflowId = 'b' AND RunId = 'c')",
        ),
        (
            "(WorkflowId = 'a' OR WorkflowId = 'b') AND RunId = 'c'",
            "(WorkflowId = 'a' OR WorkflowId = 'b') AND RunId = 'c'",
        ),
        ("NOT WorkflowId = 'a'", "NOT WorkflowId = 'a'"),
        (
            "NOT (WorkflowId = 'a' OR RunId = 'b')",
            "NOT (WorkflowId = 'a' OR RunId = 'b')",
        ),
        ("((((WorkflowId = 'a'))))", "WorkflowId = 'a'"),
        (
            "WorkflowId = 'a' && RunId = 'b' || TaskQueue = 'q'",
            "(WorkflowId = 'a' AND RunId = 'b' OR TaskQueue = 'q')",
        ),
        (
            "(WorkflowId = 'a' AND RunId = 'b') AND (TaskQueue = 'q' AND WorkflowType = 't')",
            "WorkflowId = 'a' AND RunId = 'b' AND TaskQueue = 'q' AND WorkflowType = 't'",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(normalized(q), format!("{DIV} AND {want}"), "{q}");
    }
}

#[test]
fn names_resolve_like_temporal() {
    let q = parse("ScheduleId = 's'").expect("ScheduleId is WorkflowId");
    assert_eq!(q.to_string(), format!("{DIV} AND WorkflowId = 's'"));
    let cases: &[(&str, &str)] = &[
        ("TemporalScheduleId = 's'", "WorkflowId = 's'"),
        ("TemporalBuildIds = 'b'", "BuildIds = 'b'"),
        ("WorkerDeployment = 'd'", "TemporalWorkerDeployment = 'd'"),
        ("`CustomKeyword` = 'x'", "CustomKeyword = 'x'"),
    ];
    for (q, want) in cases {
        assert_eq!(normalized(q), format!("{DIV} AND {want}"), "{q}");
    }
    let q = parse("ScheduleId = 's'").expect("valid");
    let Some(crate::Expr::Predicate(p)) = q.filter else {
        panic!("one predicate")
    };
    assert_eq!(p.attribute.alias, "ScheduleId");
    assert_eq!(p.attribute.name, "WorkflowId");
}

#[test]
fn namespace_division_is_implicit_unless_named() {
    let q = parse("WorkflowId = 'a'").expect("valid");
    assert!(q.implicit_namespace_division);
    let q = parse("WorkflowId = 'a' AND TemporalNamespaceDivision = 'x'").expect("valid");
    assert!(!q.implicit_namespace_division);
    assert_eq!(
        q.to_string(),
        "WorkflowId = 'a' AND TemporalNamespaceDivision = 'x'"
    );
    let q = parse("TemporalNamespaceDivision IS NULL OR TemporalNamespaceDivision IS NOT NULL")
        .expect("valid");
    assert!(!q.implicit_namespace_division);
    let q = parse("NamespaceDivision = 'x'").expect("the prefix may be left off");
    assert!(!q.implicit_namespace_division);
    assert_eq!(
        parse("")
            .expect("empty")
            .effective_filter()
            .map(|e| e.to_string()),
        Some(DIV.to_owned())
    );
}

#[test]
fn order_by_and_group_by() {
    assert_eq!(
        normalized("order by StartTime"),
        format!("{DIV} ORDER BY StartTime ASC")
    );
    assert_eq!(
        normalized("ORDER BY CloseTime DESC, ExecutionTime asc"),
        format!("{DIV} ORDER BY CloseTime DESC, ExecutionTime ASC")
    );
    assert_eq!(
        normalized("WorkflowType = 't' ORDER BY StartTime DESC"),
        format!("{DIV} AND WorkflowType = 't' ORDER BY StartTime DESC")
    );
    assert_eq!(
        normalized("group by ExecutionStatus"),
        format!("{DIV} GROUP BY ExecutionStatus")
    );
    let q = parse("WorkflowType = 't' GROUP BY ExecutionStatus").expect("valid");
    assert_eq!(
        q.group_by.as_ref().map(|a| a.name.as_str()),
        Some("ExecutionStatus")
    );
    assert_eq!(
        q.to_string(),
        format!("{DIV} AND WorkflowType = 't' GROUP BY ExecutionStatus")
    );
}

#[test]
fn errors_read_as_temporal_writes_them() {
    let cases: &[(&str, &str)] = &[
        // Names.
        (
            "InvalidField = 'foo'",
            "invalid expression: column name 'InvalidField' is not a valid search attribute",
        ),
        (
            "workflowid = 'foo'",
            "invalid expression: column name 'workflowid' is not a valid search attribute",
        ),
        (
            "'foo' = WorkflowId",
            "invalid expression: must be a column name but was *sqlparser.SQLVal",
        ),
        (
            "true = WorkflowId",
            "invalid expression: must be a column name but was sqlparser.BoolVal",
        ),
        // Values.
        (
            "WorkflowId = InvalidValue",
            "operation is not supported: column name on the right side of comparison expression (did you forget to quote \"InvalidValue\"?)",
        ),
        (
            "WorkflowId = 123",
            "invalid expression: invalid value type for search attribute WorkflowId of type Keyword: 123 (type: int64)",
        ),
        (
            "CustomInt = 'foo'",
            "invalid expression: invalid value type for search attribute CustomInt of type Int: \"foo\" (type: string)",
        ),
        (
            "CustomDouble = 'foo'",
            "invalid expression: invalid value type for search attribute CustomDouble of type Double: \"foo\" (type: string)",
        ),
        (
            "CustomBool = 'true'",
            "invalid expression: invalid value type for search attribute CustomBool of type Bool: \"true\" (type: string)",
        ),
        (
            "CustomBool = 1",
            "invalid expression: invalid value type for search attribute CustomBool of type Bool: 1 (type: int64)",
        ),
        (
            "CustomKeywordList = 123",
            "invalid expression: invalid value type for search attribute CustomKeywordList of type KeywordList: 123 (type: int64)",
        ),
        (
            "CustomText = 123",
            "invalid expression: invalid value type for search attribute CustomText of type Text: 123 (type: int64)",
        ),
        (
            "CustomDatetime = 123.456",
            "invalid expression: invalid value type for search attribute CustomDatetime of type Datetime: 123.456 (type: float64)",
        ),
        (
            "CustomDatetime = '2025-01-01 12:34:56Z'",
            "invalid expression: unable to parse datetime '2025-01-01 12:34:56Z'",
        ),
        (
            "CustomInt = true",
            "invalid expression: invalid value type for search attribute CustomInt of type Int: true (type: bool)",
        ),
        (
            "CustomInt = 1e999",
            "invalid expression: unable to parse value \"1e999\"",
        ),
        (
            "ExecutionStatus = 'Invalid'",
            "invalid expression: invalid ExecutionStatus value 'Invalid'",
        ),
        (
            "ExecutionStatus = 'running'",
            "invalid expression: invalid ExecutionStatus value 'running'",
        ),
        (
            "ExecutionStatus = 999",
            "invalid expression: invalid ExecutionStatus value 999",
        ),
        (
            "ExecutionStatus = 1.5",
            "invalid expression: unexpected value type float64 for search attribute ExecutionStatus",
        ),
        (
            "ExecutionDuration > '1t'",
            "invalid expression: invalid duration value for search attribute ExecutionDuration: 1t",
        ),
        (
            "ExecutionDuration > 1.5",
            "invalid expression: unexpected value type float64 for search attribute ExecutionDuration",
        ),
        (
            "WorkflowId = NULL",
            "invalid expression: unexpected value type NULL (use IS NULL or IS NOT NULL)",
        ),
        (
            "WorkflowId = ('a', 'b')",
            "invalid expression: unexpected value type sqlparser.ValTuple: a list of values goes only after IN or NOT IN",
        ),
        (
            "CustomText = '   '",
            "invalid expression: unexpected value for Text type search attribute (no tokens found)",
        ),
        // Operators.
        (
            "WorkflowId LIKE 'foo%'",
            "operation is not supported: operator 'LIKE' not supported for Keyword type search attribute 'WorkflowId'",
        ),
        (
            "WorkflowId NOT LIKE 'foo%'",
            "operation is not supported: operator 'NOT LIKE' not supported for Keyword type search attribute 'WorkflowId'",
        ),
        (
            "CustomKeywordList LIKE 'foo'",
            "operation is not supported: operator 'LIKE' not supported for KeywordList type search attribute 'CustomKeywordList'",
        ),
        (
            "CustomText LIKE 'foo'",
            "operation is not supported: operator 'LIKE' not supported for Text type search attribute 'CustomText'",
        ),
        (
            "CustomInt LIKE 123",
            "operation is not supported: operator 'LIKE' not supported for Int type search attribute 'CustomInt'",
        ),
        (
            "CustomKeywordList > 'a'",
            "operation is not supported: operator '>' not supported for KeywordList type search attribute 'CustomKeywordList'",
        ),
        (
            "CustomKeywordList STARTS_WITH 'a'",
            "operation is not supported: operator 'STARTS_WITH' not supported for KeywordList type search attribute 'CustomKeywordList'",
        ),
        (
            "CustomText IN ('a')",
            "operation is not supported: operator 'IN' not supported for Text type search attribute 'CustomText'",
        ),
        (
            "CustomText < 'a'",
            "operation is not supported: operator '<' not supported for Text type search attribute 'CustomText'",
        ),
        (
            "HistoryLength STARTS_WITH 1",
            "operation is not supported: operator 'STARTS_WITH' not supported for Int type search attribute 'HistoryLength'",
        ),
        (
            "StartTime NOT STARTS_WITH '2024-01-01T00:00:00Z'",
            "operation is not supported: operator 'NOT STARTS_WITH' not supported for Datetime type search attribute 'StartTime'",
        ),
        (
            "ExecutionStatus STARTS_WITH 'Run'",
            "invalid expression: invalid ExecutionStatus value 'Run'",
        ),
        (
            "ExecutionStatus STARTS_WITH 'Running'",
            "operation is not supported: operator 'STARTS_WITH' not supported for Keyword type search attribute 'ExecutionStatus'",
        ),
        (
            "WorkflowId <=> 'a'",
            "operation is not supported: operator '<=>' not supported for Keyword type search attribute 'WorkflowId'",
        ),
        (
            "WorkflowId REGEXP 'a'",
            "operation is not supported: operator 'REGEXP' not supported for Keyword type search attribute 'WorkflowId'",
        ),
        (
            "CustomText BETWEEN '123' AND '456'",
            "invalid expression: cannot do range condition on search attribute 'CustomText' of type Text",
        ),
        (
            "CustomBool BETWEEN false AND true",
            "invalid expression: cannot do range condition on search attribute 'CustomBool' of type Bool",
        ),
        (
            "BuildIds BETWEEN 'a' AND 'b'",
            "invalid expression: cannot do range condition on search attribute 'BuildIds' of type KeywordList",
        ),
        (
            "WorkflowId BETWEEN InvalidValue AND '456'",
            "operation is not supported: column name on the right side of comparison expression (did you forget to quote \"InvalidValue\"?)",
        ),
        (
            "WorkflowId IS TRUE",
            "invalid expression: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'",
        ),
        (
            "WorkflowId IS NOT FALSE",
            "invalid expression: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'",
        ),
        (
            "InvalidField IS NOT NULL",
            "invalid expression: column name 'InvalidField' is not a valid search attribute",
        ),
        // Expressions.
        ("WorkflowId", "invalid expression: incomplete expression"),
        (
            "true",
            "operation is not supported: expression of type sqlparser.BoolVal",
        ),
        (
            "NOT TRUE",
            "operation is not supported: expression of type sqlparser.BoolVal",
        ),
        (
            "(FALSE)",
            "operation is not supported: expression of type sqlparser.BoolVal",
        ),
        (
            "FALSE AND WorkflowId IS NULL",
            "operation is not supported: expression of type sqlparser.BoolVal",
        ),
        (
            "WorkflowId IS NULL OR FALSE",
            "operation is not supported: expression of type sqlparser.BoolVal",
        ),
        (
            "'foo'",
            "operation is not supported: expression of type *sqlparser.SQLVal",
        ),
        (
            "coalesce(WorkflowId, 'foo')",
            "operation is not supported: function expression",
        ),
        (
            "WorkflowId = lower('A')",
            "operation is not supported: nested func",
        ),
        // Clauses.
        (
            "WorkflowId = 'a' LIMIT 10",
            "operation is not supported: 'LIMIT' clause",
        ),
        (
            "LIMIT 10",
            "malformed SQL query: syntax error at position 1 near 'LIMIT'",
        ),
        (
            "order by WorkflowType",
            "operation is not supported: 'ORDER BY' clause is supported only for StartTime, CloseTime and ExecutionTime, not for search attribute WorkflowType",
        ),
        (
            "order by InvalidField",
            "invalid expression: column name 'InvalidField' is not a valid search attribute",
        ),
        (
            "group by ExecutionStatus, RunId",
            "operation is not supported: 'GROUP BY' clause supports only a single field",
        ),
        (
            "group by RunId",
            "operation is not supported: 'GROUP BY' clause is not supported for search attribute RunId",
        ),
        (
            "group by InvalidField",
            "invalid expression: column name 'InvalidField' is not a valid search attribute",
        ),
        // Syntax.
        (
            "WorkflowId = 'foo",
            "malformed SQL query: syntax error at position 18 near 'foo'",
        ),
        (
            "WorkflowId = ",
            "malformed SQL query: syntax error at position 14",
        ),
        (
            "WorkflowId = 'a' AND",
            "malformed SQL query: syntax error at position 21",
        ),
        (
            "WorkflowId = 'a' RunId = 'b'",
            "malformed SQL query: syntax error at position 18 near 'RunId'",
        ),
        (
            "WorkflowId = 'a'; DROP TABLE x",
            "malformed SQL query: syntax error at position 17 near ';'",
        ),
        (
            "select * from t",
            "malformed SQL query: syntax error at position 8 near '*'",
        ),
        (
            "WorkflowId IN 'a'",
            "malformed SQL query: syntax error at position 15 near ''a''",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(error(q), format!("invalid query: {want}"), "{q}");
    }
}

#[test]
fn the_first_fault_in_temporal_order_is_reported() {
    // LIMIT before the filter.
    assert_eq!(
        error("Nope = 1 LIMIT 1"),
        "invalid query: operation is not supported: 'LIMIT' clause"
    );
    // The value before the operator.
    assert_eq!(
        error("WorkflowId LIKE 123"),
        "invalid query: invalid expression: invalid value type for search attribute WorkflowId of type Keyword: 123 (type: int64)"
    );
    // The filter before GROUP BY and ORDER BY.
    assert_eq!(
        error("Nope = 1 GROUP BY RunId ORDER BY RunId"),
        "invalid query: invalid expression: column name 'Nope' is not a valid search attribute"
    );
    // The alias, not the resolved name, is quoted.
    assert_eq!(
        error("ScheduleId = 1"),
        "invalid query: invalid expression: invalid value type for search attribute ScheduleId of type Keyword: 1 (type: int64)"
    );
}

/// A small xorshift generator, so the property test needs no dependency and is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "WorkflowId",
    "ExecutionStatus",
    "StartTime",
    "CustomText",
    "CustomKeywordList",
    "CustomInt",
    "CustomDouble",
    "CustomBool",
    "ExecutionDuration",
    "Nope",
    "`",
    "`x`",
    "'",
    "\"",
    "'a'",
    "\"b\"",
    "'Running'",
    "'2h'",
    "'2024-01-01T00:00:00Z'",
    "1",
    "-1",
    "1.5",
    "1e999",
    "99999999999999999999",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "<=>",
    "(",
    ")",
    ",",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "LIKE",
    "STARTS_WITH",
    "ORDER",
    "GROUP",
    "BY",
    "ASC",
    "DESC",
    "LIMIT",
    "&&",
    "||",
    "-",
    "+",
    "\\",
    ";",
    "*",
    ".",
    "é",
    "\u{0}",
    " ",
    "  ",
    "f(",
    "ESCAPE",
];

#[test]
fn garbled_input_never_panics() {
    let attrs = attrs();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let len = rng.below(14);
        let mut q = String::new();
        for _ in 0..len {
            q.push_str(rng.pick(PIECES));
            q.push(' ');
        }
        if let Ok(query) = Query::parse(&q, &attrs) {
            accepted += 1;
            // A normalized query parses again to the same query.
            let again = Query::parse(&query.to_string(), &attrs)
                .unwrap_or_else(|e| panic!("{q:?} normalized to {query} which fails: {e}"));
            assert_eq!(again.to_string(), query.to_string(), "{q:?}");
        }
    }
    assert!(
        accepted > 0,
        "the generator should produce some valid queries"
    );

    // Raw bytes, including invalid UTF-8 replaced, and every char class.
    for _ in 0..20_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        let q = String::from_utf8_lossy(&bytes);
        let _ = Query::parse(&q, &attrs);
    }
    // Mutations of valid queries: delete, duplicate or swap characters.
    let seeds = [
        "WorkflowId = 'a' AND (ExecutionStatus IN ('Running', 2) OR NOT CustomInt BETWEEN 1 AND 2)",
        "CustomText = 'foo bar' ORDER BY StartTime DESC",
        "ExecutionDuration > '1h30m' GROUP BY ExecutionStatus",
        "`CustomKeywordList` NOT IN (\"x\", 'y') || StartTime >= 1700000000000000000",
    ];
    for _ in 0..20_000 {
        let mut chars: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(chars.len());
            match rng.below(3) {
                0 => {
                    chars.remove(i);
                }
                1 => {
                    let c = chars[rng.below(chars.len())];
                    chars.insert(i, c);
                }
                _ => {
                    let j = rng.below(chars.len());
                    chars.swap(i, j);
                }
            }
            if chars.is_empty() {
                break;
            }
        }
        let q: String = chars.into_iter().collect();
        let _ = Query::parse(&q, &attrs);
    }
}

#[test]
fn deep_and_long_input_is_refused_or_accepted_without_overflow() {
    let attrs = attrs();
    let deep = "(".repeat(100_000);
    assert!(Query::parse(&deep, &attrs).is_err());
    let nots = "NOT ".repeat(100_000) + "WorkflowId = 'a'";
    assert!(Query::parse(&nots, &attrs).is_err());
    let long = vec!["WorkflowId = 'a'"; 50_000].join(" OR ");
    let q = Query::parse(&long, &attrs).expect("a long flat OR is fine");
    assert!(q.to_string().len() > 50_000);
    let mixed = vec!["(WorkflowId = 'a' AND NOT RunId = 'b')"; 10_000].join(" OR ");
    assert!(Query::parse(&mixed, &attrs).is_ok());
}

#[test]
fn normalized_form_reads_back_with_awkward_names_and_strings() {
    let attrs = attrs()
        .with_custom("Order", ValueType::Keyword)
        .and_then(|a| a.with_custom("odd name`x", ValueType::Keyword))
        .expect("free names");
    for q in [
        "`Order` = 'a\\\\b'",
        "`odd name``x` = 'it''s \\\\% \"q\"'",
        "`Order` IN ('\\n', '\\\\n', '')",
        "CustomKeyword = \"tab\there\"",
    ] {
        let first = Query::parse(q, &attrs).unwrap_or_else(|e| panic!("{q}: {e}"));
        let again = Query::parse(&first.to_string(), &attrs)
            .unwrap_or_else(|e| panic!("{q} -> {first}: {e}"));
        assert_eq!(
            first.effective_filter(),
            again.effective_filter(),
            "{q} -> {first}"
        );
    }
    let q = Query::parse("`Order` = 'x'", &attrs).expect("valid");
    assert_eq!(q.to_string(), format!("{DIV} AND `Order` = 'x'"));
}
