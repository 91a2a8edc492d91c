//! The history client of a cluster node: each call goes to the node that owns the
//! workflow's shard (in-process when that is this node), and follows the shard when it
//! moves.

use std::sync::Arc;

use prost::Message;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::history_service_client::HistoryServiceClient;
use temper_proto::persistence::v1::TaskToken;
use temper_proto::temporal::api::common::v1::WorkflowExecution;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::{NamespaceId, shard_for_workflow};
use tonic::{Request, Response, Status};

use crate::routing::{Channels, Placement, RetryPolicy, Target, remote_call, with_retries};
use crate::{HistoryClient, HistoryService};

/// Routes every `HistoryService` call by shard.
pub struct HistoryRouter {
    num_shards: u32,
    placement: Arc<dyn Placement>,
    /// This node's history service, when it runs the history role.
    local: Option<HistoryClient>,
    channels: Arc<Channels>,
    policy: RetryPolicy,
}

impl HistoryRouter {
    pub fn new(
        num_shards: u32,
        placement: Arc<dyn Placement>,
        local: Option<HistoryClient>,
        channels: Arc<Channels>,
        policy: RetryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            num_shards,
            placement,
            local,
            channels,
            policy,
        })
    }

    /// The shard a request is for. A request whose key cannot be read (a garbled task
    /// token, a missing execution) goes to shard 1, whose owner answers it with the same
    /// error as any other node would.
    fn shard(&self, key: Option<(String, String)>) -> u32 {
        match key {
            Some((ns, wf)) if !ns.is_empty() => {
                shard_for_workflow(&NamespaceId(ns), &wf, self.num_shards).0
            }
            _ => 1,
        }
    }

    fn place(&self, shard: u32) -> Option<Target> {
        match self.placement.history_shard(shard) {
            Some(Target::Local) if self.local.is_none() => None,
            t => t,
        }
    }

    fn remote(
        &self,
        address: &str,
    ) -> Result<HistoryServiceClient<tonic::transport::Channel>, Status> {
        Ok(HistoryServiceClient::new(self.channels.get(address)?)
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES))
    }
}

fn execution_key(ns: &str, e: Option<&WorkflowExecution>) -> Option<(String, String)> {
    e.map(|e| (ns.to_owned(), e.workflow_id.clone()))
}

fn token_key(token: &[u8]) -> Option<(String, String)> {
    TaskToken::decode(token)
        .ok()
        .map(|t| (t.namespace_id, t.workflow_id))
}

fn activity_key(
    ns: &str,
    token: Option<&[u8]>,
    by_id: Option<&internal::ActivityRef>,
) -> Option<(String, String)> {
    match by_id {
        Some(r) => Some((ns.to_owned(), r.workflow_id.clone())),
        None => token.and_then(token_key),
    }
}

/// One routed method: `name(Request) -> Response, |request| key`.
macro_rules! routed {
    ($($method:ident($req:ty) -> $resp:ty, |$r:ident| $key:expr;)*) => {
        #[tonic::async_trait]
        impl HistoryService for HistoryRouter {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let req = request.into_inner();
                    let shard = {
                        let $r = &req;
                        self.shard($key)
                    };
                    let what = format!("history shard {shard}");
                    with_retries(&self.policy, &what, || self.place(shard), |target| {
                        let req = req.clone();
                        async move {
                            match target {
                                Target::Local => {
                                    let local = self.local.as_ref().ok_or_else(|| {
                                        Status::unavailable("this node runs no history service")
                                    })?;
                                    local.$method(Request::new(req)).await
                                }
                                Target::Remote(address) => {
                                    let mut client = self.remote(&address)?;
                                    remote_call(&self.policy, &address, client.$method(crate::trace::traced(Request::new(req)))).await
                                }
                            }
                        }
                    })
                    .await
                }
            )*
        }
    };
}

routed! {
    start_workflow_execution(internal::StartWorkflowExecutionRequest) -> ws::StartWorkflowExecutionResponse,
        |r| r.request.as_ref().map(|q| (r.namespace_id.clone(), q.workflow_id.clone()));
    record_workflow_task_started(internal::RecordWorkflowTaskStartedRequest) -> internal::RecordWorkflowTaskStartedResponse,
        |r| execution_key(&r.namespace_id, r.execution.as_ref());
    record_activity_task_started(internal::RecordActivityTaskStartedRequest) -> internal::RecordActivityTaskStartedResponse,
        |r| execution_key(&r.namespace_id, r.execution.as_ref());
    respond_workflow_task_completed(internal::RespondWorkflowTaskCompletedRequest) -> ws::RespondWorkflowTaskCompletedResponse,
        |r| r.request.as_ref().and_then(|q| token_key(&q.task_token));
    respond_workflow_task_failed(internal::RespondWorkflowTaskFailedRequest) -> ws::RespondWorkflowTaskFailedResponse,
        |r| r.request.as_ref().and_then(|q| token_key(&q.task_token));
    respond_activity_task_completed(internal::RespondActivityTaskCompletedRequest) -> ws::RespondActivityTaskCompletedResponse,
        |r| activity_key(&r.namespace_id, r.request.as_ref().map(|q| q.task_token.as_slice()), r.by_id.as_ref());
    respond_activity_task_failed(internal::RespondActivityTaskFailedRequest) -> ws::RespondActivityTaskFailedResponse,
        |r| activity_key(&r.namespace_id, r.request.as_ref().map(|q| q.task_token.as_slice()), r.by_id.as_ref());
    respond_activity_task_canceled(internal::RespondActivityTaskCanceledRequest) -> ws::RespondActivityTaskCanceledResponse,
        |r| activity_key(&r.namespace_id, r.request.as_ref().map(|q| q.task_token.as_slice()), r.by_id.as_ref());
    record_activity_task_heartbeat(internal::RecordActivityTaskHeartbeatRequest) -> ws::RecordActivityTaskHeartbeatResponse,
        |r| activity_key(&r.namespace_id, r.request.as_ref().map(|q| q.task_token.as_slice()), r.by_id.as_ref());
    get_workflow_execution_history(internal::GetWorkflowExecutionHistoryRequest) -> ws::GetWorkflowExecutionHistoryResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    get_workflow_execution_history_reverse(internal::GetWorkflowExecutionHistoryReverseRequest) -> ws::GetWorkflowExecutionHistoryReverseResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    describe_workflow_execution(internal::DescribeWorkflowExecutionRequest) -> ws::DescribeWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    request_cancel_workflow_execution(internal::RequestCancelWorkflowExecutionRequest) -> ws::RequestCancelWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    terminate_workflow_execution(internal::TerminateWorkflowExecutionRequest) -> ws::TerminateWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    update_workflow_execution_options(internal::UpdateWorkflowExecutionOptionsRequest) -> ws::UpdateWorkflowExecutionOptionsResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    pause_activity(internal::PauseActivityRequest) -> ws::PauseActivityResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    unpause_activity(internal::UnpauseActivityRequest) -> ws::UnpauseActivityResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    reset_activity(internal::ResetActivityRequest) -> ws::ResetActivityResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    update_activity_options(internal::UpdateActivityOptionsRequest) -> ws::UpdateActivityOptionsResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    reset_sticky_task_queue(internal::ResetStickyTaskQueueRequest) -> ws::ResetStickyTaskQueueResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    signal_workflow_execution(internal::SignalWorkflowExecutionRequest) -> ws::SignalWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    signal_with_start_workflow_execution(internal::SignalWithStartWorkflowExecutionRequest) -> ws::SignalWithStartWorkflowExecutionResponse,
        |r| r.request.as_ref().map(|q| (r.namespace_id.clone(), q.workflow_id.clone()));
    record_child_execution_completed(internal::RecordChildExecutionCompletedRequest) -> internal::RecordChildExecutionCompletedResponse,
        |r| execution_key(&r.namespace_id, r.parent_execution.as_ref());
    prepare_query_task(internal::PrepareQueryTaskRequest) -> internal::PrepareQueryTaskResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.execution.as_ref()));
    update_workflow_execution(internal::UpdateWorkflowExecutionRequest) -> ws::UpdateWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    poll_workflow_execution_update(internal::PollWorkflowExecutionUpdateRequest) -> ws::PollWorkflowExecutionUpdateResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.update_ref.as_ref()).and_then(|u| u.workflow_execution.as_ref()));
    execute_multi_operation(internal::ExecuteMultiOperationRequest) -> ws::ExecuteMultiOperationResponse,
        |r| multi_operation_key(&r.namespace_id, r.request.as_ref());
    reset_workflow_execution(internal::ResetWorkflowExecutionRequest) -> ws::ResetWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    delete_workflow_execution(internal::DeleteWorkflowExecutionRequest) -> ws::DeleteWorkflowExecutionResponse,
        |r| execution_key(&r.namespace_id, r.request.as_ref().and_then(|q| q.workflow_execution.as_ref()));
    schedule_call(internal::ScheduleCallRequest) -> internal::ScheduleCallResponse,
        |r| Some((r.namespace_id.clone(), temper_types::scheduler_workflow_id(&r.schedule_id)));
    complete_nexus_operation(internal::CompleteNexusOperationRequest) -> internal::CompleteNexusOperationResponse,
        |r| execution_key(&r.namespace_id, r.execution.as_ref());
    activity_execution_call(internal::ActivityExecutionCallRequest) -> internal::ActivityExecutionCallResponse,
        |r| Some((r.namespace_id.clone(), temper_types::standalone_activity_workflow_id(&r.activity_id)));
    nexus_operation_execution_call(internal::NexusOperationExecutionCallRequest) -> internal::NexusOperationExecutionCallResponse,
        |r| Some((r.namespace_id.clone(), temper_types::standalone_nexus_operation_workflow_id(&r.operation_id)));
}

/// Every operation of a multi-operation names the same workflow; the first one with a
/// workflow id decides.
fn multi_operation_key(
    ns: &str,
    request: Option<&ws::ExecuteMultiOperationRequest>,
) -> Option<(String, String)> {
    use ws::execute_multi_operation_request::operation::Operation;
    request?
        .operations
        .iter()
        .find_map(|op| match op.operation.as_ref()? {
            Operation::StartWorkflow(s) => Some((ns.to_owned(), s.workflow_id.clone())),
            Operation::UpdateWorkflow(u) => execution_key(ns, u.workflow_execution.as_ref()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A history service that records which shard-owner answered.
    struct Recorder(Mutex<Vec<String>>);

    #[tonic::async_trait]
    impl HistoryService for Recorder {
        async fn describe_workflow_execution(
            &self,
            request: Request<internal::DescribeWorkflowExecutionRequest>,
        ) -> Result<Response<ws::DescribeWorkflowExecutionResponse>, Status> {
            let r = request.into_inner();
            let wf = r
                .request
                .and_then(|q| q.execution)
                .map(|e| e.workflow_id)
                .unwrap_or_default();
            self.0.lock().expect("not poisoned").push(wf);
            Ok(Response::new(
                ws::DescribeWorkflowExecutionResponse::default(),
            ))
        }
    }

    /// Local for odd shards; even shards belong to a node that is not there.
    struct OddLocal;
    impl Placement for OddLocal {
        fn history_shard(&self, shard: u32) -> Option<Target> {
            Some(if shard % 2 == 1 {
                Target::Local
            } else {
                Target::Remote("127.0.0.1:1".into())
            })
        }
        fn matching_partition(&self, _: &str) -> Option<Target> {
            None
        }
    }

    fn describe(ns: &str, wf: &str) -> internal::DescribeWorkflowExecutionRequest {
        internal::DescribeWorkflowExecutionRequest {
            namespace_id: ns.into(),
            request: Some(ws::DescribeWorkflowExecutionRequest {
                execution: Some(WorkflowExecution {
                    workflow_id: wf.into(),
                    run_id: String::new(),
                }),
                ..Default::default()
            }),
        }
    }

    #[tokio::test]
    async fn routes_by_the_workflows_shard() {
        let local = Arc::new(Recorder(Mutex::new(Vec::new())));
        let router = HistoryRouter::new(
            8,
            Arc::new(OddLocal),
            Some(local.clone() as HistoryClient),
            Channels::new(),
            RetryPolicy {
                budget: std::time::Duration::from_millis(60),
                initial_backoff: std::time::Duration::from_millis(5),
                max_backoff: std::time::Duration::from_millis(20),
                remote_call_timeout: std::time::Duration::from_secs(1),
            },
        );
        let mut local_ids = 0;
        for i in 0..40 {
            let wf = format!("wf-{i}");
            let shard = shard_for_workflow(&NamespaceId("ns".into()), &wf, 8).0;
            let r = router
                .describe_workflow_execution(Request::new(describe("ns", &wf)))
                .await;
            if shard % 2 == 1 {
                r.expect("a local shard answers");
                local_ids += 1;
            } else {
                // Nobody listens at the remote address: retried, then UNAVAILABLE.
                assert_eq!(
                    r.expect_err("remote owner is down").code(),
                    tonic::Code::Unavailable
                );
            }
        }
        assert!(local_ids > 0);
        assert_eq!(local.0.lock().expect("not poisoned").len(), local_ids);
    }

    #[test]
    fn keys_from_tokens_and_refs() {
        let token = TaskToken {
            namespace_id: "ns".into(),
            workflow_id: "wf".into(),
            run_id: "r".into(),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(token_key(&token), Some(("ns".into(), "wf".into())));
        assert_eq!(token_key(b"\xff\xff"), None);
        let by_id = internal::ActivityRef {
            workflow_id: "other".into(),
            ..Default::default()
        };
        assert_eq!(
            activity_key("ns2", Some(&token), Some(&by_id)),
            Some(("ns2".into(), "other".into()))
        );
        assert_eq!(
            activity_key("ns2", Some(&token), None),
            Some(("ns".into(), "wf".into()))
        );
    }
}
