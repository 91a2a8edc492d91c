//! What the starter, the workers and the driver of one run share.

use std::collections::HashMap;
use std::sync::Mutex;

use temporalio_protos::temporal::api::history::v1::HistoryEvent;

use crate::client::Clients;
use crate::metrics::Metrics;
use crate::scenario::Plan;
use crate::tracker::Tracker;

pub struct Shared {
    pub clients: Clients,
    pub metrics: Metrics,
    pub tracker: Tracker,
    pub plan: Plan,
    /// The worker and client identity sent with every call.
    pub identity: String,
    /// The normal task queue, in every namespace of the run.
    pub task_queue: String,
    /// Workflow ids are `<id_prefix>-<n>`.
    pub id_prefix: String,
    /// The sticky queue name when sticky execution is on.
    pub sticky_queue: Option<String>,
    /// Histories of running workflows, by run id, when sticky execution is on.
    pub history_cache: Mutex<HashMap<String, Vec<HistoryEvent>>>,
}

impl Shared {
    /// The worker saw `workflow_id` complete with `events` history events in all. False if
    /// the run was not waiting for it (a child, or already counted).
    pub fn finish_completed(&self, workflow_id: &str, events: u64) -> bool {
        self.tracker
            .finish(workflow_id, |w| {
                let end_to_end = w.intended.elapsed();
                self.metrics
                    .completed(w.group(), w.measured, end_to_end, events + w.child_events);
                if let Some(done) = w.done {
                    let _ = done.send(());
                }
            })
            .is_some()
    }

    /// `workflow_id` ended without completing.
    pub fn finish_failed(&self, workflow_id: &str, reason: String) -> bool {
        self.tracker
            .finish(workflow_id, |w| {
                self.metrics.failed(w.group(), w.measured, reason);
                if let Some(done) = w.done {
                    let _ = done.send(());
                }
            })
            .is_some()
    }

    pub fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<HistoryEvent>>> {
        self.history_cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
