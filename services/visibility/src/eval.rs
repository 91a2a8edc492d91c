//! Evaluating a checked query against one execution held in memory.
//!
//! The semantics are those of Temporal's SQL visibility on SQLite, which temper's SQL store
//! will translate to, so that both agree:
//!
//! - SQL's three-valued logic: a comparison with an absent attribute is *unknown*, NOT of
//!   unknown is unknown, and a record matches only if the whole filter is true. So
//!   `Foo != 'x'` does not match a record without `Foo`, and neither does `NOT Foo = 'x'`.
//! - Keyword: exact, case-sensitive; `<`, `>`, BETWEEN compare bytes of the UTF-8 text;
//!   STARTS_WITH is a case-sensitive prefix match.
//! - KeywordList: `= v` means the list contains `v`, `IN (a, b)` that it contains one of them;
//!   `!=` and `NOT IN` are their negations *and match a record without the attribute* (Temporal
//!   runs them as `rowid NOT IN (full-text match)`).
//! - Text: the query value is split on spaces into words; `= 'a b'` matches when the text
//!   contains the word `a` or the word `b`. Words are compared as SQLite's FTS5 `unicode61`
//!   tokenizer does: split on anything but letters and digits, case-insensitively, so a query
//!   word with punctuation (`foo-bar`) is a phrase (`foo` then `bar`). `!=` is the negation and,
//!   as for KeywordList, matches a record without the attribute.
//! - Int and Double compare as numbers, either with either; Bool has `false < true`;
//!   Datetime compares instants; ExecutionStatus compares status numbers.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::ast::{CompareOp, Expr, Operator, Predicate, Query, Value};
use crate::attributes::{ValueType, names};
use crate::status::ExecutionStatus;

/// A value of an execution's search attribute, as a [`Record`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecordValue<'a> {
    /// Keyword and Text values. `ExecutionStatus` may be given by name (`Running`).
    Str(&'a str),
    /// Int values, and `ExecutionDuration` in nanoseconds. `ExecutionStatus` may be given by
    /// number. Datetime attributes may be given as nanoseconds since the Unix epoch.
    Int(i64),
    Double(f64),
    Bool(bool),
    Datetime(DateTime<Utc>),
    KeywordList(&'a [String]),
}

/// One execution's search attributes, looked up by resolved name (`WorkflowId`, `CloseTime`,
/// a custom attribute's name). `None` means the attribute is absent (SQL NULL).
pub trait Record {
    fn value(&self, name: &str) -> Option<RecordValue<'_>>;
}

impl Query {
    /// Whether the execution matches the query's effective filter (including the implicit
    /// `TemporalNamespaceDivision IS NULL`).
    pub fn matches(&self, record: &impl Record) -> bool {
        if self.implicit_namespace_division
            && record.value(names::TEMPORAL_NAMESPACE_DIVISION).is_some()
        {
            return false;
        }
        self.filter
            .as_ref()
            .is_none_or(|f| f.eval(record) == Some(true))
    }
}

impl Expr {
    /// Three-valued evaluation: `Some(true)`, `Some(false)`, or `None` for SQL's unknown.
    pub fn eval(&self, record: &impl Record) -> Option<bool> {
        match self {
            Expr::And(items) => {
                let mut result = Some(true);
                for item in items {
                    match item.eval(record) {
                        Some(false) => return Some(false),
                        None => result = None,
                        Some(true) => {}
                    }
                }
                result
            }
            Expr::Or(items) => {
                let mut result = Some(false);
                for item in items {
                    match item.eval(record) {
                        Some(true) => return Some(true),
                        None => result = None,
                        Some(false) => {}
                    }
                }
                result
            }
            Expr::Not(inner) => inner.eval(record).map(|b| !b),
            Expr::Predicate(p) => p.eval(record),
        }
    }
}

impl Predicate {
    pub fn eval(&self, record: &impl Record) -> Option<bool> {
        let value = record.value(&self.attribute.name);
        if let Operator::IsNull { negated } = self.operator {
            return Some(value.is_none() != negated);
        }
        match self.attribute.value_type {
            ValueType::KeywordList => eval_list(&self.operator, value),
            ValueType::Text => eval_text(&self.operator, value),
            _ => eval_scalar(&self.operator, value?),
        }
    }
}

fn eval_scalar(op: &Operator, value: RecordValue<'_>) -> Option<bool> {
    match op {
        Operator::Compare(cmp, v) => {
            let ord = compare(value, v)?;
            Some(match cmp {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::Ne => ord != Ordering::Equal,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::Le => ord != Ordering::Greater,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::Ge => ord != Ordering::Less,
            })
        }
        Operator::In { values, negated } => {
            let mut unknown = false;
            for v in values {
                match compare(value, v) {
                    Some(Ordering::Equal) => return Some(!negated),
                    None => unknown = true,
                    Some(_) => {}
                }
            }
            if unknown { None } else { Some(*negated) }
        }
        Operator::Between { from, to, negated } => {
            let inside =
                compare(value, from)? != Ordering::Less && compare(value, to)? != Ordering::Greater;
            Some(inside != *negated)
        }
        Operator::StartsWith { prefix, negated } => match value {
            RecordValue::Str(s) => Some(s.starts_with(prefix.as_str()) != *negated),
            _ => None,
        },
        Operator::IsNull { .. } => None,
    }
}

fn eval_list(op: &Operator, value: Option<RecordValue<'_>>) -> Option<bool> {
    let list: &[String] = match value {
        None => &[],
        Some(RecordValue::KeywordList(list)) => list,
        // A single keyword stored for a list attribute: a list of one.
        Some(RecordValue::Str(s)) => {
            return eval_list_items(op, &[s]);
        }
        Some(_) => return None,
    };
    let items: Vec<&str> = list.iter().map(String::as_str).collect();
    eval_list_items(op, &items)
}

fn eval_list_items(op: &Operator, items: &[&str]) -> Option<bool> {
    let contains = |v: &Value| matches!(v, Value::String(s) if items.contains(&s.as_str()));
    match op {
        Operator::Compare(CompareOp::Eq, v) => Some(contains(v)),
        Operator::Compare(CompareOp::Ne, v) => Some(!contains(v)),
        Operator::In { values, negated } => Some(values.iter().any(contains) != *negated),
        _ => None,
    }
}

fn eval_text(op: &Operator, value: Option<RecordValue<'_>>) -> Option<bool> {
    let (cmp, query) = match op {
        Operator::Compare(cmp @ (CompareOp::Eq | CompareOp::Ne), Value::String(q)) => (cmp, q),
        _ => return None,
    };
    let found = match value {
        None => false,
        Some(RecordValue::Str(text)) => text_matches(text, query),
        Some(_) => return None,
    };
    Some(found == (*cmp == CompareOp::Eq))
}

/// The words of a Text query value: Temporal splits it on spaces.
pub fn text_query_words(query: &str) -> impl Iterator<Item = &str> {
    query.split(' ').filter(|w| !w.is_empty())
}

/// Lower-cased runs of letters and digits, like FTS5's `unicode61` tokenizer.
pub fn text_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `text` contains any word of `query`, each word matched as a phrase of tokens.
pub fn text_matches(text: &str, query: &str) -> bool {
    let haystack = text_tokens(text);
    text_query_words(query).any(|word| {
        let phrase = text_tokens(word);
        !phrase.is_empty()
            && haystack
                .windows(phrase.len())
                .any(|window| window == phrase.as_slice())
    })
}

/// Orders a record's value against a query value; `None` when they cannot be compared.
fn compare(record: RecordValue<'_>, value: &Value) -> Option<Ordering> {
    match (record, value) {
        (RecordValue::Str(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (RecordValue::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (RecordValue::Int(a), Value::Double(b)) => (a as f64).partial_cmp(b),
        (RecordValue::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (RecordValue::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (RecordValue::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (RecordValue::Datetime(a), Value::Datetime(b)) => Some(a.cmp(b)),
        (RecordValue::Int(a), Value::Datetime(b)) => Some(DateTime::from_timestamp_nanos(a).cmp(b)),
        (RecordValue::Str(name), Value::Status(b)) => {
            Some(ExecutionStatus::from_name(name)?.cmp(b))
        }
        (RecordValue::Int(code), Value::Status(b)) => {
            Some(ExecutionStatus::from_code(code)?.cmp(b))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_words_and_tokens() {
        assert_eq!(
            text_tokens("Hello, World-42 ÉTÉ"),
            vec!["hello", "world", "42", "été"]
        );
        assert!(text_matches("The quick brown fox", "QUICK"));
        assert!(text_matches("The quick brown fox", "slow fox"));
        assert!(!text_matches("The quick brown fox", "qui"));
        assert!(text_matches("error: foo-bar failed", "foo-bar"));
        assert!(text_matches("error: foo bar failed", "foo-bar"));
        assert!(!text_matches("error: bar foo failed", "foo-bar"));
        assert!(!text_matches("anything", "---"));
        assert!(!text_matches("", "a"));
        assert_eq!(
            text_query_words("  a  b ").collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        assert_eq!(
            compare(RecordValue::Int(2), &Value::Double(1.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(RecordValue::Double(2.0), &Value::Int(2)),
            Some(Ordering::Equal)
        );
        assert_eq!(compare(RecordValue::Double(f64::NAN), &Value::Int(2)), None);
        assert_eq!(compare(RecordValue::Str("1"), &Value::Int(1)), None);
    }

    #[test]
    fn status_by_name_or_number() {
        let running = Value::Status(ExecutionStatus::Running);
        assert_eq!(
            compare(RecordValue::Str("Running"), &running),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(RecordValue::Int(2), &running),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(RecordValue::Str("bogus"), &running), None);
    }
}
