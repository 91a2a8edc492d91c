//! What the runs of standalone activities and standalone Nexus operations share: each is a
//! run of its own (a system workflow id) that StartActivityExecution or
//! StartNexusOperationExecution creates under the id reuse and conflict policies, and that
//! Describe and Poll calls read and long-poll on.

use std::time::{Duration, SystemTime};

use temper_persistence::{CurrentExecution, CurrentRunCondition, ExecutionKey, run_state};
use temper_proto::temporal::api::enums::v1::WorkflowExecutionStatus;
use temper_types::NamespaceId;
use temper_workflow::{Mutation, WorkflowError, pb};

use crate::HistoryError;
use crate::shard::{ShardContext, current_run_conflict};

const MAX_RACES: usize = 5;
/// Longest wait of one long poll (describe with a token, poll for the outcome).
pub(crate) const MAX_LONG_POLL: Duration = Duration::from_secs(20);

/// Whether a closed run's id may be used again (the reuse policies' common meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    AllowDuplicate,
    AllowDuplicateFailedOnly,
    RejectDuplicate,
}

/// What a start asks for: its run's workflow id, its request id and its policies.
pub(crate) struct StartRun<'a> {
    pub shard: &'a ShardContext,
    pub ns: &'a NamespaceId,
    pub workflow_id: &'a str,
    pub request_id: &'a str,
    pub reuse: Reuse,
    /// A running run with the id is answered instead of refused.
    pub use_existing: bool,
}

impl StartRun<'_> {
    /// Create the run (`build` makes its state and first mutation from its run id and the
    /// time), unless the policies say to answer with the current run (`Ok((run id, false))`)
    /// or refuse (`already`'s error). The same request id again answers with the run it
    /// started.
    pub(crate) async fn start(
        &self,
        already: impl Fn(&CurrentExecution) -> HistoryError,
        build: impl Fn(&str, SystemTime) -> Result<(pb::MutableState, Mutation), HistoryError>,
    ) -> Result<(String, bool), HistoryError> {
        for _ in 0..MAX_RACES {
            let condition = match self.shard.current_run(self.ns, self.workflow_id).await? {
                None => CurrentRunCondition::MustNotExist,
                Some(current) => {
                    if current.create_request_id == self.request_id {
                        return Ok((current.run_id, false));
                    }
                    if current.state != run_state::COMPLETED {
                        if self.use_existing {
                            return Ok((current.run_id, false));
                        }
                        return Err(already(&current));
                    }
                    let reusable = match self.reuse {
                        Reuse::RejectDuplicate => false,
                        Reuse::AllowDuplicateFailedOnly => {
                            current.status != WorkflowExecutionStatus::Completed as i32
                        }
                        Reuse::AllowDuplicate => true,
                    };
                    if !reusable {
                        return Err(already(&current));
                    }
                    CurrentRunCondition::RunIdIs(current.run_id.clone())
                }
            };
            let run_id = temper_types::new_run_id();
            let (ms, mutation) = build(&run_id, self.shard.now())?;
            let key = ExecutionKey {
                namespace_id: self.ns.clone(),
                workflow_id: self.workflow_id.to_owned(),
                run_id: run_id.clone(),
            };
            match self.shard.create(&key, ms, condition, mutation).await {
                Ok(()) => return Ok((run_id, true)),
                Err(e) if current_run_conflict(&e).is_some() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(HistoryError::Busy)
    }
}

/// Wait (up to `wait`) until `ready` holds for the run's state; the state when it does,
/// `None` when the time ran out first.
pub(crate) async fn wait_for(
    shard: &ShardContext,
    key: &ExecutionKey,
    wait: Duration,
    ready: impl Fn(&pb::MutableState) -> bool,
) -> Result<Option<pb::MutableState>, HistoryError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Holding the entry keeps the cache from evicting it while this call waits.
    let entry = shard.entry(key);
    let mut changes = entry.changes.subscribe();
    loop {
        let ms = shard.snapshot(key).await?;
        if ready(&ms) {
            return Ok(Some(ms));
        }
        let timed_out = tokio::select! {
            r = changes.changed() => r.is_err(),
            _ = tokio::time::sleep_until(deadline) => true,
            _ = shard.cancel.cancelled() => true,
        };
        if timed_out {
            return Ok(None);
        }
    }
}

/// The run `run_id` of `workflow_id` (its current one when empty) and its state, if it holds
/// what `holds` looks for; else `not_found`'s error.
pub(crate) async fn load(
    shard: &ShardContext,
    ns: &NamespaceId,
    workflow_id: &str,
    run_id: &str,
    holds: fn(&pb::MutableState) -> bool,
    not_found: impl Fn() -> HistoryError,
) -> Result<(ExecutionKey, pb::MutableState), HistoryError> {
    let found = async {
        let key = shard.resolve(ns, workflow_id, run_id).await?;
        let ms = shard.snapshot(&key).await?;
        Ok::<_, HistoryError>((key, ms))
    }
    .await;
    match found {
        Ok((key, ms)) if holds(&ms) => Ok((key, ms)),
        Ok(_) | Err(HistoryError::ExecutionNotFound(_)) => Err(not_found()),
        Err(e) => Err(e),
    }
}

/// How long a long poll may wait: what the caller allows (`ms`, 0 for no limit of its own),
/// at most [`MAX_LONG_POLL`].
pub(crate) fn long_poll_wait(ms: i64) -> Duration {
    match ms {
        ms if ms > 0 => Duration::from_millis(ms as u64).min(MAX_LONG_POLL),
        _ => MAX_LONG_POLL,
    }
}

pub(crate) fn transitions(ms: &pb::MutableState) -> i64 {
    ms.execution_info
        .as_ref()
        .map(|i| i.state_transition_count)
        .unwrap_or(0)
}

/// A describe's long-poll token: the run and how many transitions the caller has seen.
pub(crate) struct PollToken {
    pub run_id: String,
    pub transitions: i64,
}

impl PollToken {
    pub(crate) fn encode(run_id: &str, transitions: i64) -> Vec<u8> {
        format!("{transitions}/{run_id}").into_bytes()
    }

    pub(crate) fn decode(token: &[u8]) -> Result<Self, HistoryError> {
        let bad = || {
            HistoryError::Workflow(WorkflowError::InvalidArgument(
                "invalid long poll token".into(),
            ))
        };
        let text = std::str::from_utf8(token).map_err(|_| bad())?;
        let (count, run_id) = text.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            run_id: run_id.to_owned(),
            transitions: count.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_tokens_round_trip_and_garbage_is_refused() {
        let t = PollToken::decode(&PollToken::encode("run-1", 7)).expect("valid token");
        assert_eq!((t.run_id.as_str(), t.transitions), ("run-1", 7));
        for bad in [&b"x"[..], b"7", b"/run", b"\xff/run"] {
            assert!(PollToken::decode(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn long_polls_wait_what_the_caller_allows_up_to_the_limit() {
        assert_eq!(long_poll_wait(0), MAX_LONG_POLL);
        assert_eq!(long_poll_wait(500), Duration::from_millis(500));
        assert_eq!(long_poll_wait(3_600_000), MAX_LONG_POLL);
    }
}
