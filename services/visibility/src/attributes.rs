//! Search attribute names and types: the registry a query is checked against.
//!
//! Temporal knows three kinds of search attributes: *system* ones kept as columns of every
//! execution (`WorkflowId`, `StartTime`, ...), *predefined* ones it sets itself
//! (`TemporalChangeVersion`, `BuildIds`, ...), and *custom* ones an operator registers per
//! namespace. The lists and types below are Temporal's (`common/searchattribute/sadefs`).

use std::collections::BTreeMap;
use std::fmt;

/// The indexed value type of a search attribute (Temporal's `IndexedValueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    Text,
    Keyword,
    Int,
    Double,
    Bool,
    Datetime,
    KeywordList,
}

impl ValueType {
    /// Temporal's spelling of the type, as it appears in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Text => "Text",
            ValueType::Keyword => "Keyword",
            ValueType::Int => "Int",
            ValueType::Double => "Double",
            ValueType::Bool => "Bool",
            ValueType::Datetime => "Datetime",
            ValueType::KeywordList => "KeywordList",
        }
    }

    /// Parses Temporal's spelling (`"Keyword"`, `"KeywordList"`, ...).
    pub fn from_name(name: &str) -> Option<ValueType> {
        [
            ValueType::Text,
            ValueType::Keyword,
            ValueType::Int,
            ValueType::Double,
            ValueType::Bool,
            ValueType::Datetime,
            ValueType::KeywordList,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names of the system and predefined search attributes.
pub mod names {
    pub const WORKFLOW_ID: &str = "WorkflowId";
    pub const RUN_ID: &str = "RunId";
    pub const WORKFLOW_TYPE: &str = "WorkflowType";
    pub const START_TIME: &str = "StartTime";
    pub const EXECUTION_TIME: &str = "ExecutionTime";
    pub const CLOSE_TIME: &str = "CloseTime";
    pub const EXECUTION_STATUS: &str = "ExecutionStatus";
    pub const TASK_QUEUE: &str = "TaskQueue";
    pub const HISTORY_LENGTH: &str = "HistoryLength";
    pub const EXECUTION_DURATION: &str = "ExecutionDuration";
    pub const STATE_TRANSITION_COUNT: &str = "StateTransitionCount";
    pub const HISTORY_SIZE_BYTES: &str = "HistorySizeBytes";
    pub const PARENT_WORKFLOW_ID: &str = "ParentWorkflowId";
    pub const PARENT_RUN_ID: &str = "ParentRunId";
    pub const ROOT_WORKFLOW_ID: &str = "RootWorkflowId";
    pub const ROOT_RUN_ID: &str = "RootRunId";

    pub const TEMPORAL_CHANGE_VERSION: &str = "TemporalChangeVersion";
    pub const BINARY_CHECKSUMS: &str = "BinaryChecksums";
    pub const BUILD_IDS: &str = "BuildIds";
    pub const BATCHER_NAMESPACE: &str = "BatcherNamespace";
    pub const BATCHER_USER: &str = "BatcherUser";
    pub const TEMPORAL_SCHEDULED_START_TIME: &str = "TemporalScheduledStartTime";
    pub const TEMPORAL_SCHEDULED_BY_ID: &str = "TemporalScheduledById";
    pub const TEMPORAL_SCHEDULE_PAUSED: &str = "TemporalSchedulePaused";
    pub const TEMPORAL_NAMESPACE_DIVISION: &str = "TemporalNamespaceDivision";
    pub const TEMPORAL_PAUSE_INFO: &str = "TemporalPauseInfo";
    pub const TEMPORAL_REPORTED_PROBLEMS: &str = "TemporalReportedProblems";
    pub const TEMPORAL_WORKER_DEPLOYMENT_VERSION: &str = "TemporalWorkerDeploymentVersion";
    pub const TEMPORAL_WORKFLOW_VERSIONING_BEHAVIOR: &str = "TemporalWorkflowVersioningBehavior";
    pub const TEMPORAL_WORKER_DEPLOYMENT: &str = "TemporalWorkerDeployment";
    pub const TEMPORAL_USED_WORKER_DEPLOYMENT_VERSIONS: &str =
        "TemporalUsedWorkerDeploymentVersions";
    pub const TEMPORAL_EXTERNAL_PAYLOAD_COUNT: &str = "TemporalExternalPayloadCount";
    pub const TEMPORAL_EXTERNAL_PAYLOAD_SIZE_BYTES: &str = "TemporalExternalPayloadSizeBytes";

    /// temper's own: a standalone Nexus operation's service and its handler request id, kept
    /// on the operation's run so that ListNexusOperationExecutions can query them. Not listed
    /// among the namespace's search attributes.
    pub const TEMPORAL_NEXUS_SERVICE: &str = "TemporalNexusService";
    pub const TEMPORAL_NEXUS_REQUEST_ID: &str = "TemporalNexusRequestId";

    /// Not a search attribute: a query may name it, and it means `WorkflowId` unless the
    /// namespace defines a custom `ScheduleId`.
    pub const SCHEDULE_ID: &str = "ScheduleId";
    /// Names that Temporal reserves without making them queryable.
    pub const NAMESPACE_ID: &str = "NamespaceId";
    pub const MEMO: &str = "Memo";
    pub const MEMO_ENCODING: &str = "MemoEncoding";
    pub const VISIBILITY_TASK_KEY: &str = "VisibilityTaskKey";

    /// The prefix Temporal reserves for its own attributes. A query may leave it off or add it
    /// (`WorkerDeployment` means `TemporalWorkerDeployment`, `TemporalBuildIds` means
    /// `BuildIds`).
    pub const RESERVED_PREFIX: &str = "Temporal";
}

use names::*;

const SYSTEM: &[(&str, ValueType)] = &[
    (WORKFLOW_ID, ValueType::Keyword),
    (RUN_ID, ValueType::Keyword),
    (WORKFLOW_TYPE, ValueType::Keyword),
    (START_TIME, ValueType::Datetime),
    (EXECUTION_TIME, ValueType::Datetime),
    (CLOSE_TIME, ValueType::Datetime),
    (EXECUTION_STATUS, ValueType::Keyword),
    (TASK_QUEUE, ValueType::Keyword),
    (HISTORY_LENGTH, ValueType::Int),
    (EXECUTION_DURATION, ValueType::Int),
    (STATE_TRANSITION_COUNT, ValueType::Int),
    (HISTORY_SIZE_BYTES, ValueType::Int),
    (PARENT_WORKFLOW_ID, ValueType::Keyword),
    (PARENT_RUN_ID, ValueType::Keyword),
    (ROOT_WORKFLOW_ID, ValueType::Keyword),
    (ROOT_RUN_ID, ValueType::Keyword),
];

const PREDEFINED: &[(&str, ValueType)] = &[
    (TEMPORAL_CHANGE_VERSION, ValueType::KeywordList),
    (BINARY_CHECKSUMS, ValueType::KeywordList),
    (BUILD_IDS, ValueType::KeywordList),
    (BATCHER_NAMESPACE, ValueType::Keyword),
    (BATCHER_USER, ValueType::Keyword),
    (TEMPORAL_SCHEDULED_START_TIME, ValueType::Datetime),
    (TEMPORAL_SCHEDULED_BY_ID, ValueType::Keyword),
    (TEMPORAL_SCHEDULE_PAUSED, ValueType::Bool),
    (TEMPORAL_NAMESPACE_DIVISION, ValueType::Keyword),
    (TEMPORAL_PAUSE_INFO, ValueType::KeywordList),
    (TEMPORAL_REPORTED_PROBLEMS, ValueType::KeywordList),
    (TEMPORAL_WORKER_DEPLOYMENT_VERSION, ValueType::Keyword),
    (TEMPORAL_WORKFLOW_VERSIONING_BEHAVIOR, ValueType::Keyword),
    (TEMPORAL_WORKER_DEPLOYMENT, ValueType::Keyword),
    (
        TEMPORAL_USED_WORKER_DEPLOYMENT_VERSIONS,
        ValueType::KeywordList,
    ),
    (TEMPORAL_EXTERNAL_PAYLOAD_COUNT, ValueType::Int),
    (TEMPORAL_EXTERNAL_PAYLOAD_SIZE_BYTES, ValueType::Int),
];

/// temper's internal attributes (see [`names::TEMPORAL_NEXUS_SERVICE`]): queries may name
/// them, as they may name predefined ones.
const INTERNAL: &[(&str, ValueType)] = &[
    (TEMPORAL_NEXUS_SERVICE, ValueType::Keyword),
    (TEMPORAL_NEXUS_REQUEST_ID, ValueType::Keyword),
];

const RESERVED: &[&str] = &[NAMESPACE_ID, MEMO, MEMO_ENCODING, VISIBILITY_TASK_KEY];

/// Where a search attribute comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    System,
    Predefined,
    Custom,
}

/// Why a custom search attribute cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "search attribute name '{0}' is reserved by the system (a system or predefined name, or one starting with 'Temporal')"
    )]
    Reserved(String),
    #[error("search attribute name must not be empty")]
    Empty,
}

/// The search attributes a query may name, with their types: Temporal's system and predefined
/// ones plus a namespace's custom ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchAttributes {
    by_name: BTreeMap<String, (ValueType, Category)>,
}

impl SearchAttributes {
    /// Temporal's system and predefined search attributes, no custom ones.
    pub fn system_and_predefined() -> Self {
        let mut by_name = BTreeMap::new();
        for (name, ty) in SYSTEM {
            by_name.insert((*name).to_owned(), (*ty, Category::System));
        }
        for (name, ty) in PREDEFINED.iter().chain(INTERNAL) {
            by_name.insert((*name).to_owned(), (*ty, Category::Predefined));
        }
        SearchAttributes { by_name }
    }

    /// Adds (or retypes) a custom search attribute. System, predefined and reserved names, and
    /// names starting with `Temporal`, are refused as Temporal refuses them.
    pub fn add_custom(&mut self, name: &str, ty: ValueType) -> Result<(), RegistryError> {
        if name.is_empty() {
            return Err(RegistryError::Empty);
        }
        if is_reserved(name) {
            return Err(RegistryError::Reserved(name.to_owned()));
        }
        self.by_name.insert(name.to_owned(), (ty, Category::Custom));
        Ok(())
    }

    /// [`add_custom`](Self::add_custom) in builder form.
    pub fn with_custom(mut self, name: &str, ty: ValueType) -> Result<Self, RegistryError> {
        self.add_custom(name, ty)?;
        Ok(self)
    }

    /// The type and category of an attribute, by its exact name.
    pub fn get(&self, name: &str) -> Option<(ValueType, Category)> {
        self.by_name.get(name).copied()
    }

    /// Every attribute, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, ValueType, Category)> {
        self.by_name
            .iter()
            .map(|(name, (ty, category))| (name.as_str(), *ty, *category))
    }

    /// Resolves a name as written in a query to the attribute it means, the way Temporal does:
    /// a custom attribute first, then a system or predefined one, then `ScheduleId` as
    /// `WorkflowId`, then the name with the `Temporal` prefix added or removed.
    pub fn resolve(&self, alias: &str) -> Option<(&str, ValueType)> {
        let lookup = |name: &str| {
            self.by_name
                .get_key_value(name)
                .map(|(name, (ty, _))| (name.as_str(), *ty))
        };
        if let Some(found) = lookup(alias) {
            return Some(found);
        }
        let stripped = alias.strip_prefix(RESERVED_PREFIX).unwrap_or(alias);
        if stripped == SCHEDULE_ID {
            return lookup(WORKFLOW_ID);
        }
        if alias.starts_with(RESERVED_PREFIX) {
            lookup(stripped)
        } else {
            lookup(&format!("{RESERVED_PREFIX}{alias}"))
        }
    }
}

impl Default for SearchAttributes {
    fn default() -> Self {
        Self::system_and_predefined()
    }
}

fn is_reserved(name: &str) -> bool {
    SYSTEM.iter().any(|(n, _)| *n == name)
        || PREDEFINED.iter().any(|(n, _)| *n == name)
        || RESERVED.contains(&name)
        || name.starts_with(RESERVED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_predefined_types() {
        let sa = SearchAttributes::system_and_predefined();
        assert_eq!(
            sa.get("WorkflowId"),
            Some((ValueType::Keyword, Category::System))
        );
        assert_eq!(
            sa.get("ExecutionStatus").map(|t| t.0),
            Some(ValueType::Keyword)
        );
        assert_eq!(sa.get("StartTime").map(|t| t.0), Some(ValueType::Datetime));
        assert_eq!(
            sa.get("ExecutionDuration").map(|t| t.0),
            Some(ValueType::Int)
        );
        assert_eq!(
            sa.get("BuildIds"),
            Some((ValueType::KeywordList, Category::Predefined))
        );
        assert_eq!(
            sa.get("TemporalSchedulePaused").map(|t| t.0),
            Some(ValueType::Bool)
        );
        assert_eq!(sa.get("NamespaceId"), None);
        assert_eq!(
            sa.iter().count(),
            SYSTEM.len() + PREDEFINED.len() + INTERNAL.len()
        );
    }

    #[test]
    fn custom_names_cannot_shadow_temporal_ones() {
        let mut sa = SearchAttributes::system_and_predefined();
        for name in [
            "WorkflowId",
            "BuildIds",
            "TemporalFoo",
            "Memo",
            "NamespaceId",
        ] {
            assert_eq!(
                sa.add_custom(name, ValueType::Int),
                Err(RegistryError::Reserved(name.to_owned()))
            );
        }
        assert_eq!(sa.add_custom("", ValueType::Int), Err(RegistryError::Empty));
        sa.add_custom("CustomerId", ValueType::Keyword)
            .expect("a free name");
        assert_eq!(
            sa.get("CustomerId"),
            Some((ValueType::Keyword, Category::Custom))
        );
    }

    #[test]
    fn resolution_follows_temporal() {
        let sa = SearchAttributes::system_and_predefined();
        assert_eq!(
            sa.resolve("WorkflowId"),
            Some(("WorkflowId", ValueType::Keyword))
        );
        assert_eq!(
            sa.resolve("TemporalBuildIds"),
            Some(("BuildIds", ValueType::KeywordList))
        );
        assert_eq!(
            sa.resolve("WorkerDeployment"),
            Some(("TemporalWorkerDeployment", ValueType::Keyword))
        );
        assert_eq!(
            sa.resolve("ScheduleId"),
            Some(("WorkflowId", ValueType::Keyword))
        );
        assert_eq!(
            sa.resolve("TemporalScheduleId"),
            Some(("WorkflowId", ValueType::Keyword))
        );
        assert_eq!(sa.resolve("workflowid"), None);
        assert_eq!(sa.resolve("Temporal"), None);

        let sa = sa
            .with_custom("ScheduleId", ValueType::Keyword)
            .expect("ScheduleId is not reserved");
        assert_eq!(
            sa.resolve("ScheduleId"),
            Some(("ScheduleId", ValueType::Keyword))
        );
        assert_eq!(
            sa.resolve("TemporalScheduleId"),
            Some(("WorkflowId", ValueType::Keyword))
        );
    }

    #[test]
    fn value_type_names_round_trip() {
        for ty in [
            ValueType::Text,
            ValueType::Keyword,
            ValueType::Int,
            ValueType::Double,
            ValueType::Bool,
            ValueType::Datetime,
            ValueType::KeywordList,
        ] {
            assert_eq!(ValueType::from_name(&ty.to_string()), Some(ty));
        }
        assert_eq!(ValueType::from_name("keyword"), None);
    }
}
