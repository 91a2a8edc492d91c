//! Bind values going out and rows coming back.
//!
//! Values are built as [`CqlValue`]s of exactly the column's CQL type (the unit tests check
//! every statement's values against the schema). Rows are read by column name, never by
//! position: the result of a failed lightweight transaction has different columns on
//! Cassandra and ScyllaDB, and depends on the statement.

use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};
use temper_persistence::StoreError;

/// The values bound to one statement, in bind-marker order.
pub(crate) type Values = Vec<CqlValue>;

/// The encoding tag stored beside every blob: the services encode blobs with protobuf
/// (`temper.persistence.v1.*`, `temporal.api.history.v1.History`). A blob with another tag
/// was written by a newer temper in a format this one cannot read.
pub(crate) const ENCODING: &str = "proto3";

/// The name of the column a lightweight transaction's result leads with.
pub(crate) const APPLIED: &str = "[applied]";

pub(crate) fn int(v: i32) -> CqlValue {
    CqlValue::Int(v)
}

pub(crate) fn bigint(v: i64) -> CqlValue {
    CqlValue::BigInt(v)
}

pub(crate) fn text(v: &str) -> CqlValue {
    CqlValue::Text(v.to_owned())
}

pub(crate) fn blob(v: &[u8]) -> CqlValue {
    CqlValue::Blob(v.to_vec())
}

/// The value of a `LIMIT ?` marker (an `int`).
pub(crate) fn limit(n: usize) -> CqlValue {
    CqlValue::Int(i32::try_from(n).unwrap_or(i32::MAX).max(1))
}

/// Rows of one result (or of several pages of it), with their column names.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Rows {
    names: Vec<String>,
    rows: Vec<Vec<Option<CqlValue>>>,
}

impl Rows {
    #[cfg(test)]
    pub(crate) fn new(names: Vec<String>, rows: Vec<Vec<Option<CqlValue>>>) -> Self {
        Self { names, rows }
    }

    /// The rows of a driver result; a result without rows (a plain write) has none.
    pub(crate) fn from_result(result: QueryResult) -> Result<Self, StoreError> {
        let rows_result = match result.into_rows_result() {
            Ok(r) => r,
            Err(scylla::response::query_result::IntoRowsResultError::ResultNotRows(_)) => {
                return Ok(Self::default());
            }
            Err(e) => return Err(StoreError::Invalid(format!("reading a result: {e}"))),
        };
        let names = rows_result
            .column_specs()
            .iter()
            .map(|spec| spec.name().to_owned())
            .collect();
        let rows = rows_result
            .rows::<Row>()
            .map_err(|e| StoreError::Invalid(format!("reading result rows: {e}")))?
            .map(|row| row.map(|r| r.columns))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Invalid(format!("decoding a result row: {e}")))?;
        Ok(Self { names, rows })
    }

    pub(crate) fn column_names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Append the rows of the next page.
    pub(crate) fn extend(&mut self, page: Rows) {
        if self.names.is_empty() {
            self.names = page.names;
        }
        self.rows.extend(page.rows);
    }

    pub(crate) fn truncate(&mut self, n: usize) {
        self.rows.truncate(n);
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = RowView<'_>> {
        self.rows.iter().map(|values| RowView {
            names: &self.names,
            values,
        })
    }

    pub(crate) fn first(&self) -> Option<RowView<'_>> {
        self.iter().next()
    }

    /// `[applied]` of a lightweight transaction's result.
    pub(crate) fn applied(&self) -> Result<bool, StoreError> {
        let Some(row) = self.first() else {
            return Err(StoreError::Invalid(
                "a conditional statement returned no [applied] row".to_owned(),
            ));
        };
        match row.value(APPLIED) {
            Some(CqlValue::Boolean(applied)) => Ok(*applied),
            other => Err(StoreError::Invalid(format!(
                "a conditional statement returned {other:?} for [applied]"
            ))),
        }
    }
}

/// One row, read by column name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowView<'a> {
    names: &'a [String],
    values: &'a [Option<CqlValue>],
}

impl<'a> RowView<'a> {
    /// The column's value; `None` if the result has no such column or it is null.
    pub(crate) fn value(&self, column: &str) -> Option<&'a CqlValue> {
        let i = self.names.iter().position(|n| n == column)?;
        self.values.get(i)?.as_ref()
    }

    /// Whether the result has the column at all (null or not).
    #[cfg(test)]
    pub(crate) fn has_column(&self, column: &str) -> bool {
        self.names.iter().any(|n| n == column)
    }

    pub(crate) fn opt_bigint(&self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.value(column) {
            None => Ok(None),
            Some(CqlValue::BigInt(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_type(column, "bigint", other)),
        }
    }

    pub(crate) fn opt_int(&self, column: &str) -> Result<Option<i32>, StoreError> {
        match self.value(column) {
            None => Ok(None),
            Some(CqlValue::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(wrong_type(column, "int", other)),
        }
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<&'a str>, StoreError> {
        match self.value(column) {
            None => Ok(None),
            Some(CqlValue::Text(v) | CqlValue::Ascii(v)) => Ok(Some(v.as_str())),
            Some(other) => Err(wrong_type(column, "text", other)),
        }
    }

    pub(crate) fn opt_blob(&self, column: &str) -> Result<Option<&'a [u8]>, StoreError> {
        match self.value(column) {
            None => Ok(None),
            Some(CqlValue::Blob(v)) => Ok(Some(v.as_slice())),
            Some(other) => Err(wrong_type(column, "blob", other)),
        }
    }

    pub(crate) fn bigint(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_bigint(column)?.ok_or_else(|| missing(column))
    }

    pub(crate) fn int(&self, column: &str) -> Result<i32, StoreError> {
        self.opt_int(column)?.ok_or_else(|| missing(column))
    }

    pub(crate) fn text(&self, column: &str) -> Result<&'a str, StoreError> {
        self.opt_text(column)?.ok_or_else(|| missing(column))
    }

    /// A blob and its encoding tag. An empty blob comes back from Cassandra as an empty
    /// value, never as null, but a null is read as empty too.
    pub(crate) fn encoded_blob(
        &self,
        column: &str,
        encoding_column: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let encoding = self.opt_text(encoding_column)?;
        match encoding {
            Some(ENCODING) => {}
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "column {column} is encoded as {other:?}; this temper reads only \
                     {ENCODING:?} (was it written by a newer temper?)"
                )));
            }
            None => {
                return Err(StoreError::Invalid(format!(
                    "column {column} has no encoding tag in {encoding_column}"
                )));
            }
        }
        Ok(self
            .opt_blob(column)?
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }
}

fn wrong_type(column: &str, expected: &str, got: &CqlValue) -> StoreError {
    StoreError::Invalid(format!(
        "column {column}: expected {expected}, the store returned {got:?} (is the schema \
         the one this temper expects?)"
    ))
}

fn missing(column: &str) -> StoreError {
    StoreError::Invalid(format!("column {column} is unexpectedly null or missing"))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Build result rows the way the server returns them, for decoding tests.

    use super::*;

    /// Rows with the given column names; each row gives `(column, value)` pairs, and the
    /// columns a row leaves out are null.
    pub(crate) fn rows(names: &[&str], rows: &[&[(&str, CqlValue)]]) -> Rows {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let rows = rows
            .iter()
            .map(|row| {
                names
                    .iter()
                    .map(|n| row.iter().find(|(c, _)| c == n).map(|(_, v)| v.clone()))
                    .collect()
            })
            .collect();
        Rows::new(names, rows)
    }

    /// A row holding exactly the values a statement bound to `columns` (for round trips:
    /// write values -> the row a SELECT of those columns returns).
    pub(crate) fn row_from_binds(columns: &[&str], values: &[CqlValue]) -> Rows {
        assert_eq!(columns.len(), values.len(), "one value per column");
        let pairs: Vec<(&str, CqlValue)> = columns
            .iter()
            .copied()
            .zip(values.iter().cloned())
            .collect();
        rows(columns, &[&pairs])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::rows;
    use super::*;

    #[test]
    fn columns_are_read_by_name_and_type() {
        let r = rows(
            &["[applied]", "range_id", "name", "data", "data_encoding"],
            &[&[
                ("[applied]", CqlValue::Boolean(false)),
                ("range_id", bigint(7)),
                ("name", text("n")),
                ("data", blob(b"xyz")),
                ("data_encoding", text(ENCODING)),
            ]],
        );
        assert!(!r.applied().expect("applied"));
        let row = r.first().expect("row");
        assert_eq!(row.bigint("range_id").expect("range_id"), 7);
        assert_eq!(row.text("name").expect("name"), "n");
        assert_eq!(
            row.encoded_blob("data", "data_encoding").expect("blob"),
            b"xyz"
        );
        assert_eq!(row.opt_bigint("absent").expect("absent"), None);
        assert!(!row.has_column("absent"));
        assert!(row.bigint("absent").is_err());
        assert!(row.int("range_id").is_err(), "bigint is not int");
        assert!(row.text("range_id").is_err());
    }

    #[test]
    fn unknown_encodings_are_refused() {
        let r = rows(
            &["data", "data_encoding"],
            &[&[("data", blob(b"x")), ("data_encoding", text("json"))]],
        );
        let err = r
            .first()
            .expect("row")
            .encoded_blob("data", "data_encoding")
            .expect_err("json is not ours");
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.contains("newer temper")),
            "{err:?}"
        );
        let untagged = rows(&["data"], &[&[("data", blob(b"x"))]]);
        assert!(
            untagged
                .first()
                .expect("row")
                .encoded_blob("data", "data_encoding")
                .is_err()
        );
        // An empty blob is fine.
        let empty = rows(
            &["data", "data_encoding"],
            &[&[("data_encoding", text(ENCODING))]],
        );
        assert_eq!(
            empty
                .first()
                .expect("row")
                .encoded_blob("data", "data_encoding")
                .expect("empty"),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn applied_must_be_there() {
        assert!(Rows::default().applied().is_err());
        let r = rows(&["x"], &[&[("x", int(1))]]);
        assert!(r.applied().is_err());
    }

    #[test]
    fn limits_fit_an_int() {
        assert_eq!(limit(10), CqlValue::Int(10));
        assert_eq!(limit(usize::MAX), CqlValue::Int(i32::MAX));
        assert_eq!(limit(0), CqlValue::Int(1), "CQL refuses LIMIT 0");
    }
}
