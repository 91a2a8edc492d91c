//! ListWorkflowExecutions, ScanWorkflowExecutions, CountWorkflowExecutions and the legacy
//! ListOpen / ListClosed RPCs over the store's visibility records.
//!
//! A query is parsed and checked by `temper-visibility` against the namespace's search
//! attributes. The conditions a store can apply itself (status, type, workflow id, start and
//! close time ranges, the implicit namespace division) become a [`VisibilityFilter`]; every
//! record the store returns is still checked against the whole query in memory
//! ([`Query::matches`]), so results are exact whatever the store covered. The default order
//! pages with the store's keyset cursor; an `ORDER BY` query reads every candidate record and
//! sorts them here (fine for a dev server's numbers of runs, and documented).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use temper_persistence::{VisibilityCursor, VisibilityFilter, VisibilityRecord, VisibilityStore};
use temper_proto::temporal::api::common::v1::{
    Memo, Payload, SearchAttributes as SaPayloads, WorkflowExecution, WorkflowType,
};
use temper_proto::temporal::api::enums::v1::IndexedValueType;
use temper_proto::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temper_proto::wkt;
use temper_visibility::{
    CompareOp, Expr, Operator, Query, Record, RecordValue, SearchAttributes, Value, ValueType,
    names, parse_datetime,
};
use tonic::Status;

use crate::namespaces::Namespace;

/// Temporal's `frontend.visibilityMaxPageSize`: the default and largest page.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Records read from the store per call while filtering in memory.
const BATCH: usize = 500;

/// The page size a request asks for, as Temporal reads it.
pub fn page_size(requested: i32) -> usize {
    usize::try_from(requested)
        .ok()
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .unwrap_or(MAX_PAGE_SIZE)
}

/// The search attributes queries of `ns` may name.
pub fn registry(ns: &Namespace) -> SearchAttributes {
    let mut attrs = SearchAttributes::system_and_predefined();
    for (name, t) in &ns.detail.search_attributes {
        if let Some(ty) = value_type(*t) {
            // A name the registry refuses cannot have been registered; skip it.
            let _ = attrs.add_custom(name, ty);
        }
    }
    attrs
}

pub fn value_type(t: i32) -> Option<ValueType> {
    Some(match IndexedValueType::try_from(t).ok()? {
        IndexedValueType::Text => ValueType::Text,
        IndexedValueType::Keyword => ValueType::Keyword,
        IndexedValueType::Int => ValueType::Int,
        IndexedValueType::Double => ValueType::Double,
        IndexedValueType::Bool => ValueType::Bool,
        IndexedValueType::Datetime => ValueType::Datetime,
        IndexedValueType::KeywordList => ValueType::KeywordList,
        IndexedValueType::Unspecified => return None,
    })
}

/// Give each search attribute of `sa` the `type` metadata of its registered type (unless it
/// has one), as Temporal's responses carry it.
pub fn tag_types(
    sa: &mut temper_proto::temporal::api::common::v1::SearchAttributes,
    attrs: &SearchAttributes,
) {
    for (name, p) in sa.indexed_fields.iter_mut() {
        if let Some((ty, _)) = attrs.get(name) {
            p.metadata
                .entry("type".to_owned())
                .or_insert_with(|| ty.as_str().as_bytes().to_vec());
        }
    }
}

/// Parse a query; a bad one is INVALID_ARGUMENT with the crate's (Temporal's) message.
pub fn parse(query: &str, attrs: &SearchAttributes) -> Result<Query, Status> {
    Query::parse(query, attrs).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The opaque page token: the position of the last execution returned.
#[derive(Clone, PartialEq, Message)]
struct PageToken {
    #[prost(int64, optional, tag = "1")]
    close_time_ns: Option<i64>,
    #[prost(int64, tag = "2")]
    start_time_ns: i64,
    #[prost(int64, tag = "3")]
    execution_time_ns: i64,
    #[prost(string, tag = "4")]
    run_id: String,
}

impl PageToken {
    fn of(r: &VisibilityRecord) -> Self {
        PageToken {
            close_time_ns: r.close_time_ns,
            start_time_ns: r.start_time_ns,
            execution_time_ns: r.execution_time_ns,
            run_id: r.run_id.clone(),
        }
    }

    fn decode_token(bytes: &[u8]) -> Result<Option<Self>, Status> {
        if bytes.is_empty() {
            return Ok(None);
        }
        PageToken::decode(bytes)
            .map(Some)
            .map_err(|_| Status::invalid_argument("Invalid NextPageToken."))
    }

    fn cursor(&self) -> VisibilityCursor {
        VisibilityCursor {
            close_time_ns: self.close_time_ns,
            start_time_ns: self.start_time_ns,
            run_id: self.run_id.clone(),
        }
    }
}

/// The sort fields of a page token, as a record the query's order can compare.
impl Record for PageToken {
    fn value(&self, name: &str) -> Option<RecordValue<'_>> {
        match name {
            names::CLOSE_TIME => self.close_time_ns.map(RecordValue::Int),
            names::START_TIME => Some(RecordValue::Int(self.start_time_ns)),
            names::EXECUTION_TIME => Some(RecordValue::Int(self.execution_time_ns)),
            names::RUN_ID => Some(RecordValue::Str(&self.run_id)),
            _ => None,
        }
    }
}

/// A decoded custom or settable search attribute value.
#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Datetime(chrono::DateTime<chrono::Utc>),
    List(Vec<String>),
}

/// A visibility record with its search attributes decoded, as the evaluator reads it.
pub struct Row {
    pub record: VisibilityRecord,
    attributes: HashMap<String, Decoded>,
    payloads: SaPayloads,
}

impl Row {
    pub fn new(record: VisibilityRecord, attrs: &SearchAttributes) -> Self {
        let payloads = SaPayloads::decode(record.search_attributes.as_slice()).unwrap_or_default();
        let attributes = payloads
            .indexed_fields
            .iter()
            .filter_map(|(name, p)| {
                let (ty, _) = attrs.get(name)?;
                Some((name.clone(), decode_value(p, ty)?))
            })
            .collect();
        Row {
            record,
            attributes,
            payloads,
        }
    }

    fn execution_duration(&self) -> Option<i64> {
        let close = self.record.close_time_ns?;
        Some(close.saturating_sub(self.record.execution_time_ns).max(0))
    }

    /// The entry List returns for this run.
    pub fn info(&self, attrs: &SearchAttributes) -> WorkflowExecutionInfo {
        let r = &self.record;
        let mut sa = self.payloads.clone();
        tag_types(&mut sa, attrs);
        WorkflowExecutionInfo {
            execution: Some(WorkflowExecution {
                workflow_id: r.workflow_id.clone(),
                run_id: r.run_id.clone(),
            }),
            r#type: Some(WorkflowType {
                name: r.workflow_type.clone(),
            }),
            start_time: Some(timestamp(r.start_time_ns)),
            close_time: r.close_time_ns.map(timestamp),
            status: r.status,
            history_length: r.history_length,
            execution_time: Some(timestamp(r.execution_time_ns)),
            memo: Some(Memo::decode(r.memo.as_slice()).unwrap_or_default()),
            search_attributes: (!sa.indexed_fields.is_empty()).then_some(sa),
            task_queue: r.task_queue.clone(),
            state_transition_count: r.state_transition_count,
            history_size_bytes: r.history_size_bytes,
            execution_duration: self.execution_duration().map(|ns| wkt::Duration {
                seconds: ns / 1_000_000_000,
                nanos: i32::try_from(ns % 1_000_000_000).unwrap_or(0),
            }),
            parent_execution: r.parent_workflow_id.as_ref().map(|w| WorkflowExecution {
                workflow_id: w.clone(),
                run_id: r.parent_run_id.clone().unwrap_or_default(),
            }),
            root_execution: Some(WorkflowExecution {
                workflow_id: r.root_workflow_id.clone(),
                run_id: r.root_run_id.clone(),
            }),
            ..Default::default()
        }
    }
}

fn s(v: &str) -> Option<RecordValue<'_>> {
    Some(RecordValue::Str(v))
}

impl Record for Row {
    fn value(&self, name: &str) -> Option<RecordValue<'_>> {
        let r = &self.record;
        match name {
            names::WORKFLOW_ID => s(&r.workflow_id),
            names::RUN_ID => s(&r.run_id),
            names::WORKFLOW_TYPE => s(&r.workflow_type),
            names::TASK_QUEUE => s(&r.task_queue),
            names::EXECUTION_STATUS => Some(RecordValue::Int(i64::from(r.status))),
            names::START_TIME => Some(RecordValue::Int(r.start_time_ns)),
            names::EXECUTION_TIME => Some(RecordValue::Int(r.execution_time_ns)),
            names::CLOSE_TIME => r.close_time_ns.map(RecordValue::Int),
            names::HISTORY_LENGTH => Some(RecordValue::Int(r.history_length)),
            names::HISTORY_SIZE_BYTES => Some(RecordValue::Int(r.history_size_bytes)),
            names::STATE_TRANSITION_COUNT => Some(RecordValue::Int(r.state_transition_count)),
            names::EXECUTION_DURATION => self.execution_duration().map(RecordValue::Int),
            names::PARENT_WORKFLOW_ID => r.parent_workflow_id.as_deref().and_then(s),
            names::PARENT_RUN_ID => r.parent_run_id.as_deref().and_then(s),
            names::ROOT_WORKFLOW_ID => s(&r.root_workflow_id),
            names::ROOT_RUN_ID => s(&r.root_run_id),
            names::TEMPORAL_NAMESPACE_DIVISION => r.namespace_division.as_deref().and_then(s),
            _ => Some(match self.attributes.get(name)? {
                Decoded::Str(v) => RecordValue::Str(v),
                Decoded::Int(v) => RecordValue::Int(*v),
                Decoded::Double(v) => RecordValue::Double(*v),
                Decoded::Bool(v) => RecordValue::Bool(*v),
                Decoded::Datetime(v) => RecordValue::Datetime(*v),
                Decoded::List(v) => RecordValue::KeywordList(v),
            }),
        }
    }
}

/// A search attribute payload (JSON, as every SDK writes them) as a value of type `ty`;
/// `None` when it does not hold one (the attribute then counts as absent).
fn decode_value(p: &Payload, ty: ValueType) -> Option<Decoded> {
    let json: serde_json::Value = serde_json::from_slice(&p.data).ok()?;
    Some(match ty {
        ValueType::Keyword | ValueType::Text => match json {
            serde_json::Value::String(s) => Decoded::Str(s),
            // A one-element list, as some SDKs send single values.
            serde_json::Value::Array(mut a) if a.len() == 1 => match a.pop()? {
                serde_json::Value::String(s) => Decoded::Str(s),
                _ => return None,
            },
            _ => return None,
        },
        ValueType::KeywordList => match json {
            serde_json::Value::String(s) => Decoded::List(vec![s]),
            serde_json::Value::Array(a) => Decoded::List(
                a.into_iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        },
        ValueType::Int => Decoded::Int(json.as_i64()?),
        ValueType::Double => Decoded::Double(json.as_f64()?),
        ValueType::Bool => Decoded::Bool(json.as_bool()?),
        ValueType::Datetime => Decoded::Datetime(parse_datetime(json.as_str()?)?),
    })
}

fn timestamp(ns: i64) -> wkt::Timestamp {
    wkt::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// What the store can apply of a query, and whether that is all of it. With `keywords`
/// (the store indexes them), equality on attributes kept in the search attributes is handed
/// down too, as a narrowing the records are still checked against.
pub fn store_filter(query: &Query, keywords: bool) -> (VisibilityFilter, bool) {
    let mut filter = VisibilityFilter::default();
    let Some(expr) = query.effective_filter() else {
        return (filter, true);
    };
    let items = match expr {
        Expr::And(items) => items,
        e => vec![e],
    };
    let mut covered = true;
    for item in &items {
        let Expr::Predicate(p) = item else {
            covered = false;
            continue;
        };
        if push_down(&mut filter, p) {
            continue;
        }
        covered = false;
        if keywords && let Some(condition) = keyword_condition(p) {
            filter.keywords.push(condition);
        }
    }
    (filter, covered)
}

/// Attributes the evaluator reads from a record's own fields rather than from its search
/// attributes (so they are not among its keywords).
const RECORD_FIELDS: &[&str] = &[
    names::WORKFLOW_ID,
    names::RUN_ID,
    names::WORKFLOW_TYPE,
    names::TASK_QUEUE,
    names::EXECUTION_STATUS,
    names::START_TIME,
    names::EXECUTION_TIME,
    names::CLOSE_TIME,
    names::HISTORY_LENGTH,
    names::HISTORY_SIZE_BYTES,
    names::STATE_TRANSITION_COUNT,
    names::EXECUTION_DURATION,
    names::PARENT_WORKFLOW_ID,
    names::PARENT_RUN_ID,
    names::ROOT_WORKFLOW_ID,
    names::ROOT_RUN_ID,
    names::TEMPORAL_NAMESPACE_DIVISION,
];

/// `(attribute, values)` for `Keyword = v`, `Keyword IN (...)` and the same on a
/// KeywordList (which means "contains") of an attribute kept in the search attributes.
fn keyword_condition(p: &temper_visibility::Predicate) -> Option<(String, Vec<String>)> {
    let name = p.attribute.name.as_str();
    if !matches!(
        p.attribute.value_type,
        ValueType::Keyword | ValueType::KeywordList
    ) || RECORD_FIELDS.contains(&name)
    {
        return None;
    }
    let string = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let values = match &p.operator {
        Operator::Compare(CompareOp::Eq, v) => vec![string(v)?],
        Operator::In {
            values,
            negated: false,
        } => values.iter().map(string).collect::<Option<_>>()?,
        _ => return None,
    };
    Some((name.to_owned(), values))
}

fn nanos(v: &Value) -> Option<i64> {
    match v {
        Value::Datetime(t) => t.timestamp_nanos_opt(),
        _ => None,
    }
}

/// Add one predicate to the filter if the store can apply it exactly.
fn push_down(f: &mut VisibilityFilter, p: &temper_visibility::Predicate) -> bool {
    let name = p.attribute.name.as_str();
    match (name, &p.operator) {
        (names::EXECUTION_STATUS, Operator::Compare(CompareOp::Eq, Value::Status(s))) => {
            set_statuses(f, vec![s.code()])
        }
        (
            names::EXECUTION_STATUS,
            Operator::In {
                values,
                negated: false,
            },
        ) => {
            let codes: Option<Vec<i32>> = values
                .iter()
                .map(|v| match v {
                    Value::Status(s) => Some(s.code()),
                    _ => None,
                })
                .collect();
            codes.is_some_and(|c| set_statuses(f, c))
        }
        (names::WORKFLOW_TYPE, Operator::Compare(CompareOp::Eq, Value::String(t)))
            if f.workflow_type.is_none() =>
        {
            f.workflow_type = Some(t.clone());
            true
        }
        (names::WORKFLOW_ID, Operator::Compare(CompareOp::Eq, Value::String(w)))
            if f.workflow_id.is_none() =>
        {
            f.workflow_id = Some(w.clone());
            true
        }
        (names::TEMPORAL_NAMESPACE_DIVISION, Operator::IsNull { negated: false }) => {
            f.no_namespace_division = true;
            true
        }
        (
            names::TEMPORAL_NAMESPACE_DIVISION,
            Operator::Compare(CompareOp::Eq, Value::String(d)),
        ) if f.namespace_division.is_none() => {
            f.namespace_division = Some(d.clone());
            true
        }
        (names::START_TIME | names::CLOSE_TIME, op) => {
            let Some((min, max)) = range(op) else {
                return false;
            };
            let (fmin, fmax) = if name == names::START_TIME {
                (&mut f.start_time_min_ns, &mut f.start_time_max_ns)
            } else {
                (&mut f.close_time_min_ns, &mut f.close_time_max_ns)
            };
            if let Some(m) = min {
                *fmin = Some(fmin.map_or(m, |o| o.max(m)));
            }
            if let Some(m) = max {
                *fmax = Some(fmax.map_or(m, |o| o.min(m)));
            }
            true
        }
        _ => false,
    }
}

fn set_statuses(f: &mut VisibilityFilter, codes: Vec<i32>) -> bool {
    f.statuses = Some(match f.statuses.take() {
        Some(old) => old.into_iter().filter(|s| codes.contains(s)).collect(),
        None => codes,
    });
    true
}

/// Inclusive nanosecond bounds of a time comparison.
fn range(op: &Operator) -> Option<(Option<i64>, Option<i64>)> {
    Some(match op {
        Operator::Compare(CompareOp::Eq, v) => (Some(nanos(v)?), Some(nanos(v)?)),
        Operator::Compare(CompareOp::Ge, v) => (Some(nanos(v)?), None),
        Operator::Compare(CompareOp::Gt, v) => (Some(nanos(v)?.checked_add(1)?), None),
        Operator::Compare(CompareOp::Le, v) => (None, Some(nanos(v)?)),
        Operator::Compare(CompareOp::Lt, v) => (None, Some(nanos(v)?.checked_sub(1)?)),
        Operator::Between {
            from,
            to,
            negated: false,
        } => (Some(nanos(from)?), Some(nanos(to)?)),
        _ => return None,
    })
}

/// Reads a namespace's visibility records for one query.
pub struct Lister<'a> {
    pub store: &'a Arc<dyn VisibilityStore>,
    pub namespace: &'a Namespace,
    pub attrs: &'a SearchAttributes,
    pub query: &'a Query,
}

impl Lister<'_> {
    /// One page of matching runs, and the token of the next page (empty at the end).
    pub async fn page(
        &self,
        page_size: usize,
        token: &[u8],
    ) -> Result<(Vec<WorkflowExecutionInfo>, Vec<u8>), Status> {
        let after = PageToken::decode_token(token)?;
        let (filter, covered) = store_filter(self.query, self.store.filters_keywords());
        let rows = if self.query.order_by.is_empty() {
            self.default_order_page(&filter, covered, after.as_ref(), page_size)
                .await?
        } else {
            let mut rows = Vec::new();
            self.scan(&filter, |row| {
                if after
                    .as_ref()
                    .is_none_or(|a| self.query.compare(&row, a) == Ordering::Greater)
                {
                    rows.push(row);
                }
            })
            .await?;
            rows.sort_by(|a, b| self.query.compare(a, b));
            rows.truncate(page_size);
            rows
        };
        let next = if rows.len() == page_size {
            rows.last()
                .map(|r| PageToken::of(&r.record).encode_to_vec())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let infos = rows.iter().map(|r| r.info(self.attrs)).collect();
        Ok((infos, next))
    }

    async fn default_order_page(
        &self,
        filter: &VisibilityFilter,
        covered: bool,
        after: Option<&PageToken>,
        page_size: usize,
    ) -> Result<Vec<Row>, Status> {
        let mut cursor = after.map(PageToken::cursor);
        let mut rows = Vec::with_capacity(page_size.min(BATCH));
        loop {
            // When the store applies the whole query every record it returns is kept: ask
            // for just what the page lacks (on Cassandra every record asked for is read
            // from each partition the planner merges).
            let want = if covered {
                page_size.saturating_sub(rows.len()).clamp(1, BATCH)
            } else {
                BATCH
            };
            let batch = self
                .store
                .list_visibility(&self.namespace.id, filter, cursor.as_ref(), want)
                .await
                .map_err(temper_client::status::store_status)?;
            let exhausted = batch.len() < want;
            for record in batch {
                cursor = Some(record.cursor());
                let row = Row::new(record, self.attrs);
                if self.query.matches(&row) {
                    rows.push(row);
                    if rows.len() == page_size {
                        return Ok(rows);
                    }
                }
            }
            if exhausted {
                return Ok(rows);
            }
        }
    }

    /// Every matching run, in no particular order.
    pub async fn scan(
        &self,
        filter: &VisibilityFilter,
        mut f: impl FnMut(Row),
    ) -> Result<(), Status> {
        let mut cursor: Option<VisibilityCursor> = None;
        loop {
            let batch = self
                .store
                .list_visibility(&self.namespace.id, filter, cursor.as_ref(), BATCH)
                .await
                .map_err(temper_client::status::store_status)?;
            let exhausted = batch.len() < BATCH;
            for record in batch {
                cursor = Some(record.cursor());
                let row = Row::new(record, self.attrs);
                if self.query.matches(&row) {
                    f(row);
                }
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    /// How many runs match, and per status when `by_status`.
    pub async fn count(&self, by_status: bool) -> Result<(u64, Vec<(i32, u64)>), Status> {
        let (filter, covered) = store_filter(self.query, self.store.filters_keywords());
        let err = temper_client::status::store_status;
        if covered {
            return if by_status {
                let groups = self
                    .store
                    .count_visibility_by_status(&self.namespace.id, &filter)
                    .await
                    .map_err(err)?;
                Ok((groups.iter().map(|(_, n)| n).sum(), groups))
            } else {
                let n = self
                    .store
                    .count_visibility(&self.namespace.id, &filter)
                    .await
                    .map_err(err)?;
                Ok((n, Vec::new()))
            };
        }
        let mut total = 0;
        let mut groups: std::collections::BTreeMap<i32, u64> = Default::default();
        self.scan(&filter, |row| {
            total += 1;
            *groups.entry(row.record.status).or_default() += 1;
        })
        .await?;
        Ok((
            total,
            if by_status {
                groups.into_iter().collect()
            } else {
                Vec::new()
            },
        ))
    }
}

/// A Keyword value as Temporal encodes group values: JSON with its type in the metadata.
pub fn keyword_payload(value: &str) -> Payload {
    Payload {
        metadata: [
            ("encoding".to_owned(), b"json/plain".to_vec()),
            ("type".to_owned(), b"Keyword".to_vec()),
        ]
        .into(),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
