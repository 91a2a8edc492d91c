//! The checked query: every name resolved to a search attribute, every value typed.
//!
//! Stores translate this tree (to SQL, to a Cassandra plan) or evaluate it in memory
//! ([`crate::eval`]). `Display` prints a normalized query string, which is also what the tests
//! compare against.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::attributes::{ValueType, names};
use crate::status::ExecutionStatus;

/// A search attribute as a query names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The name as written in the query (without backticks), e.g. `ScheduleId`.
    pub alias: String,
    /// The attribute it resolves to, e.g. `WorkflowId`. Records are looked up by this name.
    pub name: String,
    pub value_type: ValueType,
}

impl Attribute {
    pub(crate) fn new(alias: &str, name: &str, value_type: ValueType) -> Self {
        Attribute {
            alias: alias.to_owned(),
            name: name.to_owned(),
            value_type,
        }
    }

    pub(crate) fn namespace_division() -> Self {
        let name = names::TEMPORAL_NAMESPACE_DIVISION;
        Attribute::new(name, name, ValueType::Keyword)
    }
}

/// A typed literal from the query.
///
/// - Keyword, KeywordList and Text attributes take [`Value::String`];
/// - Int and Double take [`Value::Int`] or [`Value::Double`] (Temporal lets either compare with
///   either); `ExecutionDuration` takes [`Value::Int`] nanoseconds;
/// - Bool takes [`Value::Bool`]; Datetime takes [`Value::Datetime`];
/// - `ExecutionStatus` takes [`Value::Status`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Datetime(DateTime<Utc>),
    Status(ExecutionStatus),
}

/// The comparison operators of `attribute <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// What a predicate tests about its attribute.
///
/// The meaning depends on the attribute's type (see [`crate::eval`]): on a KeywordList,
/// `Compare(Eq, v)` means "the list contains v"; on Text, `Compare(Eq, v)` means "the text
/// contains one of the space-separated words of v".
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Compare(CompareOp, Value),
    In {
        values: Vec<Value>,
        negated: bool,
    },
    /// Inclusive at both ends.
    Between {
        from: Value,
        to: Value,
        negated: bool,
    },
    /// Keyword prefix match, case-sensitive.
    StartsWith {
        prefix: String,
        negated: bool,
    },
    IsNull {
        negated: bool,
    },
}

/// One condition on one attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub attribute: Attribute,
    pub operator: Operator,
}

/// A boolean filter. AND and OR are n-ary (two or more items) and never nest directly in an
/// expression of the same kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Predicate(Predicate),
}

impl Expr {
    /// `a AND b`, merged flat into existing ANDs.
    pub fn and(self, other: Expr) -> Expr {
        let mut items = Vec::new();
        for e in [self, other] {
            match e {
                Expr::And(inner) => items.extend(inner),
                e => items.push(e),
            }
        }
        Expr::And(items)
    }
}

/// The attributes `ORDER BY` accepts: Temporal's three time columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    StartTime,
    CloseTime,
    ExecutionTime,
}

impl SortField {
    /// The search attribute name.
    pub fn name(self) -> &'static str {
        match self {
            SortField::StartTime => names::START_TIME,
            SortField::CloseTime => names::CLOSE_TIME,
            SortField::ExecutionTime => names::EXECUTION_TIME,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [
            SortField::StartTime,
            SortField::CloseTime,
            SortField::ExecutionTime,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// One `ORDER BY` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderBy {
    pub field: SortField,
    pub descending: bool,
}

/// A checked query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The filter as written; `None` for an empty query (everything).
    pub filter: Option<Expr>,
    /// True unless the query names `TemporalNamespaceDivision` anywhere. Temporal then adds
    /// `TemporalNamespaceDivision IS NULL`, which hides executions that belong to a division
    /// (internal workflows such as the scheduler's and the batcher's). [`Query::effective_filter`]
    /// includes it.
    pub implicit_namespace_division: bool,
    /// `GROUP BY ExecutionStatus` (the only grouping accepted). Only Count supports it; the
    /// caller refuses it elsewhere.
    pub group_by: Option<Attribute>,
    /// `ORDER BY` items, in order; empty for the default order (see [`crate::order`]).
    pub order_by: Vec<OrderBy>,
}

impl Query {
    /// The filter to run: the query's own, AND the implicit namespace division condition
    /// when it applies. `None` means every execution matches.
    pub fn effective_filter(&self) -> Option<Expr> {
        let division = self.implicit_namespace_division.then(|| {
            Expr::Predicate(Predicate {
                attribute: Attribute::namespace_division(),
                operator: Operator::IsNull { negated: false },
            })
        });
        match (division, self.filter.clone()) {
            (Some(d), Some(f)) => Some(d.and(f)),
            (d, f) => d.or(f),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Datetime(t) => write!(f, "'{}'", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Status(s) => write!(f, "'{s}'"),
        }
    }
}

/// A name as the parser reads it back: bare when it can be, else in backticks.
struct Name<'a>(&'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if crate::lexer::is_bare_name(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "`{}`", self.0.replace('`', "``"))
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Name(&self.attribute.name);
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match &self.operator {
            Operator::Compare(op, v) => write!(f, "{name} {} {v}", op.as_str()),
            Operator::In { values, negated } => {
                write!(f, "{name} {}IN (", not(*negated))?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Operator::Between { from, to, negated } => {
                write!(f, "{name} {}BETWEEN {from} AND {to}", not(*negated))
            }
            Operator::StartsWith { prefix, negated } => write!(
                f,
                "{name} {}STARTS_WITH {}",
                not(*negated),
                Value::String(prefix.clone())
            ),
            Operator::IsNull { negated } => write!(f, "{name} IS {}NULL", not(*negated)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str, wrap_or: bool| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                if wrap_or && matches!(e, Expr::Or(_)) {
                    write!(f, "({e})")?;
                } else {
                    write!(f, "{e}")?;
                }
            }
            Ok(())
        };
        match self {
            Expr::And(items) => join(f, items, " AND ", true),
            Expr::Or(items) => join(f, items, " OR ", false),
            Expr::Not(inner) => match inner.as_ref() {
                Expr::Predicate(_) | Expr::Not(_) => write!(f, "NOT {inner}"),
                _ => write!(f, "NOT ({inner})"),
            },
            Expr::Predicate(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Query {
    /// The normalized query, with the implicit namespace division condition spelled out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(filter) = self.effective_filter() {
            write!(f, "{filter}")?;
            sep = " ";
        }
        if let Some(g) = &self.group_by {
            write!(f, "{sep}GROUP BY {}", g.name)?;
            sep = " ";
        }
        for (i, o) in self.order_by.iter().enumerate() {
            let head = if i == 0 { "ORDER BY " } else { ", " };
            let dir = if o.descending { "DESC" } else { "ASC" };
            write!(
                f,
                "{}{head}{} {dir}",
                if i == 0 { sep } else { "" },
                o.field.name()
            )?;
        }
        Ok(())
    }
}
