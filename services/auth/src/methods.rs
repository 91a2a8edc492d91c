//! Which role each public API call needs, after the Temporal server's method metadata
//! (`common/api/metadata.go`): a scope (one namespace, named by the request's `namespace`
//! field, or the whole cluster) and an access level (read-only, write, admin).
//!
//! temper adds one class Temporal does not have: the calls a worker makes (polls, task
//! responses, heartbeats) are [`Access::Worker`], which the `worker` role grants. In Temporal
//! they are write calls and the `worker` role alone grants nothing; every token allowed a call
//! there is allowed it here too.

use temper_proto::ApiMethod;

pub const WORKFLOW_SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";
pub const OPERATOR_SERVICE: &str = "temporal.api.operatorservice.v1.OperatorService";

/// What a call touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One namespace, the request's `namespace` field.
    Namespace,
    /// The whole cluster: only the caller's `temporal-system` roles count.
    Cluster,
}

/// The access a call needs, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Allowed to everyone, even without credentials (`GetSystemInfo`, which every SDK calls
    /// when it connects; Temporal treats it as a health check).
    Open,
    ReadOnly,
    /// Polls, task responses and heartbeats.
    Worker,
    Write,
    Admin,
}

impl Access {
    /// The metric label of the class.
    pub fn label(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::ReadOnly => "read",
            Access::Worker => "worker",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// The class of one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodClass {
    pub scope: Scope,
    pub access: Access,
}

/// The class of `service`/`method`, `None` for a method this table does not know (denied to
/// everyone but cluster admins, as Temporal does with a method missing from its metadata).
pub fn classify(service: &str, method: &str) -> Option<MethodClass> {
    use Access::*;
    use Scope::*;
    let (scope, access) = match service {
        WORKFLOW_SERVICE => match method {
            "GetSystemInfo" => (Cluster, Open),
            "GetClusterInfo" | "ListNamespaces" | "GetSearchAttributes" => (Cluster, ReadOnly),
            "RegisterNamespace" | "UpdateNamespace" | "DeprecateNamespace" => (Namespace, Admin),
            "PollWorkflowTaskQueue"
            | "RespondWorkflowTaskCompleted"
            | "RespondWorkflowTaskFailed"
            | "PollActivityTaskQueue"
            | "RecordActivityTaskHeartbeat"
            | "RecordActivityTaskHeartbeatById"
            | "RespondActivityTaskCompleted"
            | "RespondActivityTaskCompletedById"
            | "RespondActivityTaskFailed"
            | "RespondActivityTaskFailedById"
            | "RespondActivityTaskCanceled"
            | "RespondActivityTaskCanceledById"
            | "PollNexusTaskQueue"
            | "RespondNexusTaskCompleted"
            | "RespondNexusTaskFailed"
            | "RespondQueryTaskCompleted"
            | "ResetStickyTaskQueue"
            | "ShutdownWorker"
            | "RecordWorkerHeartbeat" => (Namespace, Worker),
            "DescribeNamespace"
            | "GetWorkflowExecutionHistory"
            | "GetWorkflowExecutionHistoryReverse"
            | "CountActivityExecutions"
            | "CountNexusOperationExecutions"
            | "DescribeActivityExecution"
            | "DescribeNexusOperationExecution"
            | "PollActivityExecution"
            | "PollNexusOperationExecution"
            | "ListActivityExecutions"
            | "ListNexusOperationExecutions"
            | "ListOpenWorkflowExecutions"
            | "ListClosedWorkflowExecutions"
            | "ListWorkflowExecutions"
            | "ListArchivedWorkflowExecutions"
            | "ScanWorkflowExecutions"
            | "CountWorkflowExecutions"
            | "QueryWorkflow"
            | "DescribeWorkflowExecution"
            | "DescribeTaskQueue"
            | "ListTaskQueuePartitions"
            | "DescribeSchedule"
            | "ListScheduleMatchingTimes"
            | "ListSchedules"
            | "CountSchedules"
            | "GetWorkerBuildIdCompatibility"
            | "GetWorkerVersioningRules"
            | "GetWorkerTaskReachability"
            | "PollWorkflowExecutionUpdate"
            | "PollWorkflowExecutionTimeSkipping"
            | "DescribeBatchOperation"
            | "ListBatchOperations"
            | "DescribeDeployment"
            | "ListDeployments"
            | "GetDeploymentReachability"
            | "GetCurrentDeployment"
            | "DescribeWorkerDeploymentVersion"
            | "DescribeWorkerDeployment"
            | "ValidateWorkerDeploymentVersionComputeConfig"
            | "ListWorkerDeployments"
            | "DescribeWorkflowRule"
            | "ListWorkflowRules"
            | "ListWorkers"
            | "CountWorkers"
            | "DescribeWorker"
            | "FetchWorkerConfig" => (Namespace, ReadOnly),
            "StartWorkflowExecution"
            | "DeleteActivityExecution"
            | "DeleteNexusOperationExecution"
            | "RequestCancelActivityExecution"
            | "RequestCancelNexusOperationExecution"
            | "StartActivityExecution"
            | "StartNexusOperationExecution"
            | "TerminateActivityExecution"
            | "TerminateNexusOperationExecution"
            | "RequestCancelWorkflowExecution"
            | "SignalWorkflowExecution"
            | "SignalWithStartWorkflowExecution"
            | "ResetWorkflowExecution"
            | "TerminateWorkflowExecution"
            | "DeleteWorkflowExecution"
            | "ExecuteMultiOperation"
            | "CreateSchedule"
            | "UpdateSchedule"
            | "PatchSchedule"
            | "DeleteSchedule"
            | "UpdateWorkerBuildIdCompatibility"
            | "UpdateWorkerVersioningRules"
            | "UpdateWorkflowExecution"
            | "StartBatchOperation"
            | "StopBatchOperation"
            | "UpdateActivityOptions"
            | "PauseActivity"
            | "UnpauseActivity"
            | "ResetActivity"
            | "UpdateActivityExecutionOptions"
            | "PauseActivityExecution"
            | "UnpauseActivityExecution"
            | "ResetActivityExecution"
            | "UpdateWorkflowExecutionOptions"
            | "SetCurrentDeployment"
            | "SetWorkerDeploymentCurrentVersion"
            | "SetWorkerDeploymentRampingVersion"
            | "SetWorkerDeploymentManager"
            | "CreateWorkerDeployment"
            | "DeleteWorkerDeployment"
            | "CreateWorkerDeploymentVersion"
            | "UpdateWorkerDeploymentVersionComputeConfig"
            | "DeleteWorkerDeploymentVersion"
            | "UpdateWorkerDeploymentVersionMetadata"
            | "CreateWorkflowRule"
            | "DeleteWorkflowRule"
            | "TriggerWorkflowRule"
            | "UpdateTaskQueueConfig"
            | "UpdateWorkerConfig"
            | "PauseWorkflowExecution"
            | "UnpauseWorkflowExecution" => (Namespace, Write),
            _ => return None,
        },
        OPERATOR_SERVICE => match method {
            "AddSearchAttributes" | "RemoveSearchAttributes" | "DeleteNamespace" => {
                (Namespace, Admin)
            }
            "ListSearchAttributes" => (Namespace, ReadOnly),
            "AddOrUpdateRemoteCluster"
            | "RemoveRemoteCluster"
            | "ListClusters"
            | "CreateNexusEndpoint"
            | "UpdateNexusEndpoint"
            | "DeleteNexusEndpoint"
            | "GetNexusEndpoint"
            | "ListNexusEndpoints" => (Cluster, Admin),
            _ => return None,
        },
        _ => return None,
    };
    Some(MethodClass { scope, access })
}

/// The generated description of `service`/`method` (where its namespace and task token are).
pub fn api_method(service: &str, method: &str) -> Option<&'static ApiMethod> {
    temper_proto::API_METHODS
        .iter()
        .find(|m| m.service == service && m.name == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method of the two services, straight from the descriptor set: a method a newer
    /// `temporalio-protos` adds fails here until it is given a class.
    #[test]
    fn every_method_of_both_services_has_a_class() {
        let mut missing = Vec::new();
        for m in temper_proto::API_METHODS {
            match classify(m.service, m.name) {
                None => missing.push(format!("{}/{}", m.service, m.name)),
                Some(c) => {
                    // A namespace-scoped call must name its namespace; a cluster call has none
                    // to name (RegisterNamespace's `namespace` is the new namespace).
                    if c.scope == Scope::Namespace {
                        assert!(
                            m.namespace_field.is_some(),
                            "{}: namespace scope but no namespace field",
                            m.name
                        );
                    }
                    assert!(!m.client_streaming, "{} streams requests", m.name);
                }
            }
        }
        assert!(missing.is_empty(), "methods without a class: {missing:?}");
        assert!(temper_proto::API_METHODS.len() > 100);
        assert!(
            temper_proto::API_METHODS
                .iter()
                .any(|m| m.service == OPERATOR_SERVICE)
        );
    }

    #[test]
    fn classes_follow_temporal() {
        let c = |s, m| classify(s, m).expect("classified");
        let w = WORKFLOW_SERVICE;
        assert_eq!(c(w, "StartWorkflowExecution").access, Access::Write);
        assert_eq!(
            c(w, "SignalWithStartWorkflowExecution").access,
            Access::Write
        );
        assert_eq!(c(w, "DescribeWorkflowExecution").access, Access::ReadOnly);
        assert_eq!(c(w, "QueryWorkflow").access, Access::ReadOnly);
        assert_eq!(c(w, "PollWorkflowTaskQueue").access, Access::Worker);
        assert_eq!(c(w, "RespondActivityTaskCompleted").access, Access::Worker);
        assert_eq!(c(w, "RegisterNamespace").access, Access::Admin);
        assert_eq!(c(w, "RegisterNamespace").scope, Scope::Namespace);
        assert_eq!(c(w, "ListNamespaces").scope, Scope::Cluster);
        assert_eq!(c(w, "GetSystemInfo").access, Access::Open);
        assert_eq!(
            c(OPERATOR_SERVICE, "AddSearchAttributes").access,
            Access::Admin
        );
        assert_eq!(c(OPERATOR_SERVICE, "ListClusters").scope, Scope::Cluster);
        assert_eq!(classify(w, "NoSuchMethod"), None);
        assert_eq!(classify("other.Service", "StartWorkflowExecution"), None);
    }

    #[test]
    fn token_bearing_calls_are_found() {
        let m = api_method(WORKFLOW_SERVICE, "RespondWorkflowTaskCompleted").expect("known");
        assert!(m.task_token_field.is_some());
        assert!(m.namespace_field.is_some());
    }
}
