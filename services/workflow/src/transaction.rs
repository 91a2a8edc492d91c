//! One transaction on a run, with the parts that live only in memory: the update registry
//! and a speculative workflow task. The history service runs every change to a run through
//! [`apply`] and persists what it says.

use std::time::SystemTime;

use crate::{Limits, Mutation, Txn, WorkflowError, close, pb, speculative, update};

/// What the store must see of a transaction.
#[derive(Debug)]
pub enum Write {
    /// Nothing changed.
    Nothing,
    /// Only in-memory parts changed (the registry, a speculative task): keep the new state
    /// in memory, write nothing.
    Memory,
    /// Commit the stored view of the new state ([`speculative::persisted_view`]) with this.
    Store(Mutation),
}

/// The result of [`apply`].
#[derive(Debug)]
pub struct Applied<R> {
    pub value: R,
    /// The new state, speculative task included.
    pub state: pb::MutableState,
    /// The new registry; its notices are for the callers waiting on updates, once the
    /// write is done.
    pub updates: update::Registry,
    pub write: Write,
}

/// A stored state comes from the disk: refuse one a transaction cannot work on, so that
/// [`Txn::info`] may rely on the execution info being there.
fn check_stored(ms: &pb::MutableState) -> Result<(), WorkflowError> {
    if ms.execution_info.is_none() {
        return Err(WorkflowError::Internal(
            "the stored mutable state of the run has no execution info; the blob is damaged or \
             was not written by this server"
                .into(),
        ));
    }
    Ok(())
}

/// Run `f` on a copy of `ms` and `updates`. If `f` writes events while a speculative workflow
/// task is pending, it runs again on a fresh copy with the task made durable first (its
/// events come before anything else). A run that closes aborts its updates. A state without
/// execution info is refused ([`WorkflowError::Internal`]) before `f` runs.
pub fn apply<R>(
    ms: &pb::MutableState,
    updates: &update::Registry,
    now: SystemTime,
    limits: &Limits,
    new_run_id: Option<fn() -> String>,
    f: &mut impl FnMut(&mut Txn<'_>) -> Result<R, WorkflowError>,
) -> Result<Applied<R>, WorkflowError> {
    check_stored(ms)?;
    let mut next = ms.clone();
    let mut txn = Txn::new(&mut next, now, limits);
    txn.updates = updates.clone();
    txn.new_run_id = new_run_id;
    let mut value = f(&mut txn)?;
    if speculative::needs_durable(ms, txn.ms, &txn.out) {
        drop(txn);
        next = ms.clone();
        txn = Txn::new(&mut next, now, limits);
        txn.updates = updates.clone();
        txn.new_run_id = new_run_id;
        speculative::make_durable(&mut txn, true);
        value = f(&mut txn)?;
    }
    let mut registry = std::mem::take(&mut txn.updates);
    let stored_unchanged = txn.out.is_empty()
        && *speculative::persisted_view(txn.ms) == *speculative::persisted_view(ms);
    if stored_unchanged {
        drop(txn);
        let write = if next == *ms && registry == *updates {
            Write::Nothing
        } else {
            Write::Memory
        };
        return Ok(Applied {
            value,
            state: next,
            updates: registry,
            write,
        });
    }
    let mutation = txn.finish();
    if !close::is_closed(ms) && close::is_closed(&next) {
        update::abort_on_close(&next, &mut registry);
    }
    Ok(Applied {
        value,
        state: next,
        updates: registry,
        write: Write::Store(mutation),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_state_without_execution_info_is_an_error_not_a_panic() {
        let damaged = pb::MutableState {
            next_event_id: 3,
            ..Default::default()
        };
        let mut called = false;
        let result = apply(
            &damaged,
            &update::Registry::default(),
            SystemTime::UNIX_EPOCH,
            &Limits::default(),
            None,
            &mut |txn: &mut Txn<'_>| {
                called = true;
                Ok(txn.is_running())
            },
        );
        match result {
            Err(WorkflowError::Internal(m)) => assert!(m.contains("no execution info"), "{m}"),
            other => panic!("expected an internal error, got {other:?}"),
        }
        assert!(!called, "the transaction does not run on such a state");
    }
}
