//! Evaluating queries against in-memory records, and the shared ordering.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{
    DefaultSortKey, Query, Record, RecordValue, SearchAttributes, ValueType, compare_default,
};

#[derive(Debug, Clone)]
enum Owned {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Time(DateTime<Utc>),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default)]
struct Exec(BTreeMap<String, Owned>);

impl Exec {
    fn with(mut self, name: &str, v: Owned) -> Self {
        self.0.insert(name.to_owned(), v);
        self
    }
    fn s(self, name: &str, v: &str) -> Self {
        self.with(name, Owned::Str(v.to_owned()))
    }
    fn i(self, name: &str, v: i64) -> Self {
        self.with(name, Owned::Int(v))
    }
    fn t(self, name: &str, rfc3339: &str) -> Self {
        let t = crate::parse_datetime(rfc3339).expect("test time");
        self.with(name, Owned::Time(t))
    }
    fn list(self, name: &str, items: &[&str]) -> Self {
        self.with(
            name,
            Owned::List(items.iter().map(|s| (*s).to_owned()).collect()),
        )
    }
}

impl Record for Exec {
    fn value(&self, name: &str) -> Option<RecordValue<'_>> {
        Some(match self.0.get(name)? {
            Owned::Str(s) => RecordValue::Str(s),
            Owned::Int(i) => RecordValue::Int(*i),
            Owned::Double(d) => RecordValue::Double(*d),
            Owned::Bool(b) => RecordValue::Bool(*b),
            Owned::Time(t) => RecordValue::Datetime(*t),
            Owned::List(l) => RecordValue::KeywordList(l),
        })
    }
}

fn attrs() -> SearchAttributes {
    let mut sa = SearchAttributes::system_and_predefined();
    for (name, ty) in [
        ("Kw", ValueType::Keyword),
        ("Txt", ValueType::Text),
        ("Num", ValueType::Int),
        ("Dbl", ValueType::Double),
        ("Flag", ValueType::Bool),
        ("When", ValueType::Datetime),
        ("Tags", ValueType::KeywordList),
    ] {
        sa.add_custom(name, ty).expect("free name");
    }
    sa
}

fn matches(q: &str, e: &Exec) -> bool {
    Query::parse(q, &attrs())
        .unwrap_or_else(|err| panic!("{q}: {err}"))
        .matches(e)
}

fn sample() -> Exec {
    Exec::default()
        .s("WorkflowId", "order-17")
        .s("RunId", "r1")
        .s("WorkflowType", "FooWorkflow")
        .s("ExecutionStatus", "Running")
        .s("TaskQueue", "q")
        .t("StartTime", "2024-05-01T10:00:00Z")
        .i("HistoryLength", 12)
        .i("ExecutionDuration", 90 * 60 * 1_000_000_000)
        .s("Kw", "beta")
        .s("Txt", "Payment failed: card-declined (retry later)")
        .i("Num", 5)
        .with("Dbl", Owned::Double(2.5))
        .with("Flag", Owned::Bool(true))
        .t("When", "2024-06-01T00:00:00+02:00")
        .list("Tags", &["red", "green"])
}

#[test]
fn keyword_and_numbers() {
    let e = sample();
    let yes = [
        "",
        "WorkflowId = 'order-17'",
        "WorkflowId != 'order-18'",
        "WorkflowId > 'order-1' AND WorkflowId < 'order-2'",
        "WorkflowId BETWEEN 'order-10' AND 'order-20'",
        "WorkflowId IN ('x', 'order-17')",
        "WorkflowId NOT IN ('x', 'y')",
        "WorkflowType STARTS_WITH 'Foo'",
        "WorkflowType NOT STARTS_WITH 'foo'",
        "ScheduleId = 'order-17'",
        "HistoryLength = 12 AND HistoryLength >= 12.0 AND HistoryLength < 12.5",
        "HistoryLength IN (1, 12)",
        "HistoryLength NOT BETWEEN 13 AND 20",
        "Num <= 5 AND Dbl > 2 AND Dbl = 2.5",
        "Flag = true AND Flag != false AND Flag > false",
        "Flag IN (true)",
    ];
    for q in yes {
        assert!(matches(q, &e), "{q}");
    }
    let no = [
        "WorkflowId = 'ORDER-17'",
        "WorkflowId STARTS_WITH 'Order'",
        "WorkflowType STARTS_WITH 'foo'",
        "WorkflowId IN ('x')",
        "HistoryLength > 12",
        "Flag = false",
        "Kw < 'alpha'",
    ];
    for q in no {
        assert!(!matches(q, &e), "{q}");
    }
}

#[test]
fn absent_attributes_are_sql_null() {
    let e = sample();
    // ParentWorkflowId and CloseTime are absent.
    let yes = [
        "ParentWorkflowId IS NULL",
        "CloseTime IS NULL",
        "WorkflowId IS NOT NULL",
        "ParentWorkflowId = 'p' OR WorkflowId = 'order-17'",
        "NOT (ParentWorkflowId = 'p' AND WorkflowId = 'x')",
    ];
    for q in yes {
        assert!(matches(q, &e), "{q}");
    }
    let no = [
        "ParentWorkflowId = 'p'",
        "ParentWorkflowId != 'p'",
        "NOT ParentWorkflowId = 'p'",
        "ParentWorkflowId NOT IN ('p')",
        "ParentWorkflowId NOT STARTS_WITH 'p'",
        "CloseTime < '2030-01-01T00:00:00Z'",
        "CloseTime > '2000-01-01T00:00:00Z'",
        "NOT CloseTime BETWEEN 0 AND 1",
        "ParentWorkflowId = 'p' OR WorkflowId = 'x'",
        "ParentWorkflowId = 'p' AND WorkflowId = 'order-17'",
    ];
    for q in no {
        assert!(!matches(q, &e), "{q}");
    }
}

#[test]
fn times_status_and_duration() {
    let e = sample();
    let yes = [
        "StartTime = '2024-05-01T12:00:00+02:00'",
        "StartTime > '2024-05-01T09:59:59.999Z'",
        "StartTime BETWEEN '2024-05-01T00:00:00Z' AND '2024-05-02T00:00:00Z'",
        "StartTime = 1714557600000000000",
        "When < '2024-06-01T00:00:00Z'",
        "ExecutionStatus = 'Running'",
        "ExecutionStatus = 1",
        "ExecutionStatus = 'WORKFLOW_EXECUTION_STATUS_RUNNING'",
        "ExecutionStatus IN ('Completed', 'Running')",
        "ExecutionStatus != 'Completed'",
        "ExecutionStatus < 'Completed'",
        "ExecutionDuration > '1h' AND ExecutionDuration <= '01:30:00'",
        "ExecutionDuration = 5400000000000",
    ];
    for q in yes {
        assert!(matches(q, &e), "{q}");
    }
    let no = [
        "ExecutionStatus = 'Completed'",
        "ExecutionDuration > '2h'",
        "StartTime < '2024-01-01T00:00:00Z'",
    ];
    for q in no {
        assert!(!matches(q, &e), "{q}");
    }
    let numeric_status = Exec::default().i("ExecutionStatus", 2);
    assert!(matches("ExecutionStatus = 'Completed'", &numeric_status));
}

#[test]
fn keyword_lists_and_text() {
    let e = sample();
    let yes = [
        "Tags = 'red'",
        "Tags != 'blue'",
        "Tags IN ('blue', 'green')",
        "Tags NOT IN ('blue', 'black')",
        "Txt = 'declined'",
        "Txt = 'PAYMENT'",
        "Txt = 'nothing failed'",
        "Txt = 'card-declined'",
        "Txt = '(retry'",
        "Txt != 'success'",
    ];
    for q in yes {
        assert!(matches(q, &e), "{q}");
    }
    let no = [
        "Tags = 'Red'",
        "Tags != 'red'",
        "Tags IN ('blue')",
        "Tags NOT IN ('green')",
        "Txt = 'pay'",
        "Txt = 'declined-card'",
        "Txt != 'payment'",
    ];
    for q in no {
        assert!(!matches(q, &e), "{q}");
    }
    // Without the attribute, the negative forms match (Temporal runs them as NOT IN a
    // full-text match), the positive ones do not.
    let bare = Exec::default();
    assert!(matches("Tags != 'red'", &bare));
    assert!(matches("Tags NOT IN ('red')", &bare));
    assert!(matches("Txt != 'x'", &bare));
    assert!(!matches("Tags = 'red'", &bare));
    assert!(!matches("Txt = 'x'", &bare));
    assert!(matches("NOT Tags = 'red'", &bare));
}

#[test]
fn namespace_division_hides_divided_executions() {
    let internal = sample().s("TemporalNamespaceDivision", "TemporalScheduler");
    assert!(!matches("", &internal));
    assert!(!matches("WorkflowId = 'order-17'", &internal));
    assert!(matches(
        "TemporalNamespaceDivision = 'TemporalScheduler'",
        &internal
    ));
    assert!(matches(
        "TemporalNamespaceDivision IS NULL OR TemporalNamespaceDivision IS NOT NULL",
        &internal
    ));
    assert!(matches(
        "TemporalNamespaceDivision IS NULL OR TemporalNamespaceDivision IS NOT NULL",
        &sample()
    ));
}

#[test]
fn wrong_record_types_never_match_and_never_panic() {
    let odd = Exec::default()
        .i("WorkflowId", 3)
        .s("HistoryLength", "x")
        .s("StartTime", "yesterday")
        .i("Tags", 1)
        .i("Txt", 1)
        .s("ExecutionStatus", "Bogus")
        .with("Dbl", Owned::Double(f64::NAN));
    for q in [
        "WorkflowId = 'a'",
        "WorkflowId STARTS_WITH 'a'",
        "HistoryLength > 1",
        "StartTime > 0",
        "Tags = 'a'",
        "Txt = 'a'",
        "ExecutionStatus = 'Running'",
        "Dbl = 1",
        "Dbl != 1",
    ] {
        assert!(!matches(q, &odd), "{q}");
    }
    // A keyword given for a list attribute counts as a list of one.
    assert!(matches("Tags = 'a'", &Exec::default().s("Tags", "a")));
}

fn exec(run: &str, start: &str, close: Option<&str>) -> Exec {
    let e = Exec::default().s("RunId", run).t("StartTime", start);
    match close {
        Some(c) => e.t("CloseTime", c),
        None => e,
    }
}

#[test]
fn default_order_running_first_then_newest() {
    let running_old = exec("a", "2024-01-01T00:00:00Z", None);
    let running_new = exec("b", "2024-02-01T00:00:00Z", None);
    let closed_late = exec("c", "2023-01-01T00:00:00Z", Some("2024-03-01T00:00:00Z"));
    let closed_early = exec("d", "2024-01-01T00:00:00Z", Some("2024-01-02T00:00:00Z"));
    let closed_early_2 = exec("e", "2024-01-01T00:00:00Z", Some("2024-01-02T00:00:00Z"));
    let mut all = [
        closed_early_2,
        closed_early,
        running_old.clone(),
        closed_late.clone(),
        running_new,
    ];
    all.sort_by(compare_default);
    let runs: Vec<_> = all.iter().map(|e| DefaultSortKey::of(e).run_id).collect();
    assert_eq!(runs, vec!["b", "a", "c", "d", "e"]);
    assert_eq!(
        DefaultSortKey::of(&running_old).cmp(&DefaultSortKey::of(&closed_late)),
        Ordering::Less
    );
}

#[test]
fn order_by_overrides_the_default() {
    let a = exec("a", "2024-01-01T00:00:00Z", Some("2024-05-01T00:00:00Z"));
    let b = exec("b", "2024-03-01T00:00:00Z", None);
    let c = exec("c", "2024-02-01T00:00:00Z", Some("2024-04-01T00:00:00Z"));
    let sorted = |q: &str| {
        let query = Query::parse(q, &attrs()).expect("valid");
        let mut all = [a.clone(), b.clone(), c.clone()];
        all.sort_by(|x, y| query.compare(x, y));
        all.iter()
            .map(|e| DefaultSortKey::of(e).run_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(sorted(""), vec!["b", "a", "c"]);
    assert_eq!(sorted("ORDER BY StartTime"), vec!["a", "c", "b"]);
    assert_eq!(sorted("ORDER BY StartTime DESC"), vec!["b", "c", "a"]);
    // Executions without the attribute go last either way.
    assert_eq!(sorted("ORDER BY CloseTime ASC"), vec!["c", "a", "b"]);
    assert_eq!(sorted("ORDER BY CloseTime DESC"), vec!["a", "c", "b"]);
    // Ties fall back to the default order.
    assert_eq!(sorted("ORDER BY ExecutionTime"), vec!["b", "a", "c"]);
}
