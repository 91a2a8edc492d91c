//! Who owns the history service's background work. Every task runs in a [`TaskSet`]: the
//! engine's (the shard controller) or a shard's (its writer, its transfer and timer queues
//! and every task they run, the delivery and timeouts of its speculative workflow tasks).
//! A shard's set is a child of the engine's, so cancelling the engine cancels every shard.
//!
//! Stopping a set cancels its tasks and waits until each has ended. A shard is stopped
//! before it is released, handed over or replaced, so nothing of it runs on this node once
//! another owner may run the same tasks.
//!
//! A task that panics (a bug) is logged at ERROR with its message. In a shard's set it also
//! cancels the set: the shard's writer or queues must not go on with a part missing (a
//! dead writer would leave every commit of the shard waiting), so the shard stops and the
//! controller acquires it again from the store, as after any other failure.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub(crate) struct TaskSet {
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The parent of each task's span, so a task's logs say whose it is.
    span: tracing::Span,
    /// A panicking task cancels the set (a shard's; not the engine's).
    stop_on_panic: bool,
}

impl TaskSet {
    /// The engine's set.
    pub(crate) fn root(span: tracing::Span) -> Self {
        Self {
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            span,
            stop_on_panic: false,
        }
    }

    /// A set of its own (a shard's) that this set's cancellation also cancels.
    pub(crate) fn child(&self, span: tracing::Span) -> Self {
        Self {
            cancel: self.cancel.child_token(),
            tracker: TaskTracker::new(),
            span,
            stop_on_panic: true,
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
        let cancel = self.stop_on_panic.then(|| self.cancel.clone());
        let guarded = async move {
            if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(not a string)".into());
                crate::metrics::task_panicked(name);
                match &cancel {
                    Some(cancel) => {
                        tracing::error!(task = name, panic = %message,
                            "task panicked; stopping the shard, which is acquired again from the store");
                        cancel.cancel();
                    }
                    None => tracing::error!(task = name, panic = %message, "task panicked"),
                }
            }
        };
        self.tracker.spawn(guarded.instrument(span));
    }

    /// Cancel every task of the set and wait until all have ended.
    pub(crate) async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_stops_its_shard_but_not_the_engine() {
        let engine = TaskSet::root(tracing::Span::none());
        let shard = engine.child(tracing::Span::none());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // A sibling that waits until the set is stopped.
        shard.spawn("sibling", async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        shard.spawn("bug", async { panic!("injected") });
        tokio::time::timeout(Duration::from_secs(5), shard.token().cancelled())
            .await
            .expect("the shard's set is cancelled");
        // The sibling ended with the set.
        assert!(rx.await.is_err(), "the sibling was dropped");
        shard.stop().await;

        engine.spawn("bug", async { panic!("injected") });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!engine.token().is_cancelled(), "the engine keeps running");
        engine.stop().await;
    }
}
