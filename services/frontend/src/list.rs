//! The visibility RPCs of the WorkflowService, on [`crate::visibility`].

use temper_proto::temporal::api::filter::v1::{
    StartTimeFilter, WorkflowExecutionFilter, WorkflowTypeFilter,
};
use temper_proto::temporal::api::workflowservice::v1::{
    self as ws, count_workflow_executions_response::AggregationGroup,
    list_closed_workflow_executions_request as closed,
    list_open_workflow_executions_request as open,
};
use temper_visibility::{ExecutionStatus, Query, SearchAttributes, Value};
use tonic::Status;

use crate::Frontend;
use crate::namespaces::Namespace;
use crate::visibility::{self, Lister};

/// A string literal of the query language.
fn literal(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// `Name BETWEEN earliest AND latest` for a legacy start-time filter (unset ends are open).
/// The query conditions of the deprecated List*'s execution filter.
fn execution_filter(parts: &mut Vec<String>, f: &WorkflowExecutionFilter) {
    parts.push(format!("WorkflowId = {}", literal(&f.workflow_id)));
    if !f.run_id.is_empty() {
        parts.push(format!("RunId = {}", literal(&f.run_id)));
    }
}

/// The query condition of the deprecated List*'s workflow type filter.
fn type_filter(parts: &mut Vec<String>, f: &WorkflowTypeFilter) {
    parts.push(format!("WorkflowType = {}", literal(&f.name)));
}

fn time_range(name: &str, f: Option<&StartTimeFilter>) -> Option<String> {
    let f = f?;
    let rfc = |t: &temper_proto::wkt::Timestamp| {
        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    let earliest = f.earliest_time.as_ref().and_then(rfc);
    let latest = f
        .latest_time
        .as_ref()
        .filter(|t| t.seconds != 0 || t.nanos != 0)
        .and_then(rfc);
    match (earliest, latest) {
        (Some(a), Some(b)) => Some(format!(
            "{name} BETWEEN {} AND {}",
            literal(&a),
            literal(&b)
        )),
        (Some(a), None) => Some(format!("{name} >= {}", literal(&a))),
        (None, Some(b)) => Some(format!("{name} <= {}", literal(&b))),
        (None, None) => None,
    }
}

impl Frontend {
    async fn visibility_query(
        &self,
        namespace: &str,
        query: &str,
    ) -> Result<(std::sync::Arc<Namespace>, SearchAttributes, Query), Status> {
        let ns = self.namespace(namespace).await?;
        let attrs = visibility::registry(&ns);
        let query = visibility::parse(query, &attrs)?;
        Ok((ns, attrs, query))
    }

    /// One page of a query (List and Scan; neither takes GROUP BY).
    pub(crate) async fn list_page(
        &self,
        namespace: &str,
        query: &str,
        page_size: i32,
        token: &[u8],
    ) -> Result<ws::ListWorkflowExecutionsResponse, Status> {
        let (ns, attrs, query) = self.visibility_query(namespace, query).await?;
        if query.group_by.is_some() {
            return Err(Status::invalid_argument("GROUP BY clause is not supported"));
        }
        let lister = Lister {
            store: &self.visibility,
            namespace: &ns,
            attrs: &attrs,
            query: &query,
        };
        let (executions, next_page_token) =
            lister.page(visibility::page_size(page_size), token).await?;
        Ok(ws::ListWorkflowExecutionsResponse {
            executions,
            next_page_token,
        })
    }

    pub(crate) async fn count(
        &self,
        r: ws::CountWorkflowExecutionsRequest,
    ) -> Result<ws::CountWorkflowExecutionsResponse, Status> {
        let (ns, attrs, query) = self.visibility_query(&r.namespace, &r.query).await?;
        if !query.order_by.is_empty() {
            return Err(Status::invalid_argument(
                "ORDER BY clause is not supported in count query",
            ));
        }
        let lister = Lister {
            store: &self.visibility,
            namespace: &ns,
            attrs: &attrs,
            query: &query,
        };
        let by_status = query.group_by.is_some();
        let (count, groups) = lister.count(by_status).await?;
        let groups = groups
            .into_iter()
            .map(|(status, count)| AggregationGroup {
                group_values: vec![visibility::keyword_payload(
                    ExecutionStatus::from_code(i64::from(status))
                        .map_or("Unspecified", ExecutionStatus::name),
                )],
                count: i64::try_from(count).unwrap_or(i64::MAX),
            })
            .collect();
        Ok(ws::CountWorkflowExecutionsResponse {
            count: i64::try_from(count).unwrap_or(i64::MAX),
            groups,
        })
    }

    pub(crate) async fn list_open(
        &self,
        r: ws::ListOpenWorkflowExecutionsRequest,
    ) -> Result<ws::ListOpenWorkflowExecutionsResponse, Status> {
        let mut parts = vec!["ExecutionStatus = 'Running'".to_owned()];
        parts.extend(time_range("StartTime", r.start_time_filter.as_ref()));
        match &r.filters {
            Some(open::Filters::ExecutionFilter(f)) => execution_filter(&mut parts, f),
            Some(open::Filters::TypeFilter(f)) => type_filter(&mut parts, f),
            None => {}
        }
        let page = self
            .list_page(
                &r.namespace,
                &parts.join(" AND "),
                r.maximum_page_size,
                &r.next_page_token,
            )
            .await?;
        Ok(ws::ListOpenWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        })
    }

    pub(crate) async fn list_closed(
        &self,
        r: ws::ListClosedWorkflowExecutionsRequest,
    ) -> Result<ws::ListClosedWorkflowExecutionsResponse, Status> {
        let mut parts = vec!["ExecutionStatus != 'Running'".to_owned()];
        parts.extend(time_range("CloseTime", r.start_time_filter.as_ref()));
        match &r.filters {
            Some(closed::Filters::ExecutionFilter(f)) => execution_filter(&mut parts, f),
            Some(closed::Filters::TypeFilter(f)) => type_filter(&mut parts, f),
            Some(closed::Filters::StatusFilter(f)) => {
                parts.push(format!("ExecutionStatus = {}", f.status));
            }
            None => {}
        }
        let page = self
            .list_page(
                &r.namespace,
                &parts.join(" AND "),
                r.maximum_page_size,
                &r.next_page_token,
            )
            .await?;
        Ok(ws::ListClosedWorkflowExecutionsResponse {
            executions: page.executions,
            next_page_token: page.next_page_token,
        })
    }

    /// System, predefined and every namespace's custom search attributes, with their types.
    pub(crate) async fn all_search_attributes(
        &self,
    ) -> Result<ws::GetSearchAttributesResponse, Status> {
        let mut keys: std::collections::HashMap<String, i32> =
            SearchAttributes::system_and_predefined()
                .iter()
                .map(|(name, ty, _)| (name.to_owned(), indexed_type(ty)))
                .collect();
        let mut after: Option<String> = None;
        loop {
            let page = self.namespaces.list(after.as_deref(), 100).await?;
            for ns in &page {
                keys.extend(ns.detail.search_attributes.clone());
            }
            match page.last() {
                Some(last) if page.len() == 100 => after = Some(last.name.clone()),
                _ => break,
            }
        }
        Ok(ws::GetSearchAttributesResponse { keys })
    }
}

fn indexed_type(t: temper_visibility::ValueType) -> i32 {
    use temper_proto::temporal::api::enums::v1::IndexedValueType as I;
    use temper_visibility::ValueType as V;
    (match t {
        V::Text => I::Text,
        V::Keyword => I::Keyword,
        V::Int => I::Int,
        V::Double => I::Double,
        V::Bool => I::Bool,
        V::Datetime => I::Datetime,
        V::KeywordList => I::KeywordList,
    }) as i32
}
