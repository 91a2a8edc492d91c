//! Who owns the history service's background work. Every task runs in a [`TaskSet`]: the
//! engine's (the shard controller) or a shard's (its writer, its transfer and timer queues
//! and every task they run, the delivery and timeouts of its speculative workflow tasks).
//! A shard's set is a child of the engine's, so cancelling the engine cancels every shard.
//!
//! Stopping a set cancels its tasks and waits until each has ended. A shard is stopped
//! before it is released, handed over or replaced, so nothing of it runs on this node once
//! another owner may run the same tasks.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub(crate) struct TaskSet {
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The parent of each task's span, so a task's logs say whose it is.
    span: tracing::Span,
}

impl TaskSet {
    /// The engine's set.
    pub(crate) fn root(span: tracing::Span) -> Self {
        Self {
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            span,
        }
    }

    /// A set of its own (a shard's) that this set's cancellation also cancels.
    pub(crate) fn child(&self, span: tracing::Span) -> Self {
        Self {
            cancel: self.cancel.child_token(),
            tracker: TaskTracker::new(),
            span,
        }
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Cancelled when the set stops (or its owner's does).
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Run `task` in this set until it ends or the set is cancelled: cancelling drops it at
    /// the await it is in (a store or matching call in flight is abandoned; what it did not
    /// finish stays in the store for the next owner). Once the set is cancelled, `task` never
    /// starts.
    pub(crate) fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.spawn_aware(name, async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Run `task` in this set; it watches [`Self::token`] itself and ends its own way (the
    /// shard writer finishes the batch it is writing, so its callers learn the outcome).
    pub(crate) fn spawn_aware<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let span = tracing::debug_span!(parent: &self.span, "task", task = name);
        self.tracker.spawn(task.instrument(span));
    }

    /// Cancel every task of the set and wait until all have ended.
    pub(crate) async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
