//! The starter half: start one workflow (and send its signals), accounting for it in the
//! tracker before the start RPC goes out so that a worker that completes it first still
//! finds it.

use std::sync::Arc;
use std::time::Instant;

use temporalio_protos::temporal::api::common::v1::{Priority, WorkflowExecution, WorkflowType};
use temporalio_protos::temporal::api::workflowservice::v1::{
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::client::{req, retry, status_reason};
use crate::metrics::Group;
use crate::scenario::{Fairness, SIGNAL_NAME, normal_queue};
use crate::shared::Shared;
use crate::tracker::InFlight;

/// One workflow to start.
pub struct Start {
    pub namespace: Arc<str>,
    /// The workflow's fairness key and weight (its activities inherit them).
    pub fairness: Option<Arc<Fairness>>,
    pub seq: u64,
    /// When it was meant to start.
    pub intended: Instant,
    pub done: Option<oneshot::Sender<()>>,
    pub permit: Option<OwnedSemaphorePermit>,
}

pub fn workflow_id(prefix: &str, seq: u64) -> String {
    format!("{prefix}-{seq}")
}

/// Start the workflow and send its signals. False if the start RPC failed.
pub async fn start(shared: &Shared, s: Start) -> bool {
    let id = workflow_id(&shared.id_prefix, s.seq);
    let measured = shared.metrics.is_measured(s.intended);
    let ns = s.namespace.clone();
    let fairness_key: Option<Arc<str>> = s.fairness.as_ref().map(|f| Arc::from(f.key.as_str()));
    let group = Group {
        namespace: &ns,
        fairness_key: fairness_key.as_deref(),
    };
    shared.tracker.insert(
        id.clone(),
        InFlight {
            namespace: s.namespace.clone(),
            fairness_key: fairness_key.clone(),
            intended: s.intended,
            measured,
            child_events: 0,
            done: s.done,
            permit: s.permit,
        },
    );
    let plan = &shared.plan;
    let request = StartWorkflowExecutionRequest {
        namespace: ns.to_string(),
        workflow_id: id.clone(),
        workflow_type: Some(WorkflowType {
            name: plan.workflow.type_name().to_string(),
        }),
        task_queue: Some(normal_queue(&shared.task_queue)),
        input: Some(plan.params.to_payloads()),
        identity: shared.identity.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        priority: s.fairness.as_ref().filter(|f| f.send).map(|f| Priority {
            priority_key: 0,
            fairness_key: f.key.clone(),
            fairness_weight: f.weight,
        }),
        ..Default::default()
    };
    let sent = Instant::now();
    let started = shared
        .clients
        .get()
        .start_workflow_execution(req(request))
        .await;
    shared.metrics.start_rpc(group, measured, sent.elapsed());
    let run_id = match started {
        Ok(r) => {
            shared.metrics.started(group, measured);
            r.into_inner().run_id
        }
        Err(status) => {
            let counted = shared.tracker.finish(&id, |_| {
                shared
                    .metrics
                    .start_error(group, measured, status_reason(&status));
            });
            if counted.is_none() {
                // The worker already saw it end, so it did start (the reply got lost).
                shared.metrics.started(group, measured);
            }
            return false;
        }
    };
    for _ in 0..plan.signals {
        let request = SignalWorkflowExecutionRequest {
            namespace: ns.to_string(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: id.clone(),
                run_id: run_id.clone(),
            }),
            signal_name: SIGNAL_NAME.to_string(),
            identity: shared.identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        let signalled = retry(|| {
            let mut c = shared.clients.get();
            let r = req(request.clone());
            async move { c.signal_workflow_execution(r).await }
        })
        .await;
        if let Err(status) = signalled {
            if shared.finish_failed(&id, format!("signal: {}", status_reason(&status))) {
                terminate(
                    shared,
                    &ns,
                    &id,
                    "temper-loadtest: a signal could not be sent",
                )
                .await;
            }
            break;
        }
    }
    true
}

/// Best effort: stop a workflow the run has given up on, so it does not linger on the
/// server.
pub async fn terminate(shared: &Shared, ns: &str, workflow_id: &str, reason: &str) {
    let request = TerminateWorkflowExecutionRequest {
        namespace: ns.to_string(),
        workflow_execution: Some(WorkflowExecution {
            workflow_id: workflow_id.to_string(),
            run_id: String::new(),
        }),
        reason: reason.to_string(),
        identity: shared.identity.clone(),
        ..Default::default()
    };
    let _ = shared
        .clients
        .get()
        .terminate_workflow_execution(req(request))
        .await;
}
