//! The order List returns executions in, shared by every store.
//!
//! Temporal's SQL visibility orders by `coalesce(CloseTime, max) DESC, StartTime DESC, RunId
//! ASC`: running executions (no close time) first, then the most recently closed, then the most
//! recently started, with the run id breaking ties. [`DefaultSortKey`] is that order as a
//! value a store can keep in a sorted map or put in a page token.
//!
//! `ORDER BY` on StartTime, CloseTime or ExecutionTime overrides it; an execution without the
//! attribute sorts after every execution that has it, in either direction (as Elasticsearch
//! does by default), and ties fall back to the default order.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::ast::{OrderBy, Query};
use crate::attributes::names;
use crate::eval::{Record, RecordValue};

/// An execution's place in the default order. `Ord` puts the first execution to return first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefaultSortKey {
    /// `None` while running.
    pub close_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub run_id: String,
}

impl DefaultSortKey {
    pub fn of(record: &impl Record) -> Self {
        DefaultSortKey {
            close_time: datetime(record, names::CLOSE_TIME),
            start_time: datetime(record, names::START_TIME),
            run_id: match record.value(names::RUN_ID) {
                Some(RecordValue::Str(s)) => s.to_owned(),
                _ => String::new(),
            },
        }
    }
}

impl Ord for DefaultSortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Running (no close time) counts as closing at the end of time; newest first.
        let close = match (self.close_time, other.close_time) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => b.cmp(&a),
        };
        close
            .then_with(|| other.start_time.cmp(&self.start_time))
            .then_with(|| self.run_id.cmp(&other.run_id))
    }
}

impl PartialOrd for DefaultSortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two executions in the default order.
pub fn compare_default(a: &impl Record, b: &impl Record) -> Ordering {
    DefaultSortKey::of(a).cmp(&DefaultSortKey::of(b))
}

/// Compares two executions by `ORDER BY` items, then by the default order.
pub fn compare_ordered(order_by: &[OrderBy], a: &impl Record, b: &impl Record) -> Ordering {
    for item in order_by {
        let name = item.field.name();
        let ord = match (datetime(a, name), datetime(b, name)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if item.descending => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    compare_default(a, b)
}

impl Query {
    /// Compares two executions in the order this query lists them.
    pub fn compare(&self, a: &impl Record, b: &impl Record) -> Ordering {
        compare_ordered(&self.order_by, a, b)
    }
}

fn datetime(record: &impl Record, name: &str) -> Option<DateTime<Utc>> {
    match record.value(name)? {
        RecordValue::Datetime(t) => Some(t),
        RecordValue::Int(nanos) => Some(DateTime::from_timestamp_nanos(nanos)),
        _ => None,
    }
}
