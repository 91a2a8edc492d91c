//! The worker half: raw long-poll loops on the workflow and activity task queues (and the
//! Nexus ones, in `nexus_worker`, for the scenario that calls Nexus operations). Workflow
//! tasks are answered by [`scenario::decide`] from the full history (fetching the rest of a
//! paged history, or filling in a sticky task's partial one from the cache); activity tasks
//! complete at once, or after the plan's activity delay. Each poll loop polls only while it
//! holds a free slot, so a worker with few activity slots leaves the tasks it cannot take
//! waiting in the server's matching, as an SDK worker with `max_concurrent_activities` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use temporalio_protos::temporal::api::common::v1::Priority;
use temporalio_protos::temporal::api::enums::v1::{TaskQueueKind, WorkflowTaskFailedCause};
use temporalio_protos::temporal::api::failure::v1::Failure;
use temporalio_protos::temporal::api::history::v1::HistoryEvent;
use temporalio_protos::temporal::api::taskqueue::v1::{StickyExecutionAttributes, TaskQueue};
use temporalio_protos::temporal::api::workflowservice::v1::{
    PollActivityTaskQueueRequest, PollActivityTaskQueueResponse, PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse, RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest, RespondWorkflowTaskFailedRequest,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::Code;

use crate::client::{POLL_TIMEOUT, req, retry, status_reason, with_timeout};
use crate::history;
use crate::metrics::Group;
use crate::scenario::{
    self, Outcome, WorkflowKind, WorkflowTask, nexus, normal_queue, proto_duration,
};
use crate::shared::Shared;
use crate::stats::between;

/// How long the server keeps a workflow's next task on our sticky queue before moving it to
/// the normal one (the SDKs' default).
const STICKY_SCHEDULE_TO_START: Duration = Duration::from_secs(5);
/// Tasks being answered at once, per namespace and task kind.
const MAX_TASKS_IN_HAND: usize = 512;

/// Start the poll loops for every namespace of the run.
pub fn spawn(
    shared: &Arc<Shared>,
    pollers: usize,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) {
    for ns in shared.plan.namespace_names() {
        let ns: Arc<str> = Arc::from(ns);
        let mut wf_queues = vec![normal_queue(&shared.task_queue)];
        if let Some(sticky) = &shared.sticky_queue {
            wf_queues.push(TaskQueue {
                name: sticky.clone(),
                kind: TaskQueueKind::Sticky as i32,
                normal_name: shared.task_queue.clone(),
            });
        }
        let wf_slots = Arc::new(Semaphore::new(MAX_TASKS_IN_HAND));
        for queue in wf_queues {
            for _ in 0..pollers {
                tasks.spawn(workflow_poller(
                    shared.clone(),
                    ns.clone(),
                    queue.clone(),
                    wf_slots.clone(),
                    tasks.clone(),
                    cancel.clone(),
                ));
            }
        }
        let act_slots = Arc::new(Semaphore::new(
            usize::try_from(shared.plan.activity_slots)
                .unwrap_or(MAX_TASKS_IN_HAND)
                .min(MAX_TASKS_IN_HAND),
        ));
        for _ in 0..pollers {
            tasks.spawn(activity_poller(
                shared.clone(),
                ns.clone(),
                act_slots.clone(),
                tasks.clone(),
                cancel.clone(),
            ));
        }
    }
    if shared.plan.uses_nexus() {
        crate::nexus_worker::spawn(shared, pollers, tasks, cancel);
    }
}

/// Wait after a failed poll, longer each time in a row, unless cancelled; false if cancelled.
async fn backoff(delay: &mut Duration, cancel: &CancellationToken) -> bool {
    let d = *delay;
    *delay = (*delay * 2).min(Duration::from_secs(1));
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

async fn workflow_poller(
    shared: Arc<Shared>,
    ns: Arc<str>,
    queue: TaskQueue,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let identity = shared.identity.clone();
    let handler = (shared.clone(), ns.clone());
    poll_loop(
        &shared,
        slots,
        tasks,
        cancel,
        move |mut client| {
            let request = PollWorkflowTaskQueueRequest {
                namespace: ns.to_string(),
                task_queue: Some(queue.clone()),
                identity: identity.clone(),
                ..Default::default()
            };
            async move {
                let r = client
                    .poll_workflow_task_queue(with_timeout(request, POLL_TIMEOUT))
                    .await?;
                Ok(Some(r.into_inner()).filter(|t| !t.task_token.is_empty()))
            }
        },
        move |task| {
            let (shared, ns) = handler.clone();
            async move { handle_workflow_task(&shared, &ns, task).await }
        },
    )
    .await;
}

async fn handle_workflow_task(shared: &Shared, ns: &str, mut task: PollWorkflowTaskQueueResponse) {
    let execution = task.workflow_execution.clone().unwrap_or_default();
    let workflow_type = task
        .workflow_type
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let schedule_to_start = between(task.scheduled_time.as_ref(), task.started_time.as_ref());
    let history = match history::full_history(shared, ns, &mut task, &execution).await {
        Ok(h) => h,
        Err(s) => {
            // Without the history there is nothing to decide; the server times the task
            // out and hands it out again.
            shared.metrics.poll_error();
            if s.code() == Code::NotFound {
                shared.finish_failed(
                    &execution.workflow_id,
                    format!("history: {}", status_reason(&s)),
                );
            }
            return;
        }
    };
    let decision = scenario::decide(&WorkflowTask {
        namespace: ns,
        workflow_id: &execution.workflow_id,
        workflow_type: &workflow_type,
        attempt: task.attempt,
        history: &history,
    });
    // Whose numbers this workflow's events add to: a child's parent, a Nexus handler
    // workflow's caller.
    let summary_parent = parent_of(&history).or_else(|| {
        (workflow_type == WorkflowKind::NexusHandler.type_name())
            .then(|| nexus::caller_of_handler(&execution.workflow_id).map(str::to_string))
            .flatten()
    });
    let history_fairness = started_priority(&history);
    let last_event_id = history.last().map_or(0, |e| e.event_id);
    let sticky_attributes = shared
        .sticky_queue
        .as_ref()
        .map(|name| StickyExecutionAttributes {
            worker_task_queue: Some(TaskQueue {
                name: name.clone(),
                kind: TaskQueueKind::Sticky as i32,
                normal_name: shared.task_queue.clone(),
            }),
            schedule_to_start_timeout: Some(proto_duration(STICKY_SCHEDULE_TO_START)),
        });
    let closing = decision.outcome != Outcome::Running;
    let fired_late = history::timers_fired_late(&history);
    let request = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token.clone(),
        commands: decision.commands,
        identity: shared.identity.clone(),
        namespace: ns.to_string(),
        sticky_attributes: if closing { None } else { sticky_attributes },
        ..Default::default()
    };
    if shared.sticky_queue.is_some() && !closing {
        shared.cache().insert(execution.run_id.clone(), history);
    }
    let sent = Instant::now();
    let responded = retry(|| {
        let mut c = shared.clients.get();
        let r = req(request.clone());
        async move { c.respond_workflow_task_completed(r).await }
    })
    .await;
    shared.metrics.workflow_task(
        Group {
            namespace: ns,
            fairness_key: fairness_key_of(&history_fairness),
        },
        schedule_to_start,
        sent.elapsed(),
    );
    if responded.is_ok() {
        shared
            .metrics
            .live
            .workflow_tasks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for late in fired_late {
            shared.metrics.timer_fired(late);
        }
    }
    match responded {
        Ok(_) => match decision.outcome {
            Outcome::Running => {}
            Outcome::Completed => {
                // The history so far plus WorkflowTaskCompleted and WorkflowExecutionCompleted.
                let events = u64::try_from(last_event_id).unwrap_or(0) + 2;
                if !shared.finish_completed(&execution.workflow_id, events)
                    && let Some(parent) = summary_parent
                {
                    shared.tracker.add_child_events(&parent, events);
                }
            }
            Outcome::Failed(reason) => {
                shared.finish_failed(&execution.workflow_id, reason);
            }
        },
        // The task is no longer wanted (timed out and handed out again, or the workflow is
        // gone); whoever holds the newer task answers.
        Err(s) if s.code() == Code::NotFound => {
            shared.cache().remove(&execution.run_id);
        }
        Err(s) => {
            // The server refused the answer: fail the task so the history says why; after a
            // few in a row the workflow fails itself (see scenario::decide).
            shared.cache().remove(&execution.run_id);
            let failed = RespondWorkflowTaskFailedRequest {
                task_token: task.task_token,
                cause: WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure as i32,
                failure: Some(Failure {
                    message: format!("server rejected the completion: {}", status_reason(&s)),
                    source: "temper-loadtest".to_string(),
                    ..Default::default()
                }),
                identity: shared.identity.clone(),
                namespace: ns.to_string(),
                ..Default::default()
            };
            let _ = shared
                .clients
                .get()
                .respond_workflow_task_failed(req(failed))
                .await;
        }
    }
    if closing {
        shared.cache().remove(&execution.run_id);
    }
}

/// The priority the workflow was started with (from WorkflowExecutionStarted).
fn started_priority(history: &[HistoryEvent]) -> Option<Priority> {
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    history.first().and_then(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.priority.clone(),
        _ => None,
    })
}

/// A priority's fairness key, if it sets one.
fn fairness_key_of(p: &Option<Priority>) -> Option<&str> {
    p.as_ref()
        .map(|p| p.fairness_key.as_str())
        .filter(|k| !k.is_empty())
}

fn parent_of(history: &[HistoryEvent]) -> Option<String> {
    use temporalio_protos::temporal::api::history::v1::history_event::Attributes;
    history.first().and_then(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a
            .parent_workflow_execution
            .as_ref()
            .map(|p| p.workflow_id.clone()),
        _ => None,
    })
}

async fn activity_poller(
    shared: Arc<Shared>,
    ns: Arc<str>,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let identity = shared.identity.clone();
    let queue = normal_queue(&shared.task_queue);
    let handler = (shared.clone(), ns.clone());
    poll_loop(
        &shared,
        slots,
        tasks,
        cancel,
        move |mut client| {
            let request = PollActivityTaskQueueRequest {
                namespace: ns.to_string(),
                task_queue: Some(queue.clone()),
                identity: identity.clone(),
                ..Default::default()
            };
            async move {
                let r = client
                    .poll_activity_task_queue(with_timeout(request, POLL_TIMEOUT))
                    .await?;
                Ok(Some(r.into_inner()).filter(|t| !t.task_token.is_empty()))
            }
        },
        move |task| {
            let (shared, ns) = handler.clone();
            async move { handle_activity_task(&shared, &ns, task).await }
        },
    )
    .await;
}

/// One poller: take a free task slot, long-poll with `poll` (`None`: the poll came back
/// empty), and run `handle` on the task in the tracker, releasing the slot when it is done.
/// Errors back off; a long poll's own deadline does not count as an error.
pub(crate) async fn poll_loop<T, P, PF, H, HF>(
    shared: &Shared,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    mut poll: P,
    handle: H,
) where
    P: FnMut(crate::client::Client) -> PF,
    PF: std::future::Future<Output = Result<Option<T>, tonic::Status>>,
    H: Fn(T) -> HF,
    HF: std::future::Future<Output = ()> + Send + 'static,
{
    let mut delay = Duration::from_millis(50);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let polled = tokio::select! {
            _ = cancel.cancelled() => return,
            r = poll(shared.clients.get()) => r,
        };
        match polled {
            Ok(task) => {
                delay = Duration::from_millis(50);
                if let Some(task) = task {
                    let work = handle(task);
                    tasks.spawn(async move {
                        work.await;
                        drop(permit);
                    });
                }
            }
            Err(s) if s.code() == Code::DeadlineExceeded => {}
            Err(_) => {
                shared.metrics.poll_error();
                if !backoff(&mut delay, &cancel).await {
                    return;
                }
            }
        }
    }
}

async fn handle_activity_task(shared: &Shared, ns: &str, task: PollActivityTaskQueueResponse) {
    shared.metrics.activity_task(
        Group {
            namespace: ns,
            fairness_key: fairness_key_of(&task.priority),
        },
        between(
            task.current_attempt_scheduled_time.as_ref(),
            task.started_time.as_ref(),
        ),
    );
    // The activity's "work": its slot stays taken meanwhile, so the worker takes no more
    // than activity_slots / activity_delay activities a second.
    let delay = shared.plan.activity_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let request = RespondActivityTaskCompletedRequest {
        task_token: task.task_token,
        identity: shared.identity.clone(),
        namespace: ns.to_string(),
        ..Default::default()
    };
    // An error leaves the activity to its start-to-close timeout and retry; a workflow that
    // then times out its activity fails and says so.
    let _ = retry(|| {
        let mut c = shared.clients.get();
        let r = req(request.clone());
        async move { c.respond_activity_task_completed(r).await }
    })
    .await;
}
