//! Statuses, in one place: how an error detail rides on a `tonic::Status` (and is read back),
//! the one mapping from the store's and the workflow engine's errors to statuses with
//! Temporal's error details (so SDKs raise the right exception), and the statuses with a
//! fixed meaning between temper's services, told apart by typed details of our own
//! (`proto/protos/temper/internal/v1/errors.proto`), never by their message text.
//!
//! History's and matching's own error enums map only their service-specific variants
//! (a shard this node does not own, a busy workflow...) and hand every store and workflow
//! error to [`store_status`] and [`workflow_status`].

use prost::{Message, Name};
use temper_persistence::StoreError;
use temper_proto::internal::v1::{StickyWorkerUnavailableFailure, TaskObsoleteFailure};
use temper_proto::temporal::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use temper_proto::temporal::api::errordetails::v1::{
    NamespaceAlreadyExistsFailure, NamespaceNotFoundFailure, NotFoundFailure,
    ResourceExhaustedFailure, WorkflowExecutionAlreadyStartedFailure, WorkflowNotReadyFailure,
};
use temper_proto::wkt::Any;
use temper_workflow::WorkflowError;
use tonic::{Code, Status};

#[cfg(test)]
mod tests;

/// The prefix gRPC (and every SDK) expects before a detail's full message name.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// A status carrying one error detail, encoded the way gRPC carries them: a
/// `google.rpc.Status` with one `Any`, sent as `grpc-status-details-bin`.
pub fn status_with_details<M: Message + Name>(
    code: Code,
    message: impl Into<String>,
    detail: &M,
) -> Status {
    let message = message.into();
    let st = temper_proto::google::rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![pack(detail)],
    };
    Status::with_details(code, message, st.encode_to_vec().into())
}

/// `detail` as an `Any`.
fn pack<M: Message + Name>(detail: &M) -> Any {
    Any {
        type_url: format!("{TYPE_URL_PREFIX}{}", M::full_name()),
        value: detail.encode_to_vec(),
    }
}

/// Every detail `status` carries (none if it carries none, or they do not decode).
pub fn details(status: &Status) -> Vec<Any> {
    if status.details().is_empty() {
        return Vec::new();
    }
    temper_proto::google::rpc::Status::decode(status.details())
        .map(|st| st.details)
        .unwrap_or_default()
}

/// Whether `any` holds an `M` (by its type URL's message name, whatever its prefix).
pub fn is_detail<M: Name>(any: &Any) -> bool {
    any.type_url.rsplit('/').next() == Some(M::full_name().as_str())
}

/// The first detail of type `M` that `status` carries.
pub fn detail<M: Message + Name + Default>(status: &Status) -> Option<M> {
    details(status)
        .iter()
        .find(|any| is_detail::<M>(any))
        .and_then(|any| M::decode(any.value.as_slice()).ok())
}

/// The one mapping from a store error to a status.
pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(m),
        StoreError::NotFound(m) => not_found(m),
        StoreError::AlreadyExists(m) => Status::already_exists(m),
        StoreError::Unsupported(m) => Status::unimplemented(m),
        // The lease or shard moved on: the caller retries and reaches the new owner.
        e @ StoreError::OwnershipLost { .. } => Status::unavailable(format!("{e}; retry")),
        e @ (StoreError::OutcomeUnknown(_)
        | StoreError::ConditionFailed(_)
        | StoreError::Invalid(_)
        | StoreError::Internal(_)) => Status::internal(e.to_string()),
    }
}

/// The one mapping from a workflow engine error to a status.
pub fn workflow_status(e: WorkflowError) -> Status {
    match e {
        WorkflowError::NotFound(m) => not_found(m),
        e @ WorkflowError::AlreadyCompleted => not_found(e.to_string()),
        WorkflowError::InvalidArgument(m) => Status::invalid_argument(m),
        // Per-workflow limits (in-flight updates, signals): a concurrency limit, as
        // Temporal reports its in-flight update limit.
        WorkflowError::ResourceExhausted(m) => resource_exhausted(
            m,
            ResourceExhaustedCause::ConcurrentLimit,
            ResourceExhaustedScope::Namespace,
        ),
        WorkflowError::Internal(m) => Status::internal(m),
        WorkflowError::Unavailable(m) | WorkflowError::StaleState(m) => Status::unavailable(m),
        WorkflowError::FailedPrecondition(m) => Status::failed_precondition(m),
        WorkflowError::WorkflowNotReady(m) => workflow_not_ready(m),
    }
}

/// NOT_FOUND: a workflow, run, task or row does not exist (any more).
pub fn not_found(message: impl Into<String>) -> Status {
    // With an empty NotFoundFailure, as the Temporal server sends every NOT_FOUND.
    status_with_details(Code::NotFound, message, &NotFoundFailure::default())
}

/// The workflow id is taken by a running workflow (Temporal's
/// WorkflowExecutionAlreadyStarted, which the SDKs raise as their "already started" error).
pub fn already_started(
    message: impl Into<String>,
    run_id: String,
    start_request_id: String,
) -> Status {
    status_with_details(
        Code::AlreadyExists,
        message,
        &WorkflowExecutionAlreadyStartedFailure {
            start_request_id,
            run_id,
            ..Default::default()
        },
    )
}

/// StartActivityExecution for an activity id whose activity runs (or ran, under a policy
/// that refuses reuse): Temporal's ALREADY_EXISTS with its activity detail.
pub fn activity_already_started(
    message: impl Into<String>,
    run_id: String,
    start_request_id: String,
) -> Status {
    status_with_details(
        Code::AlreadyExists,
        message,
        &temper_proto::temporal::api::errordetails::v1::ActivityExecutionAlreadyStartedFailure {
            start_request_id,
            run_id,
        },
    )
}

/// StartNexusOperationExecution for an operation id whose operation runs (or ran, under a
/// policy that refuses reuse): Temporal's ALREADY_EXISTS with its Nexus operation detail.
pub fn nexus_operation_already_started(
    message: impl Into<String>,
    run_id: String,
    start_request_id: String,
) -> Status {
    status_with_details(
        Code::AlreadyExists,
        message,
        &temper_proto::temporal::api::errordetails::v1::NexusOperationExecutionAlreadyStartedFailure {
            start_request_id,
            run_id,
        },
    )
}

/// No worker can take the request now (Temporal's WorkflowNotReady).
pub fn workflow_not_ready(message: impl Into<String>) -> Status {
    status_with_details(
        Code::FailedPrecondition,
        message,
        &WorkflowNotReadyFailure {},
    )
}

/// A limit was hit; the SDKs retry with backoff.
pub fn resource_exhausted(
    message: impl Into<String>,
    cause: ResourceExhaustedCause,
    scope: ResourceExhaustedScope,
) -> Status {
    status_with_details(
        Code::ResourceExhausted,
        message,
        &ResourceExhaustedFailure {
            cause: cause as i32,
            scope: scope as i32,
        },
    )
}

/// No namespace has this name (or id).
pub fn namespace_not_found(namespace: &str) -> Status {
    status_with_details(
        Code::NotFound,
        format!("Namespace {namespace} is not found."),
        &NamespaceNotFoundFailure {
            namespace: namespace.to_string(),
        },
    )
}

/// A namespace with this name exists already.
pub fn namespace_already_exists() -> Status {
    status_with_details(
        Code::AlreadyExists,
        "Namespace already exists.",
        &NamespaceAlreadyExistsFailure {},
    )
}

/// History's answer to a record-started call for a task that is obsolete (the workflow
/// closed, the event is no longer pending, or another poll started it): NOT_FOUND with a
/// [`TaskObsoleteFailure`]. Matching drops such a task instead of retrying it.
pub fn task_obsolete(why: impl std::fmt::Display) -> Status {
    status_with_details(
        Code::NotFound,
        format!("task obsolete: {why}"),
        &TaskObsoleteFailure {},
    )
}

/// Whether `s` says the task is obsolete ([`task_obsolete`]); a plain NOT_FOUND does not.
pub fn is_task_obsolete(s: &Status) -> bool {
    s.code() == Code::NotFound && detail::<TaskObsoleteFailure>(s).is_some()
}

/// Matching's answer when sticky queue `queue` has no live worker: FAILED_PRECONDITION with
/// a [`StickyWorkerUnavailableFailure`]. History then moves the workflow task to the
/// workflow's normal queue.
pub fn sticky_worker_unavailable(queue: &str) -> Status {
    status_with_details(
        Code::FailedPrecondition,
        format!("sticky worker unavailable: {queue}"),
        &StickyWorkerUnavailableFailure {},
    )
}

/// Whether `s` says the sticky queue has no live worker ([`sticky_worker_unavailable`]).
pub fn is_sticky_worker_unavailable(s: &Status) -> bool {
    s.code() == Code::FailedPrecondition && detail::<StickyWorkerUnavailableFailure>(s).is_some()
}

/// The status of an operation of a multi-operation that did not run because another
/// one failed (Temporal's MultiOperationAborted).
pub fn multi_operation_aborted() -> Status {
    use temper_proto::temporal::api::failure::v1::MultiOperationExecutionAborted;
    status_with_details(
        Code::Aborted,
        "Operation was aborted.",
        &MultiOperationExecutionAborted {},
    )
}

/// ExecuteMultiOperation's error: one status per operation (`None`: it succeeded), carried
/// in a MultiOperationExecutionFailure; the code is the first real failure's.
pub fn multi_operation_failure(message: &str, operations: Vec<Option<Status>>) -> Status {
    use temper_proto::temporal::api::errordetails::v1::MultiOperationExecutionFailure;
    use temper_proto::temporal::api::errordetails::v1::multi_operation_execution_failure::OperationStatus;
    use temper_proto::temporal::api::failure::v1::MultiOperationExecutionAborted;
    let mut code = None;
    let statuses = operations
        .into_iter()
        .map(|op| {
            let Some(st) = op else {
                return OperationStatus {
                    code: Code::Ok as i32,
                    ..Default::default()
                };
            };
            let details = details(&st);
            let aborted = details
                .iter()
                .any(is_detail::<MultiOperationExecutionAborted>);
            if code.is_none() && st.code() != Code::Ok && !aborted {
                code = Some(st.code());
            }
            OperationStatus {
                code: st.code() as i32,
                message: st.message().to_string(),
                details,
            }
        })
        .collect();
    status_with_details(
        code.unwrap_or(Code::Aborted),
        message,
        &MultiOperationExecutionFailure { statuses },
    )
}

/// A refused worker deployment call, with the codes Temporal answers: an unknown deployment
/// or version is NOT_FOUND, a stale conflict token FAILED_PRECONDITION.
pub fn deployment_status(e: crate::deployments::DeploymentError) -> Status {
    use crate::deployments::DeploymentError as E;
    let message = e.to_string();
    match e {
        E::NotFound(_) => not_found(message),
        E::ConflictToken | E::FailedPrecondition(_) => Status::failed_precondition(message),
        E::InvalidArgument(_) => Status::invalid_argument(message),
    }
}
