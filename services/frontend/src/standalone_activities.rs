//! Standalone activities: StartActivityExecution, DescribeActivityExecution,
//! PollActivityExecution, RequestCancelActivityExecution, TerminateActivityExecution,
//! DeleteActivityExecution, ListActivityExecutions and CountActivityExecutions.
//!
//! An activity lives in a run of its own (workflow id `temporal-sys-activity:<id>`) that
//! the history service drives (`services/history/src/api/standalone_activity.rs`). The
//! frontend checks what it can without the activity and hands every call on one activity
//! to the shard of that run. List and Count read visibility: the runs of the
//! `TemporalStandaloneActivity` namespace division, with the query's `ActivityId` and
//! `ActivityType` read as the run's workflow id and type.

use std::time::Duration;

use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::activity_execution_call_request::Call;
use temper_proto::internal::v1::activity_execution_call_response::Response as Answer;
use temper_proto::temporal::api::activity::v1::ActivityExecutionListInfo;
use temper_proto::temporal::api::common::v1::ActivityType;
#[cfg(test)]
use temper_proto::temporal::api::enums::v1::ActivityExecutionStatus;
use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;
use temper_proto::temporal::api::workflow::v1::WorkflowExecutionInfo;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::STANDALONE_ACTIVITY_WORKFLOW_ID_PREFIX as PREFIX;
use temper_visibility::{Attribute, Expr, Operator, Query, Value, ValueType, names};
use temper_workflow::standalone;
use tonic::{Request, Status};

use crate::{Frontend, check_identity, search_attributes};

/// The attribute that keeps standalone activities' runs out of workflow lists.
const DIVISION_ATTRIBUTE: &str = "TemporalNamespaceDivision";
/// The query names of an activity's id and type, and what they are in its run's record.
const ACTIVITY_ID: &str = "ActivityId";
const ACTIVITY_TYPE: &str = "ActivityType";

fn check_namespace(namespace: &str) -> Result<(), Status> {
    if namespace.is_empty() {
        return Err(Status::invalid_argument("Namespace not set on request."));
    }
    Ok(())
}

/// What Temporal checks of a call naming an activity (and perhaps one of its runs).
fn check_target(activity_id: &str, run_id: &str) -> Result<(), Status> {
    if activity_id.is_empty() {
        return Err(Status::invalid_argument("activity ID is required"));
    }
    if activity_id.len() > standalone::MAX_ID_LENGTH {
        return Err(Status::invalid_argument(format!(
            "activityId exceeds length limit. Length={} Limit={}",
            activity_id.len(),
            standalone::MAX_ID_LENGTH
        )));
    }
    if !run_id.is_empty() && uuid::Uuid::parse_str(run_id).is_err() {
        return Err(Status::invalid_argument(
            "invalid run id: must be a valid UUID",
        ));
    }
    Ok(())
}

/// Temporal's error for a query part that activity lists do not support.
fn unsupported(what: &str) -> Status {
    Status::invalid_argument(format!("invalid query: operation is not supported: {what}"))
}

fn unexpected() -> Status {
    Status::internal("the history service answered an activity call with another call's response")
}

/// A visibility record of an activity's run, as ListActivityExecutions shows the activity.
fn list_info(e: WorkflowExecutionInfo) -> ActivityExecutionListInfo {
    let (workflow_id, run_id) = e
        .execution
        .map(|x| (x.workflow_id, x.run_id))
        .unwrap_or_default();
    let closed = e.status != WorkflowExecutionStatus::Running as i32;
    let mut search_attributes = e.search_attributes.unwrap_or_default();
    search_attributes.indexed_fields.remove(DIVISION_ATTRIBUTE);
    ActivityExecutionListInfo {
        activity_id: workflow_id
            .strip_prefix(PREFIX)
            .unwrap_or(&workflow_id)
            .to_owned(),
        run_id,
        activity_type: e.r#type.map(|t| ActivityType { name: t.name }),
        schedule_time: e.start_time,
        close_time: e.close_time,
        status: standalone::status_of_run(e.status) as i32,
        search_attributes: (!search_attributes.indexed_fields.is_empty())
            .then_some(search_attributes),
        task_queue: e.task_queue,
        // Temporal's list record counts transitions once the activity closed.
        state_transition_count: if closed { e.state_transition_count } else { 0 },
        state_size_bytes: 0,
        execution_duration: e.execution_duration.filter(|_| closed),
        execution_time: e.execution_time,
    }
}

/// How a query over standalone runs of one kind reads its own attribute names: each
/// `(name in the query, attribute of the run, prefix of the run's values)`.
pub(crate) type RunAttributes = &'static [(&'static str, &'static str, &'static str)];

/// Activities: `ActivityId` is the run's workflow id (with the runs' prefix), `ActivityType`
/// its workflow type.
const ACTIVITY_ATTRIBUTES: RunAttributes = &[
    (ACTIVITY_ID, names::WORKFLOW_ID, PREFIX),
    (ACTIVITY_TYPE, names::WORKFLOW_TYPE, ""),
];

/// Read the names of `table` in a parsed query as the attributes of the runs.
pub(crate) fn to_run_attributes(expr: &mut Expr, table: RunAttributes) {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            items.iter_mut().for_each(|e| to_run_attributes(e, table))
        }
        Expr::Not(e) => to_run_attributes(e, table),
        Expr::Predicate(p) => {
            let Some((_, name, prefix)) = table.iter().find(|(a, _, _)| *a == p.attribute.alias)
            else {
                return;
            };
            p.attribute = Attribute {
                alias: (*name).to_owned(),
                name: (*name).to_owned(),
                value_type: ValueType::Keyword,
            };
            if prefix.is_empty() {
                return;
            }
            let add = |v: &mut Value| {
                if let Value::String(s) = v {
                    *s = format!("{prefix}{s}");
                }
            };
            match &mut p.operator {
                Operator::Compare(_, v) => add(v),
                Operator::In { values, .. } => values.iter_mut().for_each(add),
                Operator::Between { from, to, .. } => {
                    add(from);
                    add(to);
                }
                Operator::StartsWith { prefix: p, .. } => *p = format!("{prefix}{p}"),
                Operator::IsNull { .. } => {}
            }
        }
    }
}

impl Frontend {
    async fn activity_call(
        &self,
        namespace: &str,
        activity_id: &str,
        long_poll: Duration,
        call: Call,
    ) -> Result<Answer, Status> {
        check_namespace(namespace)?;
        let namespace_id = self.ns_id(namespace).await?;
        self.history
            .activity_execution_call(Request::new(internal::ActivityExecutionCallRequest {
                namespace_id,
                namespace: namespace.to_owned(),
                activity_id: activity_id.to_owned(),
                long_poll_timeout_ms: long_poll.as_millis() as i64,
                call: Some(call),
            }))
            .await?
            .into_inner()
            .response
            .ok_or_else(|| {
                Status::internal("the history service answered an activity call with nothing")
            })
    }

    pub(crate) async fn activity_start(
        &self,
        r: ws::StartActivityExecutionRequest,
    ) -> Result<ws::StartActivityExecutionResponse, Status> {
        check_namespace(&r.namespace)?;
        check_identity(&r.identity)?;
        standalone::validate(&r).map_err(temper_client::status::workflow_status)?;
        let ns = self.namespace(&r.namespace).await?;
        search_attributes::check(&ns, r.search_attributes.as_ref())?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        match self
            .activity_call(&namespace, &id, Duration::ZERO, Call::Start(r))
            .await?
        {
            Answer::Start(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn activity_describe(
        &self,
        r: ws::DescribeActivityExecutionRequest,
        long_poll: Duration,
    ) -> Result<ws::DescribeActivityExecutionResponse, Status> {
        check_target(&r.activity_id, &r.run_id)?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        let mut resp = match self
            .activity_call(&namespace, &id, long_poll, Call::Describe(r))
            .await?
        {
            Answer::Describe(resp) => resp,
            _ => return Err(unexpected()),
        };
        // Every search attribute says its type, as Temporal answers.
        let attrs = crate::visibility::registry(self.namespace(&namespace).await?.as_ref());
        if let Some(sa) = resp
            .info
            .as_mut()
            .and_then(|i| i.search_attributes.as_mut())
        {
            crate::visibility::tag_types(sa, &attrs);
        }
        Ok(resp)
    }

    pub(crate) async fn activity_poll(
        &self,
        r: ws::PollActivityExecutionRequest,
        long_poll: Duration,
    ) -> Result<ws::PollActivityExecutionResponse, Status> {
        check_target(&r.activity_id, &r.run_id)?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        match self
            .activity_call(&namespace, &id, long_poll, Call::Poll(r))
            .await?
        {
            Answer::Poll(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn activity_request_cancel(
        &self,
        r: ws::RequestCancelActivityExecutionRequest,
    ) -> Result<ws::RequestCancelActivityExecutionResponse, Status> {
        check_identity(&r.identity)?;
        check_target(&r.activity_id, &r.run_id)?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        match self
            .activity_call(&namespace, &id, Duration::ZERO, Call::RequestCancel(r))
            .await?
        {
            Answer::RequestCancel(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn activity_terminate(
        &self,
        r: ws::TerminateActivityExecutionRequest,
    ) -> Result<ws::TerminateActivityExecutionResponse, Status> {
        check_identity(&r.identity)?;
        check_target(&r.activity_id, &r.run_id)?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        match self
            .activity_call(&namespace, &id, Duration::ZERO, Call::Terminate(r))
            .await?
        {
            Answer::Terminate(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn activity_delete(
        &self,
        r: ws::DeleteActivityExecutionRequest,
    ) -> Result<ws::DeleteActivityExecutionResponse, Status> {
        check_target(&r.activity_id, &r.run_id)?;
        let (namespace, id) = (r.namespace.clone(), r.activity_id.clone());
        match self
            .activity_call(&namespace, &id, Duration::ZERO, Call::Delete(r))
            .await?
        {
            Answer::Delete(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// The visibility query over the namespace's standalone runs of namespace division
    /// `division`, with the user's `filter` read as a query over the runs (`table`).
    pub(crate) async fn standalone_query(
        &self,
        namespace: &str,
        filter: &str,
        division: &str,
        table: RunAttributes,
    ) -> Result<String, Status> {
        let ns = self.namespace(namespace).await?;
        let mut attrs = crate::visibility::registry(&ns);
        for (name, _, _) in table {
            // Unless the namespace has its own attributes of these names.
            let _ = attrs.add_custom(name, ValueType::Keyword);
        }
        let live = format!("{DIVISION_ATTRIBUTE} = '{division}'");
        let mut query: Query = crate::visibility::parse(&live, &attrs)?;
        if !filter.trim().is_empty() {
            // Temporal words an unknown attribute differently for these lists.
            let mut parsed =
                Query::parse(filter, &attrs).map_err(|e| match e.unknown_attribute_name() {
                    Some(name) => Status::invalid_argument(format!(
                        "invalid query: invalid search attribute: {name}"
                    )),
                    None => Status::invalid_argument(e.to_string()),
                })?;
            if !parsed.order_by.is_empty() {
                return Err(unsupported("'ORDER BY' clause"));
            }
            if let Some(g) = parsed.group_by.as_ref()
                && g.name != names::EXECUTION_STATUS
            {
                return Err(unsupported(&format!(
                    "'GROUP BY' clause is not supported for search attribute {}",
                    g.alias
                )));
            }
            if let Some(f) = parsed.filter.as_mut() {
                to_run_attributes(f, table);
            }
            query.filter = match (query.filter.take(), parsed.filter) {
                (Some(division), Some(user)) => Some(division.and(user)),
                (division, user) => division.or(user),
            };
            query.group_by = parsed.group_by;
        }
        Ok(query.to_string())
    }

    async fn activities_query(&self, namespace: &str, filter: &str) -> Result<String, Status> {
        self.standalone_query(
            namespace,
            filter,
            standalone::NAMESPACE_DIVISION,
            ACTIVITY_ATTRIBUTES,
        )
        .await
    }

    pub(crate) async fn activity_list(
        &self,
        r: ws::ListActivityExecutionsRequest,
    ) -> Result<ws::ListActivityExecutionsResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.activities_query(&r.namespace, &r.query).await?;
        let page = self
            .list_page(&r.namespace, &query, r.page_size, &r.next_page_token)
            .await?;
        Ok(ws::ListActivityExecutionsResponse {
            executions: page.executions.into_iter().map(list_info).collect(),
            next_page_token: page.next_page_token,
        })
    }

    pub(crate) async fn activity_count(
        &self,
        r: ws::CountActivityExecutionsRequest,
    ) -> Result<ws::CountActivityExecutionsResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.activities_query(&r.namespace, &r.query).await?;
        let counted = self
            .count(ws::CountWorkflowExecutionsRequest {
                namespace: r.namespace,
                query,
            })
            .await?;
        Ok(ws::CountActivityExecutionsResponse {
            count: counted.count,
            groups: counted
                .groups
                .into_iter()
                .map(
                    |g| ws::count_activity_executions_response::AggregationGroup {
                        group_values: g.group_values,
                        count: g.count,
                    },
                )
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter of activity query `q`, as it reads over the activities' runs.
    fn parsed(q: &str) -> String {
        let attrs = temper_visibility::SearchAttributes::system_and_predefined()
            .with_custom(ACTIVITY_ID, ValueType::Keyword)
            .and_then(|a| a.with_custom(ACTIVITY_TYPE, ValueType::Keyword))
            .expect("not reserved");
        let mut query = Query::parse(q, &attrs).expect("valid query");
        let mut filter = query.filter.take().expect("a filter");
        to_run_attributes(&mut filter, ACTIVITY_ATTRIBUTES);
        filter.to_string()
    }

    #[test]
    fn activity_ids_and_types_are_read_as_their_runs() {
        assert_eq!(
            parsed("ActivityId = 'a' AND ActivityType IN ('t1', 't2')"),
            format!("WorkflowId = '{PREFIX}a' AND WorkflowType IN ('t1', 't2')")
        );
        assert_eq!(
            parsed("NOT (ActivityId STARTS_WITH 'x' OR ActivityId IN ('b'))"),
            format!("NOT (WorkflowId STARTS_WITH '{PREFIX}x' OR WorkflowId IN ('{PREFIX}b'))")
        );
        // Other attributes stay as written.
        assert_eq!(
            parsed("ExecutionStatus = 'Running'"),
            "ExecutionStatus = 'Running'"
        );
    }

    #[test]
    fn list_records_become_activities() {
        let info = list_info(WorkflowExecutionInfo {
            execution: Some(temper_proto::temporal::api::common::v1::WorkflowExecution {
                workflow_id: format!("{PREFIX}act-1"),
                run_id: "run".into(),
            }),
            r#type: Some(temper_proto::temporal::api::common::v1::WorkflowType {
                name: "increment".into(),
            }),
            status: WorkflowExecutionStatus::Running as i32,
            state_transition_count: 3,
            task_queue: "tq".into(),
            ..Default::default()
        });
        assert_eq!(info.activity_id, "act-1");
        assert_eq!(
            info.activity_type.map(|t| t.name).as_deref(),
            Some("increment")
        );
        assert_eq!(info.status, ActivityExecutionStatus::Running as i32);
        assert_eq!(info.state_transition_count, 0, "counted once closed");
        assert_eq!(info.task_queue, "tq");
    }
}
