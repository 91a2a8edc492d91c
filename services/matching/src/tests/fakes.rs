//! An in-memory `TaskQueueStore` and a scripted `HistoryService`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use temper_client::{HistoryService, status};
use temper_persistence::{QueueTask, StoreError, TaskQueueKey, TaskQueueLease, TaskQueueStore};
use temper_proto::internal::v1 as internal;
use temper_proto::temporal::api::workflowservice::v1 as api;
use temper_types::{RangeId, TaskId};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Row {
    range_id: i64,
    ack_level: TaskId,
    /// Task id -> (priority level, blob).
    tasks: BTreeMap<TaskId, (u8, Vec<u8>)>,
}

#[derive(Default)]
struct StoreState {
    rows: HashMap<TaskQueueKey, Row>,
    leases: usize,
    creates: usize,
    fail_next_create: Option<StoreError>,
}

/// The matching backlog in memory, with the store's lease and fencing rules.
#[derive(Default)]
pub(crate) struct FakeStore {
    state: Mutex<StoreState>,
}

impl FakeStore {
    fn with<R>(&self, f: impl FnOnce(&mut StoreState) -> R) -> R {
        f(&mut self.state.lock().expect("fake store lock"))
    }

    /// Stored task ids of a queue, ascending.
    pub fn task_ids(&self, key: &TaskQueueKey) -> Vec<TaskId> {
        self.with(|s| {
            s.rows
                .get(key)
                .map(|r| r.tasks.keys().copied().collect())
                .unwrap_or_default()
        })
    }

    /// Stored (task id, priority level) pairs of a queue, by task id.
    pub fn task_levels(&self, key: &TaskQueueKey) -> Vec<(TaskId, u8)> {
        self.with(|s| {
            s.rows
                .get(key)
                .map(|r| r.tasks.iter().map(|(id, (l, _))| (*id, *l)).collect())
                .unwrap_or_default()
        })
    }

    pub fn range_id(&self, key: &TaskQueueKey) -> i64 {
        self.with(|s| s.rows.get(key).map_or(0, |r| r.range_id))
    }

    pub fn leases(&self) -> usize {
        self.with(|s| s.leases)
    }

    pub fn creates(&self) -> usize {
        self.with(|s| s.creates)
    }

    /// Another node takes the lease.
    pub fn steal_lease(&self, key: &TaskQueueKey) {
        self.with(|s| s.rows.entry(key.clone()).or_default().range_id += 1);
    }

    pub fn fail_next_create(&self, err: StoreError) {
        self.with(|s| s.fail_next_create = Some(err));
    }
}

fn lost(held: RangeId, actual: i64) -> StoreError {
    StoreError::OwnershipLost {
        held,
        actual: RangeId(actual),
    }
}

#[async_trait]
impl TaskQueueStore for FakeStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<TaskQueueLease, StoreError> {
        self.with(|s| {
            s.leases += 1;
            let row = s.rows.entry(key.clone()).or_default();
            row.range_id += 1;
            Ok(TaskQueueLease {
                range_id: RangeId(row.range_id),
                ack_level: row.ack_level,
            })
        })
    }

    async fn update_task_queue(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        ack_level: TaskId,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let row = s
                .rows
                .get_mut(key)
                .ok_or_else(|| StoreError::NotFound(key.name.clone()))?;
            if row.range_id != range_id.0 {
                return Err(lost(range_id, row.range_id));
            }
            row.ack_level = ack_level;
            Ok(())
        })
    }

    async fn create_queue_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: RangeId,
        tasks: &[QueueTask],
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.creates += 1;
            if let Some(err) = s.fail_next_create.take() {
                return Err(err);
            }
            let row = s
                .rows
                .get_mut(key)
                .ok_or_else(|| StoreError::NotFound(key.name.clone()))?;
            if row.range_id != range_id.0 {
                return Err(lost(range_id, row.range_id));
            }
            for t in tasks {
                row.tasks.insert(t.task_id, (t.priority, t.data.clone()));
            }
            Ok(())
        })
    }

    async fn get_queue_tasks(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        exclusive_min: TaskId,
        limit: usize,
    ) -> Result<Vec<QueueTask>, StoreError> {
        self.with(|s| {
            Ok(s.rows
                .get(key)
                .map(|r| {
                    r.tasks
                        .range((Bound::Excluded(exclusive_min), Bound::Unbounded))
                        .filter(|(_, (level, _))| *level == priority)
                        .take(limit)
                        .map(|(id, (level, data))| QueueTask {
                            task_id: *id,
                            priority: *level,
                            data: data.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default())
        })
    }

    async fn delete_queue_task(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        task_id: TaskId,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(r) = s.rows.get_mut(key)
                && r.tasks.get(&task_id).is_some_and(|(l, _)| *l == priority)
            {
                r.tasks.remove(&task_id);
            }
            Ok(())
        })
    }

    async fn delete_queue_tasks_through(
        &self,
        key: &TaskQueueKey,
        priority: u8,
        inclusive_max: TaskId,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(r) = s.rows.get_mut(key) {
                r.tasks
                    .retain(|id, (level, _)| *level != priority || *id > inclusive_max);
            }
            Ok(())
        })
    }
}

/// How the fake history answers one record call.
pub(crate) enum Reply {
    Ok,
    Err(Status),
    /// Wait for a permit, then answer Ok.
    Gate(Arc<Semaphore>),
}

/// One record-started call history received.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordCall {
    pub activity: bool,
    pub workflow_id: String,
    pub scheduled_event_id: i64,
    pub request_id: String,
    pub identity: String,
    /// "started", "obsolete" or "error": what history answered.
    pub outcome: &'static str,
}

/// Answers record-started calls from a script (Ok once the script runs out).
#[derive(Default)]
pub(crate) struct FakeHistory {
    script: Mutex<VecDeque<Reply>>,
    calls: Mutex<Vec<RecordCall>>,
}

impl FakeHistory {
    pub fn push(&self, reply: Reply) {
        self.script.lock().expect("script lock").push_back(reply);
    }

    pub fn calls(&self) -> Vec<RecordCall> {
        self.calls.lock().expect("calls lock").clone()
    }

    async fn answer(&self, mut call: RecordCall) -> Result<(), Status> {
        let reply = self.script.lock().expect("script lock").pop_front();
        call.outcome = match &reply {
            Some(Reply::Err(s)) if status::is_task_obsolete(s) => "obsolete",
            Some(Reply::Err(_)) => "error",
            _ => "started",
        };
        self.calls.lock().expect("calls lock").push(call);
        match reply {
            None | Some(Reply::Ok) => Ok(()),
            Some(Reply::Err(s)) => Err(s),
            Some(Reply::Gate(sem)) => {
                sem.acquire().await.expect("gate semaphore").forget();
                Ok(())
            }
        }
    }
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not used by matching"))
}

#[async_trait]
impl HistoryService for FakeHistory {
    async fn record_workflow_task_started(
        &self,
        request: Request<internal::RecordWorkflowTaskStartedRequest>,
    ) -> Result<Response<internal::RecordWorkflowTaskStartedResponse>, Status> {
        let req = request.into_inner();
        let execution = req.execution.unwrap_or_default();
        self.answer(RecordCall {
            activity: false,
            workflow_id: execution.workflow_id.clone(),
            scheduled_event_id: req.scheduled_event_id,
            request_id: req.request_id,
            identity: req.poll_request.map(|p| p.identity).unwrap_or_default(),
            outcome: "",
        })
        .await?;
        Ok(Response::new(internal::RecordWorkflowTaskStartedResponse {
            response: Some(api::PollWorkflowTaskQueueResponse {
                task_token: super::token(&execution.workflow_id, req.scheduled_event_id),
                workflow_execution: Some(execution),
                started_event_id: req.scheduled_event_id + 1,
                ..Default::default()
            }),
        }))
    }

    async fn record_activity_task_started(
        &self,
        request: Request<internal::RecordActivityTaskStartedRequest>,
    ) -> Result<Response<internal::RecordActivityTaskStartedResponse>, Status> {
        let req = request.into_inner();
        let execution = req.execution.unwrap_or_default();
        self.answer(RecordCall {
            activity: true,
            workflow_id: execution.workflow_id.clone(),
            scheduled_event_id: req.scheduled_event_id,
            request_id: req.request_id,
            identity: req.poll_request.map(|p| p.identity).unwrap_or_default(),
            outcome: "",
        })
        .await?;
        Ok(Response::new(internal::RecordActivityTaskStartedResponse {
            response: Some(api::PollActivityTaskQueueResponse {
                task_token: super::token(&execution.workflow_id, req.scheduled_event_id),
                workflow_execution: Some(execution),
                activity_id: req.scheduled_event_id.to_string(),
                ..Default::default()
            }),
        }))
    }

    async fn start_workflow_execution(
        &self,
        _: Request<internal::StartWorkflowExecutionRequest>,
    ) -> Result<Response<api::StartWorkflowExecutionResponse>, Status> {
        unimplemented()
    }

    async fn respond_workflow_task_completed(
        &self,
        _: Request<internal::RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<api::RespondWorkflowTaskCompletedResponse>, Status> {
        unimplemented()
    }

    async fn respond_workflow_task_failed(
        &self,
        _: Request<internal::RespondWorkflowTaskFailedRequest>,
    ) -> Result<Response<api::RespondWorkflowTaskFailedResponse>, Status> {
        unimplemented()
    }

    async fn respond_activity_task_completed(
        &self,
        _: Request<internal::RespondActivityTaskCompletedRequest>,
    ) -> Result<Response<api::RespondActivityTaskCompletedResponse>, Status> {
        unimplemented()
    }

    async fn respond_activity_task_failed(
        &self,
        _: Request<internal::RespondActivityTaskFailedRequest>,
    ) -> Result<Response<api::RespondActivityTaskFailedResponse>, Status> {
        unimplemented()
    }

    async fn respond_activity_task_canceled(
        &self,
        _: Request<internal::RespondActivityTaskCanceledRequest>,
    ) -> Result<Response<api::RespondActivityTaskCanceledResponse>, Status> {
        unimplemented()
    }

    async fn record_activity_task_heartbeat(
        &self,
        _: Request<internal::RecordActivityTaskHeartbeatRequest>,
    ) -> Result<Response<api::RecordActivityTaskHeartbeatResponse>, Status> {
        unimplemented()
    }

    async fn get_workflow_execution_history(
        &self,
        _: Request<internal::GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<api::GetWorkflowExecutionHistoryResponse>, Status> {
        unimplemented()
    }

    async fn describe_workflow_execution(
        &self,
        _: Request<internal::DescribeWorkflowExecutionRequest>,
    ) -> Result<Response<api::DescribeWorkflowExecutionResponse>, Status> {
        unimplemented()
    }

    async fn request_cancel_workflow_execution(
        &self,
        _: Request<internal::RequestCancelWorkflowExecutionRequest>,
    ) -> Result<Response<api::RequestCancelWorkflowExecutionResponse>, Status> {
        unimplemented()
    }

    async fn terminate_workflow_execution(
        &self,
        _: Request<internal::TerminateWorkflowExecutionRequest>,
    ) -> Result<Response<api::TerminateWorkflowExecutionResponse>, Status> {
        unimplemented()
    }

    async fn reset_sticky_task_queue(
        &self,
        _: Request<internal::ResetStickyTaskQueueRequest>,
    ) -> Result<Response<api::ResetStickyTaskQueueResponse>, Status> {
        unimplemented()
    }

    async fn schedule_call(
        &self,
        _: Request<internal::ScheduleCallRequest>,
    ) -> Result<Response<internal::ScheduleCallResponse>, Status> {
        unimplemented()
    }
}
