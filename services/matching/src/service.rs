//! The internal `MatchingService` API: request validation (with Temporal's messages) and
//! conversion, then the engine does the work.

use std::time::Duration;

use temper_client::MatchingService;
use temper_proto::internal::v1::{
    AddActivityTaskRequest, AddActivityTaskResponse, AddWorkflowTaskRequest,
    AddWorkflowTaskResponse, DescribeTaskQueueRequest, ForceLoadTaskQueuePartitionRequest,
    ForceLoadTaskQueuePartitionResponse, PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest, QueryWorkflowRequest, QueryWorkflowResponse,
    RespondQueryTaskCompletedRequest, RespondQueryTaskCompletedResponse, ShutdownWorkerRequest,
    ShutdownWorkerResponse, VersionDirective,
};
use temper_proto::temporal::api::common::v1::{Priority, WorkflowExecution};
use temper_proto::temporal::api::taskqueue::v1::TaskQueue as TaskQueueRef;
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeTaskQueueResponse, PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse,
};
use temper_proto::wkt;
use temper_types::NamespaceId;
use tonic::{Request, Response, Status};

use crate::engine::{Core, Poll, PollRequest, PollResponse, Sdk};
use crate::forward::is_forwarded;
use crate::key::{QueueKey, QueueKind, QueueType};
use crate::pollers::PollerSeen;
use crate::priority::TaskPriority;
use crate::task::TaskInfo;

pub(crate) fn namespace(namespace_id: &str) -> Result<NamespaceId, Status> {
    if namespace_id.is_empty() {
        return Err(Status::invalid_argument("Namespace is not set on request."));
    }
    Ok(NamespaceId(namespace_id.to_owned()))
}

pub(crate) fn task_queue(tq: Option<&TaskQueueRef>) -> Result<&TaskQueueRef, Status> {
    match tq {
        Some(tq) if !tq.name.is_empty() => Ok(tq),
        _ => Err(Status::invalid_argument("TaskQueue is not set on request.")),
    }
}

fn execution(execution: Option<&WorkflowExecution>) -> Result<&WorkflowExecution, Status> {
    let execution =
        execution.ok_or_else(|| Status::invalid_argument("Execution is not set on request."))?;
    if execution.workflow_id.is_empty() {
        return Err(Status::invalid_argument(
            "WorkflowId is not set on request.",
        ));
    }
    Ok(execution)
}

/// A positive protobuf duration, or `None` for unset, zero or malformed.
fn positive_duration(d: Option<&wkt::Duration>) -> Option<Duration> {
    let d = Duration::try_from(*d?).ok()?;
    (!d.is_zero()).then_some(d)
}

impl Core {
    /// The task an add request (workflow or activity) describes, created now.
    // The fields the two add requests share; no proto type groups them.
    #[allow(clippy::too_many_arguments)]
    fn task_info(
        &self,
        namespace_id: &NamespaceId,
        execution: &WorkflowExecution,
        scheduled_event_id: i64,
        attempt: i32,
        schedule_to_start: Option<&wkt::Duration>,
        directive: Option<VersionDirective>,
        priority: Option<&Priority>,
    ) -> TaskInfo {
        let now = self.clock().now();
        TaskInfo {
            namespace_id: namespace_id.0.clone(),
            execution: execution.clone(),
            scheduled_event_id,
            attempt,
            create_time: now,
            expiry_time: positive_duration(schedule_to_start).and_then(|d| now.checked_add(d)),
            directive: directive.map(Box::new),
            priority: TaskPriority::from_proto(priority),
        }
    }

    fn long_poll_timeout(&self, ms: i64) -> Duration {
        if ms > 0 {
            Duration::from_millis(ms.unsigned_abs())
        } else {
            self.config().default_long_poll_timeout
        }
    }

    fn poller_id(id: &str) -> String {
        if id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            id.to_owned()
        }
    }

    fn shutdown_worker_now(&self, req: ShutdownWorkerRequest) -> Result<(), Status> {
        let ns = namespace(&req.namespace_id)?;
        let Some(request) = req.request else {
            return Ok(());
        };
        if !request.sticky_task_queue.is_empty() {
            let key = QueueKey::new(
                ns.clone(),
                &request.sticky_task_queue,
                QueueType::Workflow,
                QueueKind::Sticky,
            );
            if self.unload(&key).is_some() {
                tracing::debug!(queue = %key, identity = %request.identity,
                    "sticky queue shut down by its worker");
            }
        }
        if !request.task_queue.is_empty() && !request.worker_instance_key.is_empty() {
            let types: Vec<QueueType> = if request.task_queue_types.is_empty() {
                vec![QueueType::Workflow, QueueType::Activity]
            } else {
                request
                    .task_queue_types
                    .iter()
                    .filter_map(|t| QueueType::from_i32(*t))
                    .collect()
            };
            let queues = self.loaded_where(|key| {
                key.namespace_id == ns
                    && key.name == request.task_queue
                    && key.kind == QueueKind::Normal
                    && types.contains(&key.task_type)
            });
            for queue in queues {
                let n = queue.cancel_polls_of(&request.worker_instance_key);
                if n > 0 {
                    tracing::debug!(queue = %queue.key(), polls = n,
                        "ended the polls of a worker that is shutting down");
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl MatchingService for Core {
    async fn add_workflow_task(
        &self,
        request: Request<AddWorkflowTaskRequest>,
    ) -> Result<Response<AddWorkflowTaskResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let tq = task_queue(req.task_queue.as_ref())?;
        let execution = execution(req.execution.as_ref())?;
        let key = QueueKey::from_name(
            ns.clone(),
            &tq.name,
            QueueType::Workflow,
            QueueKind::from_i32(tq.kind),
        );
        let info = self.task_info(
            &ns,
            execution,
            req.scheduled_event_id,
            req.attempt,
            req.schedule_to_start_timeout.as_ref(),
            req.directive.clone(),
            req.priority.as_ref(),
        );
        let key = self
            .route_task(
                key,
                req.directive.as_ref(),
                &execution.workflow_id,
                forwarded,
            )
            .await?;
        self.add_task(key, info, forwarded).await?;
        Ok(Response::new(AddWorkflowTaskResponse {}))
    }

    async fn add_activity_task(
        &self,
        request: Request<AddActivityTaskRequest>,
    ) -> Result<Response<AddActivityTaskResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let tq = task_queue(req.task_queue.as_ref())?;
        let execution = execution(req.execution.as_ref())?;
        // Activities always go to the normal queue.
        let key = QueueKey::from_name(ns.clone(), &tq.name, QueueType::Activity, QueueKind::Normal);
        let info = self.task_info(
            &ns,
            execution,
            req.scheduled_event_id,
            req.attempt,
            req.schedule_to_start_timeout.as_ref(),
            req.directive.clone(),
            req.priority.as_ref(),
        );
        let key = self
            .route_task(
                key,
                req.directive.as_ref(),
                &execution.workflow_id,
                forwarded,
            )
            .await?;
        self.add_task(key, info, forwarded).await?;
        Ok(Response::new(AddActivityTaskResponse {}))
    }

    #[allow(deprecated)] // worker_version_capabilities: still sent by older SDKs.
    async fn poll_workflow_task_queue(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let poll = req
            .request
            .ok_or_else(|| Status::invalid_argument("Request is nil."))?;
        let tq = task_queue(poll.task_queue.as_ref())?;
        let key = QueueKey::from_name(
            ns,
            &tq.name,
            QueueType::Workflow,
            QueueKind::from_i32(tq.kind),
        );
        let key = self.poll_key(key, poll.deployment_options.as_ref()).await?;
        let poller = PollerSeen {
            identity: poll.identity.clone(),
            max_tasks_per_second: None,
            worker_version_capabilities: poll.worker_version_capabilities.clone(),
            deployment_options: poll.deployment_options.clone(),
        };
        let poll = Poll {
            key,
            poller,
            poller_id: Self::poller_id(&req.poller_id),
            worker_instance_key: poll.worker_instance_key.clone(),
            timeout: self.long_poll_timeout(req.long_poll_timeout_ms),
            request: PollRequest::Workflow(poll),
            forwarded,
        };
        match self.poll(poll).await? {
            Some(PollResponse::Workflow(response)) => Ok(Response::new(response)),
            _ => Ok(Response::new(PollWorkflowTaskQueueResponse::default())),
        }
    }

    #[allow(deprecated)] // worker_version_capabilities: still sent by older SDKs.
    async fn poll_activity_task_queue(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let poll = req
            .request
            .ok_or_else(|| Status::invalid_argument("Request is nil."))?;
        let tq = task_queue(poll.task_queue.as_ref())?;
        let key = QueueKey::from_name(ns, &tq.name, QueueType::Activity, QueueKind::Normal);
        let key = self.poll_key(key, poll.deployment_options.as_ref()).await?;
        let poller = PollerSeen {
            identity: poll.identity.clone(),
            max_tasks_per_second: poll
                .task_queue_metadata
                .as_ref()
                .and_then(|m| m.max_tasks_per_second),
            worker_version_capabilities: poll.worker_version_capabilities.clone(),
            deployment_options: poll.deployment_options.clone(),
        };
        let poll = Poll {
            key,
            poller,
            poller_id: Self::poller_id(&req.poller_id),
            worker_instance_key: poll.worker_instance_key.clone(),
            timeout: self.long_poll_timeout(req.long_poll_timeout_ms),
            request: PollRequest::Activity(
                poll,
                Sdk {
                    name: req.sdk_name.clone(),
                    version: req.sdk_version.clone(),
                },
            ),
            forwarded,
        };
        match self.poll(poll).await? {
            Some(PollResponse::Activity(response)) => Ok(Response::new(response)),
            _ => Ok(Response::new(PollActivityTaskQueueResponse::default())),
        }
    }

    async fn describe_task_queue(
        &self,
        request: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        let forwarded = is_forwarded(&request);
        self.describe(request.into_inner(), forwarded)
            .await
            .map(Response::new)
    }

    async fn shutdown_worker(
        &self,
        request: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        self.shutdown_worker_now(request.into_inner())?;
        Ok(Response::new(ShutdownWorkerResponse {}))
    }

    async fn query_workflow(
        &self,
        request: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        let forwarded = is_forwarded(&request);
        self.dispatch_query(request.into_inner(), forwarded)
            .await
            .map(Response::new)
    }

    async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<RespondQueryTaskCompletedResponse>, Status> {
        self.deliver_query_answer(request.into_inner())?;
        Ok(Response::new(RespondQueryTaskCompletedResponse {}))
    }

    async fn dispatch_nexus_task(
        &self,
        request: Request<temper_proto::internal::v1::DispatchNexusTaskRequest>,
    ) -> Result<Response<temper_proto::internal::v1::DispatchNexusTaskResponse>, Status> {
        self.dispatch_nexus(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn poll_nexus_task_queue(
        &self,
        request: Request<temper_proto::internal::v1::PollNexusTaskQueueRequest>,
    ) -> Result<
        Response<temper_proto::temporal::api::workflowservice::v1::PollNexusTaskQueueResponse>,
        Status,
    > {
        let forwarded = is_forwarded(&request);
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let poll = req
            .request
            .ok_or_else(|| Status::invalid_argument("Request is nil."))?;
        let tq = task_queue(poll.task_queue.as_ref())?;
        let key = QueueKey::from_name(ns, &tq.name, QueueType::Nexus, QueueKind::Normal);
        #[allow(deprecated)] // worker_version_capabilities: still sent by older SDKs.
        let poller = PollerSeen {
            identity: poll.identity.clone(),
            max_tasks_per_second: None,
            worker_version_capabilities: poll.worker_version_capabilities.clone(),
            deployment_options: poll.deployment_options.clone(),
        };
        let poll = Poll {
            key,
            poller,
            poller_id: Self::poller_id(&req.poller_id),
            worker_instance_key: poll.worker_instance_key.clone(),
            timeout: self.long_poll_timeout(req.long_poll_timeout_ms),
            request: PollRequest::Nexus(poll),
            forwarded,
        };
        match self.poll(poll).await? {
            Some(PollResponse::Nexus(response)) => Ok(Response::new(response)),
            _ => Ok(Response::new(Default::default())),
        }
    }

    async fn respond_nexus_task_completed(
        &self,
        request: Request<temper_proto::internal::v1::RespondNexusTaskCompletedRequest>,
    ) -> Result<Response<temper_proto::internal::v1::RespondNexusTaskCompletedResponse>, Status>
    {
        self.deliver_nexus_completed(request.into_inner())?;
        Ok(Response::new(Default::default()))
    }

    async fn respond_nexus_task_failed(
        &self,
        request: Request<temper_proto::internal::v1::RespondNexusTaskFailedRequest>,
    ) -> Result<Response<temper_proto::internal::v1::RespondNexusTaskFailedResponse>, Status> {
        self.deliver_nexus_failed(request.into_inner())?;
        Ok(Response::new(Default::default()))
    }

    async fn force_load_task_queue_partition(
        &self,
        request: Request<ForceLoadTaskQueuePartitionRequest>,
    ) -> Result<Response<ForceLoadTaskQueuePartitionResponse>, Status> {
        let req = request.into_inner();
        let ns = namespace(&req.namespace_id)?;
        let tq = task_queue(req.task_queue.as_ref())?;
        let task_type = match QueueType::from_i32(req.task_queue_type) {
            Some(t @ (QueueType::Workflow | QueueType::Activity)) => t,
            _ => {
                return Err(Status::invalid_argument(format!(
                    "task queue type {} has no backlog to load; only workflow and activity task queues do",
                    req.task_queue_type
                )));
            }
        };
        let key = QueueKey::from_name(ns, &tq.name, task_type, QueueKind::Normal)
            .with_version(req.version);
        let was_unloaded = self.loaded(&key).is_none();
        self.queue(&key).await?;
        Ok(Response::new(ForceLoadTaskQueuePartitionResponse {
            was_unloaded,
        }))
    }
}
