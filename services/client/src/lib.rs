//! How the services call each other. The frontend and matching reach history, and history
//! and the frontend reach matching, only through these handles; the binary decides what is
//! behind them (the service itself in one process, a routing gRPC client in a cluster).

use std::sync::Arc;

pub mod history_router;
pub mod matching_router;
pub mod routing;
pub mod trace;

pub use history_router::HistoryRouter;
pub use routing::{Channels, Placement, RetryPolicy, Target};

/// Largest message sent or accepted between nodes (history pages can be large).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

pub use temper_proto::internal::v1::history_service_server::HistoryService;
pub use temper_proto::internal::v1::matching_service_server::MatchingService;

/// A handle on the history service.
pub type HistoryClient = Arc<dyn HistoryService>;

/// A handle on the matching service.
pub type MatchingClient = Arc<dyn MatchingService>;

/// Calls one method of an internal service and unwraps the response.
///
/// `call!(client.record_workflow_task_started(req))` is
/// `client.record_workflow_task_started(tonic::Request::new(req)).await.map(into_inner)`.
#[macro_export]
macro_rules! call {
    ($client:ident . $method:ident ( $req:expr )) => {
        $client
            .$method(::tonic::Request::new($req))
            .await
            .map(::tonic::Response::into_inner)
    };
    ($client:expr => $method:ident ( $req:expr )) => {
        $client
            .$method(::tonic::Request::new($req))
            .await
            .map(::tonic::Response::into_inner)
    };
}

/// Status codes with a fixed meaning between temper's services.
pub mod status {
    use tonic::{Code, Status};

    /// Prefix of the message history uses when a task handed out by matching is obsolete
    /// (the workflow closed, the event is no longer pending, or another poll started it).
    /// Matching drops such a task instead of retrying it.
    pub const TASK_OBSOLETE: &str = "task obsolete: ";

    /// Prefix of the message matching uses when a sticky queue has no live worker; history
    /// then moves the workflow task to the workflow's normal queue.
    pub const STICKY_WORKER_UNAVAILABLE: &str = "sticky worker unavailable: ";

    pub fn task_obsolete(why: impl std::fmt::Display) -> Status {
        Status::not_found(format!("{TASK_OBSOLETE}{why}"))
    }

    pub fn is_task_obsolete(s: &Status) -> bool {
        s.code() == Code::NotFound && s.message().starts_with(TASK_OBSOLETE)
    }

    pub fn sticky_worker_unavailable(queue: &str) -> Status {
        Status::failed_precondition(format!("{STICKY_WORKER_UNAVAILABLE}{queue}"))
    }

    pub fn is_sticky_worker_unavailable(s: &Status) -> bool {
        s.code() == Code::FailedPrecondition && s.message().starts_with(STICKY_WORKER_UNAVAILABLE)
    }

    /// The status of an operation of a multi-operation that did not run because another
    /// one failed (Temporal's MultiOperationAborted).
    pub fn multi_operation_aborted() -> Status {
        use temper_proto::temporal::api::failure::v1::MultiOperationExecutionAborted;
        with_detail(
            Code::Aborted,
            "Operation was aborted.",
            &MultiOperationExecutionAborted {},
        )
    }

    /// ExecuteMultiOperation's error: one status per operation (`None`: it succeeded), carried
    /// in a MultiOperationExecutionFailure; the code is the first real failure's.
    pub fn multi_operation_failure(message: &str, operations: Vec<Option<Status>>) -> Status {
        use prost::Message;
        use temper_proto::temporal::api::errordetails::v1::MultiOperationExecutionFailure;
        use temper_proto::temporal::api::errordetails::v1::multi_operation_execution_failure::OperationStatus;
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
                let details = temper_proto::google::rpc::Status::decode(st.details())
                    .map(|d| d.details)
                    .unwrap_or_default();
                let aborted = details
                    .iter()
                    .any(|d| d.type_url.ends_with("MultiOperationExecutionAborted"));
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
        with_detail(
            code.unwrap_or(Code::Aborted),
            message,
            &MultiOperationExecutionFailure { statuses },
        )
    }

    fn with_detail<M: prost::Message + prost::Name>(
        code: Code,
        message: &str,
        detail: &M,
    ) -> Status {
        use prost::Message as _;
        let st = temper_proto::google::rpc::Status {
            code: code as i32,
            message: message.to_string(),
            details: vec![temper_proto::wkt::Any {
                type_url: format!("type.googleapis.com/{}", M::full_name()),
                value: detail.encode_to_vec(),
            }],
        };
        Status::with_details(code, message, st.encode_to_vec().into())
    }
}
