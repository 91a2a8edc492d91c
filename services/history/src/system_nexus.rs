//! System Nexus, the history service's part: a workflow's operation on the endpoint
//! `__temporal_system` is carried out by the server itself, with no Nexus worker. Its one
//! operation, SignalWithStartWorkflowExecution, signal-with-starts the target workflow in the
//! caller's namespace through the history service that owns it (any shard, any node), and
//! answers synchronously: the response as the operation's result, with a link to the signal's
//! event, which the caller's NexusOperationCompleted carries. The target's events link back
//! to the caller's NexusOperationScheduled. What the request must be is checked when the
//! command is accepted (`temper_workflow::system_nexus`).
//!
//! An error of the signal-with-start becomes the attempt's failure as Temporal words it
//! (`"<error type>: <message>"`, a server failure): one a retry may fix (unavailable,
//! internal...) backs off and tries again, any other fails the operation.

use temper_client::HistoryClient;
use temper_persistence::ExecutionKey;
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::common::v1::{Link, link};
use temper_proto::temporal::api::enums::v1::EventType;
use temper_proto::temporal::api::errordetails::v1 as details;
use temper_proto::temporal::api::failure::v1::{Failure, ServerFailureInfo, failure::FailureInfo};
use temper_workflow::nexus::StartOutcome;
use temper_workflow::{Limits, pb, system_nexus};
use tonic::Code;

/// Carry out operation `op` of the run `key` (in namespace `namespace`): its answer.
pub(crate) async fn start(
    history: &HistoryClient,
    key: &ExecutionKey,
    namespace: &str,
    op: &pb::NexusOperationInfo,
    limits: &Limits,
) -> StartOutcome {
    let request = match system_nexus::request(
        &op.service,
        &op.operation,
        op.input.as_ref(),
        namespace,
        &op.request_id,
        vec![caller_link(namespace, key, op.scheduled_event_id)],
        limits,
    ) {
        Ok(r) => r,
        // Checked when the command was accepted; only a renamed namespace gets here.
        Err(e) => {
            return StartOutcome::Failed {
                cause: server_failure(format!("InvalidArgument: {e}"), true),
                canceled: false,
            };
        }
    };
    let req = internal::SignalWithStartWorkflowExecutionRequest {
        namespace_id: key.namespace_id.0.clone(),
        request: Some(request),
    };
    match history
        .signal_with_start_workflow_execution(tonic::Request::new(req))
        .await
    {
        Ok(resp) => {
            let resp = resp.into_inner();
            StartOutcome::Completed {
                result: Some(system_nexus::response_payload(&resp)),
                links: resp.signal_link.into_iter().collect(),
            }
        }
        Err(status) => outcome_of_error(&status),
    }
}

/// The link to the caller's NexusOperationScheduled event the target's events carry.
fn caller_link(namespace: &str, key: &ExecutionKey, scheduled_event_id: i64) -> Link {
    Link {
        variant: Some(link::Variant::WorkflowEvent(link::WorkflowEvent {
            namespace: namespace.to_owned(),
            workflow_id: key.workflow_id.clone(),
            run_id: key.run_id.clone(),
            reference: Some(link::workflow_event::Reference::EventRef(
                link::workflow_event::EventReference {
                    event_id: scheduled_event_id,
                    event_type: EventType::NexusOperationScheduled as i32,
                },
            )),
        })),
    }
}

/// What a failed signal-with-start does to the operation: retried if a new attempt may work
/// (the gRPC codes Temporal retries), failed otherwise.
fn outcome_of_error(status: &tonic::Status) -> StartOutcome {
    let retryable = matches!(
        status.code(),
        Code::Cancelled
            | Code::Unknown
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
    );
    let failure = server_failure(
        format!("{}: {}", error_type(status), status.message()),
        !retryable,
    );
    if retryable {
        StartOutcome::Retry(failure)
    } else {
        StartOutcome::Failed {
            cause: failure,
            canceled: false,
        }
    }
}

fn server_failure(message: String, non_retryable: bool) -> Failure {
    Failure {
        message,
        failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
            non_retryable,
        })),
        ..Default::default()
    }
}

/// The name of the Temporal service error a status stands for (the Go server's error type,
/// which its failure messages start with): by its error detail, else by its code.
fn error_type(status: &tonic::Status) -> &'static str {
    use temper_client::status::is_detail;
    for any in temper_client::status::details(status) {
        let by_detail = [
            (
                is_detail::<details::WorkflowExecutionAlreadyStartedFailure>(&any),
                "WorkflowExecutionAlreadyStarted",
            ),
            (
                is_detail::<details::NamespaceNotFoundFailure>(&any),
                "NamespaceNotFound",
            ),
            (
                is_detail::<details::NamespaceNotActiveFailure>(&any),
                "NamespaceNotActive",
            ),
            (
                is_detail::<details::NamespaceInvalidStateFailure>(&any),
                "NamespaceInvalidState",
            ),
            (
                is_detail::<details::WorkflowNotReadyFailure>(&any),
                "WorkflowNotReady",
            ),
            (
                is_detail::<details::PermissionDeniedFailure>(&any),
                "PermissionDenied",
            ),
            (
                is_detail::<details::ResourceExhaustedFailure>(&any),
                "ResourceExhausted",
            ),
        ];
        if let Some((_, name)) = by_detail.iter().find(|(is, _)| *is) {
            return name;
        }
    }
    match status.code() {
        Code::InvalidArgument => "InvalidArgument",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::Unavailable => "Unavailable",
        Code::Unimplemented => "Unimplemented",
        Code::Cancelled => "Canceled",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::Unauthenticated => "Unauthenticated",
        Code::Aborted => "Aborted",
        Code::DataLoss => "DataLoss",
        Code::OutOfRange => "OutOfRange",
        Code::Ok | Code::Unknown | Code::Internal => "Internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(outcome: StartOutcome) -> Failure {
        match outcome {
            StartOutcome::Failed { cause, canceled } => {
                assert!(!canceled);
                cause
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn an_already_started_target_fails_the_operation_in_temporals_words() {
        let status = temper_client::status::already_started(
            "Workflow execution already finished. WorkflowId: w, RunId: r. Workflow Id reuse policy: reject duplicate workflow Id.",
            "r".into(),
            "req".into(),
        );
        let f = failed(outcome_of_error(&status));
        assert_eq!(
            f.message,
            "WorkflowExecutionAlreadyStarted: Workflow execution already finished. WorkflowId: w, RunId: r. Workflow Id reuse policy: reject duplicate workflow Id."
        );
        assert_eq!(
            f.failure_info,
            Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
                non_retryable: true
            }))
        );
        let f = failed(outcome_of_error(&tonic::Status::invalid_argument("bad")));
        assert_eq!(f.message, "InvalidArgument: bad");
    }

    #[test]
    fn an_unavailable_target_is_tried_again() {
        match outcome_of_error(&tonic::Status::unavailable("shard moving")) {
            StartOutcome::Retry(f) => {
                assert_eq!(f.message, "Unavailable: shard moving");
                assert_eq!(
                    f.failure_info,
                    Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
                        non_retryable: false
                    }))
                );
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }
}
