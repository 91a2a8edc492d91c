//! Schedules: CreateSchedule, DescribeSchedule, UpdateSchedule, PatchSchedule,
//! DeleteSchedule, ListScheduleMatchingTimes and ListSchedules.
//!
//! A schedule lives in a run of its namespace (workflow id `temporal-sys-scheduler:<id>`, as
//! in Temporal) that the history service drives itself (services/history/src/api/schedule.rs).
//! The frontend checks what it can without the schedule (namespace, ids, search attributes)
//! and hands every call on one schedule to the shard of that run. ListSchedules reads
//! visibility: the runs of the `TemporalScheduler` namespace division, with the list info
//! the schedule keeps in its run's memo.

use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::schedule_call_request::Call;
use temper_proto::internal::v1::schedule_call_response::Response as Answer;
use temper_proto::temporal::api::common::v1::{Memo, SearchAttributes};
use temper_proto::temporal::api::schedule::v1::schedule_action::Action;
use temper_proto::temporal::api::schedule::v1::{ScheduleListEntry, ScheduleListInfo};
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_visibility::Expr;
use tonic::{Request, Status};

use crate::{Frontend, check_identity, search_attributes};

/// The memo field a schedule's run keeps its list info in (Temporal's name).
const MEMO_INFO: &str = "ScheduleInfo";
/// Search attributes the server sets on a schedule's run; ListSchedules does not show them.
const INTERNAL_ATTRIBUTES: [&str; 2] = ["TemporalNamespaceDivision", "TemporalSchedulePaused"];
/// The one system search attribute a ListSchedules query may name (as in Temporal).
const FILTERABLE_SYSTEM: &str = "TemporalSchedulePaused";
/// Longest schedule id (Temporal's workflow id limit, less its scheduler prefix).
const MAX_ID_LENGTH: usize = 1000;

fn check_namespace(namespace: &str) -> Result<(), Status> {
    if namespace.is_empty() {
        return Err(Status::invalid_argument("Namespace not set on request."));
    }
    Ok(())
}

fn check_schedule_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument(
            "ScheduleId is not set on request.",
        ));
    }
    if id.len() + temper_types::SCHEDULER_WORKFLOW_ID_PREFIX.len() > MAX_ID_LENGTH {
        return Err(Status::invalid_argument("ScheduleId exceeds length limit."));
    }
    Ok(())
}

/// Every attribute `expr` names, by the alias the query wrote.
fn named_attributes(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            for e in items {
                named_attributes(e, out);
            }
        }
        Expr::Not(e) => named_attributes(e, out),
        Expr::Predicate(p) => out.push(p.attribute.alias.clone()),
    }
}

impl Frontend {
    async fn schedule_call(
        &self,
        namespace: &str,
        schedule_id: &str,
        call: Call,
    ) -> Result<Answer, Status> {
        check_namespace(namespace)?;
        check_schedule_id(schedule_id)?;
        let namespace_id = self.ns_id(namespace).await?;
        self.history
            .schedule_call(Request::new(internal::ScheduleCallRequest {
                namespace_id,
                namespace: namespace.to_owned(),
                schedule_id: schedule_id.to_owned(),
                call: Some(call),
            }))
            .await?
            .into_inner()
            .response
            .ok_or_else(|| {
                Status::internal("the history service answered a schedule call with nothing")
            })
    }

    pub(crate) async fn schedule_create(
        &self,
        r: ws::CreateScheduleRequest,
    ) -> Result<ws::CreateScheduleResponse, Status> {
        check_namespace(&r.namespace)?;
        check_schedule_id(&r.schedule_id)?;
        check_identity(&r.identity)?;
        if r.request_id.len() > MAX_ID_LENGTH {
            return Err(Status::invalid_argument("RequestId length exceeds limit."));
        }
        let ns = self.namespace(&r.namespace).await?;
        search_attributes::check(&ns, r.search_attributes.as_ref())?;
        if let Some(Action::StartWorkflow(start)) = r
            .schedule
            .as_ref()
            .and_then(|s| s.action.as_ref())
            .and_then(|a| a.action.as_ref())
        {
            search_attributes::check(&ns, start.search_attributes.as_ref())?;
        }
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        match self.schedule_call(&namespace, &id, Call::Create(r)).await? {
            Answer::Create(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn schedule_describe(
        &self,
        r: ws::DescribeScheduleRequest,
    ) -> Result<ws::DescribeScheduleResponse, Status> {
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        let mut resp = match self
            .schedule_call(&namespace, &id, Call::Describe(r))
            .await?
        {
            Answer::Describe(resp) => resp,
            _ => return Err(unexpected()),
        };
        // Every search attribute says its type, even those a client sent untagged (as
        // Temporal answers since 1.24).
        let attrs = crate::visibility::registry(self.namespace(&namespace).await?.as_ref());
        if let Some(sa) = resp.search_attributes.as_mut() {
            crate::visibility::tag_types(sa, &attrs);
        }
        if let Some(Action::StartWorkflow(start)) = resp
            .schedule
            .as_mut()
            .and_then(|s| s.action.as_mut())
            .and_then(|a| a.action.as_mut())
            && let Some(sa) = start.search_attributes.as_mut()
        {
            crate::visibility::tag_types(sa, &attrs);
        }
        Ok(resp)
    }

    pub(crate) async fn schedule_update(
        &self,
        r: ws::UpdateScheduleRequest,
    ) -> Result<ws::UpdateScheduleResponse, Status> {
        check_identity(&r.identity)?;
        if !r.namespace.is_empty() {
            let ns = self.namespace(&r.namespace).await?;
            search_attributes::check(&ns, r.search_attributes.as_ref())?;
        }
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        match self.schedule_call(&namespace, &id, Call::Update(r)).await? {
            Answer::Update(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn schedule_patch(
        &self,
        r: ws::PatchScheduleRequest,
    ) -> Result<ws::PatchScheduleResponse, Status> {
        check_identity(&r.identity)?;
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        match self.schedule_call(&namespace, &id, Call::Patch(r)).await? {
            Answer::Patch(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn schedule_delete(
        &self,
        r: ws::DeleteScheduleRequest,
    ) -> Result<ws::DeleteScheduleResponse, Status> {
        check_identity(&r.identity)?;
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        match self.schedule_call(&namespace, &id, Call::Delete(r)).await? {
            Answer::Delete(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub(crate) async fn schedule_matching_times(
        &self,
        r: ws::ListScheduleMatchingTimesRequest,
    ) -> Result<ws::ListScheduleMatchingTimesResponse, Status> {
        let (namespace, id) = (r.namespace.clone(), r.schedule_id.clone());
        match self
            .schedule_call(&namespace, &id, Call::ListMatchingTimes(r))
            .await?
        {
            Answer::ListMatchingTimes(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    /// The visibility query over the namespace's live schedules, with the user's `filter`
    /// (which may name custom search attributes and `TemporalSchedulePaused` only, as in
    /// Temporal; `GROUP BY` only where counting).
    async fn schedules_query(
        &self,
        namespace: &str,
        filter: &str,
        counting: bool,
    ) -> Result<String, Status> {
        const LIVE: &str =
            "TemporalNamespaceDivision = 'TemporalScheduler' AND ExecutionStatus = 'Running'";
        if filter.trim().is_empty() {
            return Ok(LIVE.to_owned());
        }
        let ns = self.namespace(namespace).await?;
        let attrs = crate::visibility::registry(&ns);
        let parsed = crate::visibility::parse(filter, &attrs)?;
        let mut names = Vec::new();
        if let Some(filter) = &parsed.filter {
            named_attributes(filter, &mut names);
        }
        for name in names {
            if name != FILTERABLE_SYSTEM && !ns.detail.search_attributes.contains_key(&name) {
                return Err(Status::invalid_argument(format!(
                    "invalid query filter for schedules: cannot filter on \"{name}\""
                )));
            }
        }
        if (parsed.group_by.is_some() && !counting) || !parsed.order_by.is_empty() {
            return Err(Status::invalid_argument(
                "invalid query filter for schedules: only filters are allowed",
            ));
        }
        // The live schedules AND the user's filter, with the user's grouping: combined as
        // parsed queries and written out again, never by pasting the user's text.
        let mut query = crate::visibility::parse(LIVE, &attrs)?;
        query.filter = match (query.filter.take(), parsed.filter) {
            (Some(live), Some(user)) => Some(live.and(user)),
            (live, user) => live.or(user),
        };
        query.group_by = parsed.group_by;
        Ok(query.to_string())
    }

    pub(crate) async fn schedule_count(
        &self,
        r: ws::CountSchedulesRequest,
    ) -> Result<ws::CountSchedulesResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.schedules_query(&r.namespace, &r.query, true).await?;
        let counted = self
            .count(ws::CountWorkflowExecutionsRequest {
                namespace: r.namespace,
                query,
            })
            .await?;
        Ok(ws::CountSchedulesResponse {
            count: counted.count,
            groups: counted
                .groups
                .into_iter()
                .map(|g| ws::count_schedules_response::AggregationGroup {
                    group_values: g.group_values,
                    count: g.count,
                })
                .collect(),
        })
    }

    pub(crate) async fn schedule_list(
        &self,
        r: ws::ListSchedulesRequest,
    ) -> Result<ws::ListSchedulesResponse, Status> {
        check_namespace(&r.namespace)?;
        let query = self.schedules_query(&r.namespace, &r.query, false).await?;
        let page = self
            .list_page(
                &r.namespace,
                &query,
                r.maximum_page_size,
                &r.next_page_token,
            )
            .await?;
        let schedules =
            page.executions
                .into_iter()
                .map(|e| {
                    let workflow_id = e.execution.map(|x| x.workflow_id).unwrap_or_default();
                    let schedule_id = workflow_id
                        .strip_prefix(temper_types::SCHEDULER_WORKFLOW_ID_PREFIX)
                        .unwrap_or(&workflow_id)
                        .to_owned();
                    let mut memo = e.memo.unwrap_or_default();
                    let info = memo
                        .fields
                        .remove(MEMO_INFO)
                        .and_then(|p| prost::Message::decode(p.data.as_slice()).ok());
                    let mut search_attributes = e.search_attributes.unwrap_or_default();
                    for name in INTERNAL_ATTRIBUTES {
                        search_attributes.indexed_fields.remove(name);
                    }
                    ScheduleListEntry {
                        schedule_id,
                        memo: (!memo.fields.is_empty()).then_some(Memo {
                            fields: memo.fields,
                        }),
                        search_attributes: (!search_attributes.indexed_fields.is_empty())
                            .then_some(SearchAttributes {
                                indexed_fields: search_attributes.indexed_fields,
                            }),
                        info: info.map(|i: ScheduleListInfo| i),
                    }
                })
                .collect();
        Ok(ws::ListSchedulesResponse {
            schedules,
            next_page_token: page.next_page_token,
        })
    }
}

fn unexpected() -> Status {
    Status::internal("the history service answered a schedule call with another call's response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_ids_are_checked() {
        assert_eq!(
            check_schedule_id("").expect_err("an empty id").code(),
            tonic::Code::InvalidArgument
        );
        assert!(check_schedule_id("nightly").is_ok());
        assert!(check_schedule_id(&"x".repeat(MAX_ID_LENGTH)).is_err());
    }
}
