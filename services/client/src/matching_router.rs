//! The matching client of a cluster node: each call goes to the node that owns the task
//! queue partition, in-process when that is this node. Adds and polls on a normal queue
//! that name the queue itself (not one of its partitions) are spread over its partitions at
//! random, as Temporal's matching client does; matching forwards between partitions.

use std::sync::Arc;

use rand::Rng;
use temper_proto::internal::v1 as internal;
use temper_proto::internal::v1::matching_service_client::MatchingServiceClient;
use temper_proto::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue;
use temper_proto::temporal::api::workflowservice::v1 as ws;
use temper_types::{
    FORWARDED_FROM_HEADER, PartitionConfig, parse_partition, partition_name, routing_key,
};
use tonic::{Request, Response, Status};

use crate::routing::{Channels, Placement, RetryPolicy, Target, remote_call, with_retries};
use crate::{MatchingClient, MatchingService};

/// Routes every `MatchingService` call by task-queue partition.
pub struct MatchingRouter {
    partitions: PartitionConfig,
    placement: Arc<dyn Placement>,
    local: Option<MatchingClient>,
    channels: Arc<Channels>,
    policy: RetryPolicy,
}

impl MatchingRouter {
    pub fn new(
        partitions: PartitionConfig,
        placement: Arc<dyn Placement>,
        local: Option<MatchingClient>,
        channels: Arc<Channels>,
        policy: RetryPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            partitions,
            placement,
            local,
            channels,
            policy,
        })
    }

    fn place(&self, key: &str) -> Option<Target> {
        match self.placement.matching_partition(key) {
            Some(Target::Local) if self.local.is_none() => None,
            t => t,
        }
    }

    /// Pick a partition for an add or poll that names a normal queue by its own name. Calls
    /// matching forwarded from one partition to another go exactly where they are sent.
    fn spread(&self, queue: &mut Option<TaskQueue>) {
        let Some(q) = queue.as_mut() else { return };
        if q.kind == TaskQueueKind::Sticky as i32 {
            return;
        }
        let (base, n) = parse_partition(&q.name);
        if n != 0 {
            return;
        }
        let count = self.partitions.partitions(base);
        if count > 1 {
            let k = rand::rng().random_range(0..count);
            q.name = partition_name(base, k);
        }
    }

    fn remote(
        &self,
        address: &str,
    ) -> Result<MatchingServiceClient<tonic::transport::Channel>, Status> {
        Ok(MatchingServiceClient::new(self.channels.get(address)?)
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES))
    }
}

fn key_of(ns: &str, queue: Option<&TaskQueue>, task_type: TaskQueueType) -> String {
    let name = queue.map(|q| q.name.as_str()).unwrap_or_default();
    routing_key(ns, name, task_type as i32)
}

/// One routed method: `name(Request) -> Response, |request| routing key`, with an
/// optional `spread |request| ...` step that picks the partition first.
macro_rules! routed {
    ($($method:ident($req:ty) -> $resp:ty, $(spread |$s:ident, $me:ident| $spread:expr,)? |$r:ident| $key:expr;)*) => {
        #[tonic::async_trait]
        impl MatchingService for MatchingRouter {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let forwarded = request.metadata().get(FORWARDED_FROM_HEADER).cloned();
                    #[allow(unused_mut)]
                    let mut req = request.into_inner();
                    $( if forwarded.is_none() { let $s = &mut req; let $me = self; $spread; } )?
                    let key = {
                        let $r = &req;
                        $key
                    };
                    with_retries(&self.policy, &key, || self.place(&key), |target| {
                        let mut req = Request::new(req.clone());
                        if let Some(v) = &forwarded {
                            req.metadata_mut().insert(FORWARDED_FROM_HEADER, v.clone());
                        }
                        async move {
                            match target {
                                Target::Local => {
                                    let local = self.local.as_ref().ok_or_else(|| {
                                        Status::unavailable("this node runs no matching service")
                                    })?;
                                    local.$method(req).await
                                }
                                Target::Remote(address) => {
                                    let mut client = self.remote(&address)?;
                                    remote_call(&self.policy, &address, client.$method(crate::trace::traced(req))).await
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
    add_workflow_task(internal::AddWorkflowTaskRequest) -> internal::AddWorkflowTaskResponse,
        spread |r, me| me.spread(&mut r.task_queue),
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Workflow);
    add_activity_task(internal::AddActivityTaskRequest) -> internal::AddActivityTaskResponse,
        spread |r, me| me.spread(&mut r.task_queue),
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Activity);
    poll_workflow_task_queue(internal::PollWorkflowTaskQueueRequest) -> ws::PollWorkflowTaskQueueResponse,
        spread |r, me| if let Some(q) = r.request.as_mut() { me.spread(&mut q.task_queue) },
        |r| key_of(&r.namespace_id, r.request.as_ref().and_then(|q| q.task_queue.as_ref()), TaskQueueType::Workflow);
    poll_activity_task_queue(internal::PollActivityTaskQueueRequest) -> ws::PollActivityTaskQueueResponse,
        spread |r, me| if let Some(q) = r.request.as_mut() { me.spread(&mut q.task_queue) },
        |r| key_of(&r.namespace_id, r.request.as_ref().and_then(|q| q.task_queue.as_ref()), TaskQueueType::Activity);
    describe_task_queue(internal::DescribeTaskQueueRequest) -> ws::DescribeTaskQueueResponse,
        |r| {
            let q = r.request.as_ref();
            let t = q.map(|q| q.task_queue_type).unwrap_or_default();
            let t = TaskQueueType::try_from(t).unwrap_or(TaskQueueType::Workflow);
            key_of(&r.namespace_id, q.and_then(|q| q.task_queue.as_ref()), t)
        };
    shutdown_worker(internal::ShutdownWorkerRequest) -> internal::ShutdownWorkerResponse,
        |r| {
            let name = r.request.as_ref().map(|q| q.sticky_task_queue.as_str()).unwrap_or_default();
            routing_key(&r.namespace_id, name, TaskQueueType::Workflow as i32)
        };
    query_workflow(internal::QueryWorkflowRequest) -> internal::QueryWorkflowResponse,
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Workflow);
    respond_query_task_completed(internal::RespondQueryTaskCompletedRequest) -> internal::RespondQueryTaskCompletedResponse,
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Workflow);
    dispatch_nexus_task(internal::DispatchNexusTaskRequest) -> internal::DispatchNexusTaskResponse,
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Nexus);
    poll_nexus_task_queue(internal::PollNexusTaskQueueRequest) -> ws::PollNexusTaskQueueResponse,
        spread |r, me| if let Some(q) = r.request.as_mut() { me.spread(&mut q.task_queue) },
        |r| key_of(&r.namespace_id, r.request.as_ref().and_then(|q| q.task_queue.as_ref()), TaskQueueType::Nexus);
    respond_nexus_task_completed(internal::RespondNexusTaskCompletedRequest) -> internal::RespondNexusTaskCompletedResponse,
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Nexus);
    respond_nexus_task_failed(internal::RespondNexusTaskFailedRequest) -> internal::RespondNexusTaskFailedResponse,
        |r| key_of(&r.namespace_id, r.task_queue.as_ref(), TaskQueueType::Nexus);
    force_load_task_queue_partition(internal::ForceLoadTaskQueuePartitionRequest) -> internal::ForceLoadTaskQueuePartitionResponse,
        |r| routing_key(&r.namespace_id, r.task_queue.as_ref().map(|q| q.name.as_str()).unwrap_or_default(), r.task_queue_type);
}
