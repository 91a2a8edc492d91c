//! The checker: a syntax tree to a [`Query`], or Temporal's error for it.
//!
//! Checks run in Temporal's order, so that a query with several faults reports the one Temporal
//! reports: `LIMIT`, then the filter (for each condition: the column, then the values, then the
//! operator), then `GROUP BY`, then `ORDER BY`.

use crate::ast::{
    Attribute, CompareOp, Expr, Operator, OrderBy, Predicate, Query, SortField, Value,
};
use crate::attributes::{SearchAttributes, ValueType, names};
use crate::error::QueryError;
use crate::eval::text_query_words;
use crate::syntax::{IsWhat, Lit, Operand, RawExpr, RawOp, RawQuery};
use crate::values::typed_value;

pub(crate) fn check(raw: RawQuery, attrs: &SearchAttributes) -> Result<Query, QueryError> {
    let mut checker = Checker {
        attrs,
        seen_division: false,
    };
    if raw.has_limit {
        return Err(QueryError::not_supported("'LIMIT' clause"));
    }
    let filter = raw.filter.map(|e| checker.expr(e)).transpose()?;

    if raw.group_by.len() > 1 {
        return Err(QueryError::not_supported(
            "'GROUP BY' clause supports only a single field",
        ));
    }
    let mut group_by = None;
    for operand in &raw.group_by {
        let attr = checker.column(operand)?;
        if attr.name != names::EXECUTION_STATUS {
            return Err(QueryError::not_supported(format!(
                "'GROUP BY' clause is not supported for search attribute {}",
                attr.alias
            )));
        }
        group_by = Some(attr);
    }

    let mut order_by = Vec::new();
    for item in &raw.order_by {
        let attr = checker.column(&item.column)?;
        let field = SortField::from_name(&attr.name).ok_or_else(|| {
            QueryError::not_supported(format!(
                "'ORDER BY' clause is supported only for StartTime, CloseTime and ExecutionTime, not for search attribute {}",
                attr.alias
            ))
        })?;
        order_by.push(OrderBy {
            field,
            descending: item.descending,
        });
    }

    Ok(Query {
        filter,
        implicit_namespace_division: !checker.seen_division,
        group_by,
        order_by,
    })
}

struct Checker<'a> {
    attrs: &'a SearchAttributes,
    seen_division: bool,
}

/// The Go type Temporal's parser gives an operand, for the messages that name it.
fn go_type(operand: &Operand) -> &'static str {
    match operand {
        Operand::Column(_) => "*sqlparser.ColName",
        Operand::Lit(Lit::Bool(_)) => "sqlparser.BoolVal",
        Operand::Lit(Lit::Null) => "*sqlparser.NullVal",
        Operand::Lit(_) => "*sqlparser.SQLVal",
        Operand::Tuple(_) => "sqlparser.ValTuple",
        Operand::Func(_) => "*sqlparser.FuncExpr",
    }
}

/// A value operand after typing: one value, or a parenthesised list.
enum Values {
    One(Value),
    List(Vec<Value>),
}

impl Checker<'_> {
    fn column(&mut self, operand: &Operand) -> Result<Attribute, QueryError> {
        let Operand::Column(alias) = operand else {
            return Err(QueryError::invalid(format!(
                "must be a column name but was {}",
                go_type(operand)
            )));
        };
        let (name, ty) = self
            .attrs
            .resolve(alias)
            .ok_or_else(|| QueryError::unknown_attribute(alias))?;
        if name == names::TEMPORAL_NAMESPACE_DIVISION {
            self.seen_division = true;
        }
        Ok(Attribute::new(alias, name, ty))
    }

    fn value(&self, operand: &Operand, attr: &Attribute) -> Result<Values, QueryError> {
        match operand {
            Operand::Lit(lit) => typed_value(lit, attr).map(Values::One),
            Operand::Tuple(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    match self.value(item, attr)? {
                        Values::One(v) => values.push(v),
                        Values::List(_) => {
                            return Err(QueryError::invalid(
                                "unexpected value type sqlparser.ValTuple",
                            ));
                        }
                    }
                }
                Ok(Values::List(values))
            }
            Operand::Func(_) => Err(QueryError::not_supported("nested func")),
            Operand::Column(name) => Err(QueryError::not_supported(format!(
                "column name on the right side of comparison expression (did you forget to quote {name:?}?)"
            ))),
        }
    }

    fn single(&self, operand: &Operand, attr: &Attribute) -> Result<Value, QueryError> {
        match self.value(operand, attr)? {
            Values::One(v) => Ok(v),
            Values::List(_) => Err(QueryError::invalid(
                "unexpected value type sqlparser.ValTuple: a list of values goes only after IN or NOT IN",
            )),
        }
    }

    fn expr(&mut self, raw: RawExpr) -> Result<Expr, QueryError> {
        match raw {
            RawExpr::And(items) => Ok(Expr::And(self.exprs(items)?)),
            RawExpr::Or(items) => Ok(Expr::Or(self.exprs(items)?)),
            RawExpr::Not(inner) => Ok(Expr::Not(Box::new(self.expr(*inner)?))),
            RawExpr::Bare(Operand::Column(_)) => Err(QueryError::invalid("incomplete expression")),
            RawExpr::Bare(Operand::Func(_)) => {
                Err(QueryError::not_supported("function expression"))
            }
            RawExpr::Bare(other) => Err(QueryError::not_supported(format!(
                "expression of type {}",
                go_type(&other)
            ))),
            RawExpr::Compare { left, op, right } => self.compare(&left, op, &right),
            RawExpr::Between {
                left,
                from,
                to,
                negated,
            } => {
                let attribute = self.column(&left)?;
                if !matches!(
                    attribute.value_type,
                    ValueType::Datetime | ValueType::Double | ValueType::Int | ValueType::Keyword
                ) {
                    return Err(QueryError::invalid(format!(
                        "cannot do range condition on search attribute '{}' of type {}",
                        attribute.alias, attribute.value_type
                    )));
                }
                let from = self.single(&from, &attribute)?;
                let to = self.single(&to, &attribute)?;
                Ok(predicate(
                    attribute,
                    Operator::Between { from, to, negated },
                ))
            }
            RawExpr::Is { left, what } => {
                let attribute = self.column(&left)?;
                let negated = match what {
                    IsWhat::Null => false,
                    IsWhat::NotNull => true,
                    _ => {
                        return Err(QueryError::invalid(
                            "'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'",
                        ));
                    }
                };
                Ok(predicate(attribute, Operator::IsNull { negated }))
            }
        }
    }

    fn exprs(&mut self, items: Vec<RawExpr>) -> Result<Vec<Expr>, QueryError> {
        items.into_iter().map(|e| self.expr(e)).collect()
    }

    fn compare(&mut self, left: &Operand, op: RawOp, right: &Operand) -> Result<Expr, QueryError> {
        let attribute = self.column(left)?;
        let values = self.value(right, &attribute)?;
        if !operator_allowed(attribute.value_type, op) || starts_with_on_status(&attribute, op) {
            return Err(QueryError::not_supported(format!(
                "operator '{}' not supported for {} type search attribute '{}'",
                op.as_str(),
                attribute.value_type,
                attribute.alias
            )));
        }
        let operator = match (op, values) {
            (RawOp::In | RawOp::NotIn, Values::List(values)) => Operator::In {
                values,
                negated: op == RawOp::NotIn,
            },
            (RawOp::In | RawOp::NotIn, Values::One(v)) => Operator::In {
                values: vec![v],
                negated: op == RawOp::NotIn,
            },
            (_, Values::List(_)) => {
                return Err(QueryError::invalid(
                    "unexpected value type sqlparser.ValTuple: a list of values goes only after IN or NOT IN",
                ));
            }
            (RawOp::StartsWith | RawOp::NotStartsWith, Values::One(v)) => {
                let Value::String(prefix) = v else {
                    return Err(QueryError::invalid(format!(
                        "right-hand side of '{}' must be a literal string (got: {v})",
                        op.as_str()
                    )));
                };
                Operator::StartsWith {
                    prefix,
                    negated: op == RawOp::NotStartsWith,
                }
            }
            (_, Values::One(v)) => {
                let cmp = match op {
                    RawOp::Eq => CompareOp::Eq,
                    RawOp::Ne => CompareOp::Ne,
                    RawOp::Lt => CompareOp::Lt,
                    RawOp::Le => CompareOp::Le,
                    RawOp::Gt => CompareOp::Gt,
                    _ => CompareOp::Ge,
                };
                Operator::Compare(cmp, v)
            }
        };
        if attribute.value_type == ValueType::Text
            && let Operator::Compare(_, Value::String(s)) = &operator
            && text_query_words(s).next().is_none()
        {
            return Err(QueryError::invalid(
                "unexpected value for Text type search attribute (no tokens found)",
            ));
        }
        Ok(predicate(attribute, operator))
    }
}

fn predicate(attribute: Attribute, operator: Operator) -> Expr {
    Expr::Predicate(Predicate {
        attribute,
        operator,
    })
}

/// Temporal's operator lists per type (`converter.go`).
fn operator_allowed(ty: ValueType, op: RawOp) -> bool {
    use RawOp::*;
    match ty {
        ValueType::Keyword => matches!(
            op,
            Eq | Ne | Lt | Le | Gt | Ge | In | NotIn | StartsWith | NotStartsWith
        ),
        ValueType::KeywordList => matches!(op, Eq | Ne | In | NotIn),
        ValueType::Text => matches!(op, Eq | Ne),
        ValueType::Int | ValueType::Double | ValueType::Bool | ValueType::Datetime => {
            matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | NotIn)
        }
    }
}

/// `ExecutionStatus` is a Keyword, but stored as a number in SQL, where Temporal cannot turn
/// STARTS_WITH into a prefix match; it refuses it there, and so do we.
fn starts_with_on_status(attr: &Attribute, op: RawOp) -> bool {
    attr.name == names::EXECUTION_STATUS && matches!(op, RawOp::StartsWith | RawOp::NotStartsWith)
}
