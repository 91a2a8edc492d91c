//! The one error a query can fail with, worded as the Temporal server words it.
//!
//! Temporal answers a bad visibility query with `INVALID_ARGUMENT` and a message of the form
//! `invalid query: <kind>: <detail>`, where `<kind>` is one of three fixed phrases. SDKs and the
//! CLI show that text to the user as is, so [`QueryError`]'s `Display` gives the whole message.

use std::fmt;

/// Which of Temporal's three error families a query error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not valid query syntax: `malformed SQL query`.
    Malformed,
    /// Valid syntax that Temporal does not support: `operation is not supported`.
    NotSupported,
    /// Valid syntax, but a name, operator or value does not fit: `invalid expression`.
    InvalidExpression,
}

impl ErrorKind {
    /// The fixed phrase Temporal puts before the detail.
    pub fn phrase(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed SQL query",
            ErrorKind::NotSupported => "operation is not supported",
            ErrorKind::InvalidExpression => "invalid expression",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// A query that cannot be run. `Display` gives the full `INVALID_ARGUMENT` message, e.g.
/// `invalid query: invalid expression: column name 'X' is not a valid search attribute`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query: {kind}: {detail}")]
pub struct QueryError {
    kind: ErrorKind,
    detail: String,
    /// The name, when the query names an attribute that does not exist.
    unknown_attribute: Option<String>,
}

impl QueryError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        QueryError {
            kind,
            detail: detail.into(),
            unknown_attribute: None,
        }
    }

    /// The query names `alias`, which is no search attribute.
    pub(crate) fn unknown_attribute(alias: &str) -> Self {
        QueryError {
            unknown_attribute: Some(alias.to_owned()),
            ..Self::invalid(format!(
                "column name '{alias}' is not a valid search attribute"
            ))
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, detail)
    }

    pub(crate) fn not_supported(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotSupported, detail)
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidExpression, detail)
    }

    /// The error family.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The text after `<kind>: `.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The attribute the query names that does not exist, if that is the error.
    pub fn unknown_attribute_name(&self) -> Option<&str> {
        self.unknown_attribute.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_full_temporal_message() {
        let e = QueryError::invalid("column name 'X' is not a valid search attribute");
        assert_eq!(
            e.to_string(),
            "invalid query: invalid expression: column name 'X' is not a valid search attribute"
        );
        assert_eq!(
            QueryError::not_supported("'LIMIT' clause").to_string(),
            "invalid query: operation is not supported: 'LIMIT' clause"
        );
        assert_eq!(
            QueryError::malformed("syntax error at position 3").to_string(),
            "invalid query: malformed SQL query: syntax error at position 3"
        );
        assert_eq!(e.kind(), ErrorKind::InvalidExpression);
    }
}
