//! The workflows a run started and has not yet counted as completed or failed. Each entry
//! is removed exactly once, by whoever learns the workflow's end first (the worker, the
//! starter on an error, or the drain timeout), which is what keeps
//! `started == completed + failed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};

use crate::metrics::Group;

/// A workflow in flight.
#[derive(Debug)]
pub struct InFlight {
    pub namespace: Arc<str>,
    /// The fairness key it was started with, if any.
    pub fairness_key: Option<Arc<str>>,
    /// When the workflow was meant to start; end-to-end latency counts from here.
    pub intended: Instant,
    pub measured: bool,
    /// Events of its child workflows, added to its own when it completes.
    pub child_events: u64,
    /// Tells a closed-loop slot that the workflow ended.
    pub done: Option<oneshot::Sender<()>>,
    /// Holds a place under the open loop's in-flight cap.
    pub permit: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// Where its numbers go.
    pub fn group(&self) -> Group<'_> {
        Group {
            namespace: &self.namespace,
            fairness_key: self.fairness_key.as_deref(),
        }
    }
}

#[derive(Default)]
pub struct Tracker {
    map: Mutex<HashMap<String, InFlight>>,
    /// Woken whenever an entry goes away.
    removed: Notify,
}

impl Tracker {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, workflow_id: String, w: InFlight) {
        self.map().insert(workflow_id, w);
    }

    /// Take the workflow out, if it is still in flight, and account for it with `f` before
    /// anyone can see it gone: a run that finds the tracker empty has every end counted.
    pub fn finish<R>(&self, workflow_id: &str, f: impl FnOnce(InFlight) -> R) -> Option<R> {
        let mut map = self.map();
        let r = map.remove(workflow_id).map(f);
        drop(map);
        if r.is_some() {
            self.removed.notify_waiters();
        }
        r
    }

    pub fn add_child_events(&self, parent_id: &str, events: u64) {
        if let Some(w) = self.map().get_mut(parent_id) {
            w.child_events += events;
        }
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take out everything still in flight.
    pub fn drain(&self) -> Vec<(String, InFlight)> {
        let all: Vec<_> = self.map().drain().collect();
        self.removed.notify_waiters();
        all
    }

    /// Wait until nothing is in flight or `deadline` passes; true if empty.
    pub async fn wait_empty(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.removed.notified();
            if self.is_empty() {
                return true;
            }
            // Wake up now and then anyway: cheap, and robust against a missed wake-up.
            let tick = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(tick.min(deadline)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return self.is_empty();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> InFlight {
        InFlight {
            namespace: Arc::from("default"),
            fairness_key: None,
            intended: Instant::now(),
            measured: true,
            child_events: 0,
            done: None,
            permit: None,
        }
    }

    #[test]
    fn an_entry_is_removed_once() {
        let t = Tracker::default();
        t.insert("a".into(), entry());
        t.add_child_events("a", 7);
        assert_eq!(t.finish("a", |w| w.child_events), Some(7));
        assert_eq!(t.finish("a", |w| w.child_events), None);
        assert!(t.is_empty());
    }

    #[tokio::test]
    async fn wait_empty_returns_when_the_last_one_goes() {
        let t = Arc::new(Tracker::default());
        t.insert("a".into(), entry());
        let t2 = t.clone();
        let waiter = tokio::spawn(async move {
            t2.wait_empty(tokio::time::Instant::now() + std::time::Duration::from_secs(10))
                .await
        });
        tokio::task::yield_now().await;
        t.finish("a", |_| ());
        assert!(waiter.await.expect("joins"));
        t.insert("b".into(), entry());
        let short = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(!t.wait_empty(short).await);
        assert_eq!(t.drain().len(), 1);
    }
}
