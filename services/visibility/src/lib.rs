//! The visibility query language of `ListWorkflowExecutions`, `CountWorkflowExecutions` and
//! `ScanWorkflowExecutions`: a parser, a checker against search attributes, and an in-memory
//! evaluator. No IO; stores translate the checked [`Query`] into their own terms.
//!
//! ```
//! use temper_visibility::{Query, SearchAttributes, ValueType};
//!
//! let attrs = SearchAttributes::system_and_predefined()
//!     .with_custom("CustomerId", ValueType::Keyword)
//!     .expect("not a reserved name");
//! let q = Query::parse("CustomerId = 'c-1' AND ExecutionStatus = 'Running'", &attrs)
//!     .expect("a valid query");
//! assert_eq!(
//!     q.to_string(),
//!     "TemporalNamespaceDivision IS NULL AND CustomerId = 'c-1' AND ExecutionStatus = 'Running'"
//! );
//! let err = Query::parse("Nope = 1", &attrs).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid query: invalid expression: column name 'Nope' is not a valid search attribute"
//! );
//! ```
//!
//! # Grammar
//!
//! ```text
//! query     := [filter] [GROUP BY name] [ORDER BY name [ASC|DESC] {, name [ASC|DESC]}]
//! filter    := and {OR and}
//! and       := not {AND not}
//! not       := NOT not | predicate | '(' filter ')'
//! predicate := name ( '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=' ) value
//!            | name [NOT] IN '(' value {, value} ')'
//!            | name [NOT] BETWEEN value AND value
//!            | name [NOT] STARTS_WITH value
//!            | name IS [NOT] NULL
//! name      := identifier | `backticked identifier`
//! value     := 'string' | "string" | [-]number | TRUE | FALSE
//! ```
//!
//! Keywords are case-insensitive; names are case-sensitive. An empty query matches everything.
//! `&&` and `||` stand for AND and OR. Strings take doubled quotes (`'it''s'`) and MySQL's
//! backslash escapes. LIKE, REGEXP, `<=>`, functions, `IS TRUE`/`IS FALSE` and LIMIT parse but
//! are refused with Temporal's "not supported" errors.
//!
//! # Types
//!
//! Each name resolves to a search attribute in a [`SearchAttributes`] registry (system,
//! predefined and the namespace's custom attributes; see [`SearchAttributes::resolve`] for the
//! `Temporal` prefix and `ScheduleId` aliases). Its [`ValueType`] decides the values and
//! operators allowed, as in Temporal:
//!
//! | type | values | operators |
//! |---|---|---|
//! | Keyword | string | all comparisons, IN, BETWEEN, STARTS_WITH |
//! | KeywordList | string | `=` (contains), `!=`, IN, NOT IN |
//! | Text | string | `=` (contains a word), `!=` |
//! | Int, Double | number | comparisons, IN, BETWEEN |
//! | Bool | TRUE, FALSE | comparisons, IN |
//! | Datetime | RFC 3339 string, or integer nanoseconds | comparisons, IN, BETWEEN |
//!
//! `ExecutionStatus` takes a status name (`'Running'`) or number; `ExecutionDuration` takes
//! nanoseconds, a Go duration (`'2h45m'`, `'1.5d'`) or `'hh:mm:ss'`. Unless the query names
//! `TemporalNamespaceDivision`, `TemporalNamespaceDivision IS NULL` is added to it
//! ([`Query::implicit_namespace_division`]). `ORDER BY` takes StartTime, CloseTime and
//! ExecutionTime; `GROUP BY` only ExecutionStatus (for Count; the caller refuses it elsewhere).
//! The evaluation rules per type are in [`eval`]; the default order is in [`order`].
//!
//! # Errors
//!
//! [`QueryError`]'s `Display` is the `INVALID_ARGUMENT` message Temporal gives:
//! `invalid query: ` then `malformed SQL query: ...`, `operation is not supported: ...` or
//! `invalid expression: ...`. Syntax error positions count characters of the query, from 1.
//! Parsing never panics, whatever the input.

mod ast;
mod attributes;
mod check;
mod error;
pub mod eval;
mod lexer;
pub mod order;
mod status;
mod syntax;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_eval;

pub use ast::{Attribute, CompareOp, Expr, Operator, OrderBy, Predicate, Query, SortField, Value};
pub use attributes::{Category, RegistryError, SearchAttributes, ValueType, names};
pub use error::{ErrorKind, QueryError};
pub use eval::{Record, RecordValue};
pub use order::{DefaultSortKey, compare_default, compare_ordered};
pub use status::ExecutionStatus;
pub use values::{parse_datetime, parse_duration_nanos};

impl Query {
    /// Parses and checks a query against the search attributes of its namespace.
    pub fn parse(query: &str, attributes: &SearchAttributes) -> Result<Query, QueryError> {
        let raw = syntax::parse(query)?;
        check::check(raw, attributes)
    }
}
