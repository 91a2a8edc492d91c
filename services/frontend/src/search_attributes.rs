//! Search attributes: the system attributes every namespace has, the custom ones registered
//! per namespace through the OperatorService, and the checks on the attributes a start
//! request or a workflow's upsert names.

use std::collections::HashMap;

use temper_proto::temporal::api::common::v1::SearchAttributes;
use temper_proto::temporal::api::enums::v1::IndexedValueType as T;
use tonic::Status;

use crate::namespaces::Namespace;

/// Temporal's system search attributes and their types.
pub const SYSTEM: &[(&str, T)] = &[
    ("WorkflowId", T::Keyword),
    ("RunId", T::Keyword),
    ("WorkflowType", T::Keyword),
    ("StartTime", T::Datetime),
    ("ExecutionTime", T::Datetime),
    ("CloseTime", T::Datetime),
    ("ExecutionStatus", T::Keyword),
    ("TaskQueue", T::Keyword),
    ("HistoryLength", T::Int),
    ("HistorySizeBytes", T::Int),
    ("ExecutionDuration", T::Int),
    ("StateTransitionCount", T::Int),
    ("ParentWorkflowId", T::Keyword),
    ("ParentRunId", T::Keyword),
    ("RootWorkflowId", T::Keyword),
    ("RootRunId", T::Keyword),
    ("TemporalChangeVersion", T::KeywordList),
    ("BinaryChecksums", T::KeywordList),
    ("BuildIds", T::KeywordList),
    ("BatcherNamespace", T::Keyword),
    ("BatcherUser", T::Keyword),
    ("TemporalScheduledStartTime", T::Datetime),
    ("TemporalScheduledById", T::Keyword),
    ("TemporalSchedulePaused", T::Bool),
    ("TemporalNamespaceDivision", T::Keyword),
    ("TemporalPauseInfo", T::KeywordList),
    ("TemporalReportedProblems", T::KeywordList),
    ("TemporalWorkerDeploymentVersion", T::Keyword),
    ("TemporalWorkerDeployment", T::Keyword),
    ("TemporalWorkflowVersioningBehavior", T::Keyword),
    ("TemporalUsedWorkerDeploymentVersions", T::KeywordList),
];

/// System attributes a workflow or a client may set.
const SETTABLE_SYSTEM: &[&str] = &[
    "TemporalChangeVersion",
    "BinaryChecksums",
    "BuildIds",
    "TemporalScheduledStartTime",
    "TemporalScheduledById",
    "TemporalSchedulePaused",
    "TemporalNamespaceDivision",
];

/// Most custom search attributes a namespace may have.
pub const MAX_CUSTOM: usize = 100;

pub fn is_system(name: &str) -> bool {
    SYSTEM.iter().any(|(n, _)| *n == name)
}

/// The system attributes, as ListSearchAttributes reports them.
pub fn system_map() -> HashMap<String, i32> {
    SYSTEM
        .iter()
        .map(|(n, t)| (n.to_string(), *t as i32))
        .collect()
}

/// Every name a workflow of `ns` may set.
pub fn settable_names(ns: &Namespace) -> Vec<String> {
    SETTABLE_SYSTEM
        .iter()
        .map(|n| n.to_string())
        .chain(ns.detail.search_attributes.keys().cloned())
        .collect()
}

/// Check the attributes a start request sets: each must be registered (or settable).
pub fn check(ns: &Namespace, sa: Option<&SearchAttributes>) -> Result<(), Status> {
    let Some(sa) = sa else {
        return Ok(());
    };
    for name in sa.indexed_fields.keys() {
        if !ns.detail.search_attributes.contains_key(name)
            && !SETTABLE_SYSTEM.contains(&name.as_str())
        {
            return Err(Status::invalid_argument(format!(
                "Namespace {} has no mapping defined for search attribute {name}",
                ns.name
            )));
        }
    }
    Ok(())
}
