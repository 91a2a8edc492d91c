//! How the services call each other. The frontend and matching reach history, and history
//! and the frontend reach matching, only through these handles; the binary decides what is
//! behind them (the service itself in one process, a routing gRPC client in a cluster).

use std::sync::Arc;

pub mod deployments;
pub mod history_router;
pub mod matching_router;
pub mod nexus_endpoints;
pub mod routing;
pub mod status;
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
