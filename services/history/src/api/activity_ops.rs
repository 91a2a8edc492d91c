//! PauseActivity, UnpauseActivity, ResetActivity and UpdateActivityOptions: an operator's
//! actions on a run's pending activities (the state changes are `temper_workflow::activity_ops`).

use std::time::Duration;

use temper_proto::temporal::api::activity::v1::ActivityOptions;
use temper_proto::temporal::api::workflowservice::v1::{
    PauseActivityRequest, ResetActivityRequest, UnpauseActivityRequest,
    UpdateActivityOptionsRequest, pause_activity_request, reset_activity_request,
    unpause_activity_request, update_activity_options_request,
};
use temper_types::NamespaceId;
use temper_workflow::WorkflowError;
use temper_workflow::activity_ops::{self as ops, Target};
use temper_workflow::time::from_dur;

use super::control::transact_named_run;
use crate::{HistoryEngine, HistoryError};

/// Temporal's answer when the request names no activity.
fn no_activity() -> HistoryError {
    WorkflowError::InvalidArgument(
        "Either Activity.Id or Activity.Type should be set on request.".into(),
    )
    .into()
}

fn jitter(j: &Option<temper_proto::wkt::Duration>) -> Duration {
    from_dur(j)
}

pub(crate) async fn pause(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: PauseActivityRequest,
) -> Result<(), HistoryError> {
    use pause_activity_request::Activity;
    let target = match req.activity.as_ref().ok_or_else(no_activity)? {
        Activity::Id(id) => Target::Id(id),
        Activity::Type(t) => Target::Type(t),
    };
    transact_named_run(engine, ns, req.execution.as_ref(), |txn| {
        ops::pause(txn, target, &req.identity, &req.reason, &req.request_id)
    })
    .await
}

pub(crate) async fn unpause(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: UnpauseActivityRequest,
) -> Result<(), HistoryError> {
    use unpause_activity_request::Activity;
    let target = match req.activity.as_ref().ok_or_else(no_activity)? {
        Activity::Id(id) => Target::Id(id),
        Activity::Type(t) => Target::Type(t),
        Activity::UnpauseAll(_) => Target::All,
    };
    let jitter = jitter(&req.jitter);
    transact_named_run(engine, ns, req.execution.as_ref(), |txn| {
        ops::unpause(txn, target, req.reset_attempts, req.reset_heartbeat, jitter)
    })
    .await
}

pub(crate) async fn reset(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: ResetActivityRequest,
) -> Result<(), HistoryError> {
    use reset_activity_request::Activity;
    let target = match req.activity.as_ref().ok_or_else(no_activity)? {
        Activity::Id(id) => Target::Id(id),
        Activity::Type(t) => Target::Type(t),
        Activity::MatchAll(_) => Target::All,
    };
    let r = ops::Reset {
        reset_heartbeat: req.reset_heartbeat,
        keep_paused: req.keep_paused,
        restore_original_options: req.restore_original_options,
        jitter: jitter(&req.jitter),
    };
    transact_named_run(engine, ns, req.execution.as_ref(), |txn| {
        ops::reset(txn, target, r)
    })
    .await
}

pub(crate) async fn update_options(
    engine: &HistoryEngine,
    ns: &NamespaceId,
    req: UpdateActivityOptionsRequest,
) -> Result<ActivityOptions, HistoryError> {
    use update_activity_options_request::Activity;
    let target = match req.activity.as_ref().ok_or_else(no_activity)? {
        Activity::Id(id) => Target::Id(id),
        Activity::Type(t) => Target::Type(t),
        Activity::MatchAll(_) => Target::All,
    };
    let paths = req.update_mask.as_ref().map(|m| m.paths.as_slice());
    transact_named_run(engine, ns, req.execution.as_ref(), |txn| {
        ops::update_options(
            txn,
            target,
            req.activity_options.as_ref(),
            paths,
            req.restore_original,
        )
    })
    .await
}
