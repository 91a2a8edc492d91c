//! What a StartBatchOperation request asks for, checked the way the Temporal server checks it,
//! and the facts about a batch that live in its system workflow (type, task queue, memo keys,
//! search attributes). No I/O here.

use std::collections::HashMap;

use temper_proto::temporal::api::common::v1::{Memo, Payload, SearchAttributes};
use temper_proto::temporal::api::enums::v1::{
    BatchOperationState, BatchOperationType, ResetType, WorkflowExecutionStatus,
};
use temper_proto::temporal::api::workflowservice::v1::{
    StartBatchOperationRequest, start_batch_operation_request::Operation,
};
use tonic::Status;

/// The workflow type of a batch's system workflow (Temporal's `BatchWFTypeProtobufName`: its
/// input is a protobuf message).
pub const WORKFLOW_TYPE: &str = "temporal-sys-batch-workflow-protobuf";
/// The task queue of Temporal's per-namespace system worker; nothing polls it in temper.
pub const TASK_QUEUE: &str = "temporal-sys-per-ns-tq";
/// The namespace division of batch workflows: ordinary lists leave them out.
pub const NAMESPACE_DIVISION: &str = "TemporalBatcher";
/// Memo keys, as Temporal writes them.
pub const MEMO_TYPE: &str = "batch_operation_type";
pub const MEMO_REASON: &str = "batch_operation_reason";
pub const MEMO_STATS: &str = "batch_operation_stats";
pub const MEMO_QUERY: &str = "batch_operation_visibility_query";
/// Predefined search attributes a batch workflow carries.
pub const SA_USER: &str = "BatcherUser";
pub const SA_DIVISION: &str = "TemporalNamespaceDivision";
/// The query of every batch of a namespace, and of its running ones.
pub const BATCHES_QUERY: &str = "TemporalNamespaceDivision = 'TemporalBatcher'";
pub const RUNNING_BATCHES_QUERY: &str =
    "TemporalNamespaceDivision = 'TemporalBatcher' AND ExecutionStatus = 'Running'";
/// Operations per second of a batch whose request does not say (Temporal's
/// `worker.batcherRPS`).
pub const DEFAULT_RPS: f64 = 50.0;

/// The workflow operations temper runs in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Terminate,
    Cancel,
    Signal,
    Delete,
    Reset,
}

impl Kind {
    /// The memo string Temporal records for the operation.
    pub fn memo_name(self) -> &'static str {
        match self {
            Kind::Terminate => "terminate",
            Kind::Cancel => "cancel",
            Kind::Signal => "signal",
            Kind::Delete => "delete",
            Kind::Reset => "reset",
        }
    }

    pub fn of(op: &Operation) -> Option<Kind> {
        Some(match op {
            Operation::TerminationOperation(_) => Kind::Terminate,
            Operation::CancellationOperation(_) => Kind::Cancel,
            Operation::SignalOperation(_) => Kind::Signal,
            Operation::DeletionOperation(_) => Kind::Delete,
            Operation::ResetOperation(_) => Kind::Reset,
            _ => return None,
        })
    }

    /// The identity the request gives the operation (recorded as `BatcherUser`).
    pub fn identity(op: &Operation) -> &str {
        match op {
            Operation::TerminationOperation(o) => &o.identity,
            Operation::CancellationOperation(o) => &o.identity,
            Operation::SignalOperation(o) => &o.identity,
            Operation::DeletionOperation(o) => &o.identity,
            Operation::ResetOperation(o) => &o.identity,
            Operation::UpdateWorkflowOptionsOperation(o) => &o.identity,
            Operation::UnpauseActivitiesOperation(o) => &o.identity,
            Operation::ResetActivitiesOperation(o) => &o.identity,
            Operation::UpdateActivityOptionsOperation(o) => &o.identity,
            Operation::CancelActivitiesOperation(o) => &o.identity,
            Operation::TerminateActivitiesOperation(o) => &o.identity,
            Operation::DeleteActivitiesOperation(_) => "",
        }
    }
}

/// The operation type a memo string names (Temporal's `batchOperationTypeFromString`).
pub fn type_from_memo(s: &str) -> BatchOperationType {
    match s {
        "terminate" | "terminate_workflows" => BatchOperationType::TerminateWorkflow,
        "cancel" | "cancel_workflows" => BatchOperationType::CancelWorkflow,
        "signal" | "signal_workflows" => BatchOperationType::SignalWorkflow,
        "delete" | "delete_workflows" => BatchOperationType::DeleteWorkflow,
        "reset" | "reset_workflows" => BatchOperationType::ResetWorkflow,
        _ => BatchOperationType::Unspecified,
    }
}

/// A batch's state from its workflow's status.
pub fn state(status: i32) -> BatchOperationState {
    match WorkflowExecutionStatus::try_from(status) {
        Ok(WorkflowExecutionStatus::Running) => BatchOperationState::Running,
        Ok(WorkflowExecutionStatus::Completed) => BatchOperationState::Completed,
        _ => BatchOperationState::Failed,
    }
}

const REQUIRED: &str = "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)";

/// Check a request as Temporal's `ValidateBatchOperation` does, in its order, and return the
/// operation temper runs for it.
pub fn validate(r: &StartBatchOperationRequest) -> Result<Kind, Status> {
    #[allow(deprecated)]
    let selectors = [
        !r.visibility_query.is_empty(),
        !r.executions.is_empty(),
        !r.target_executions.is_empty(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    let Some(op) = r.operation.as_ref() else {
        return Err(Status::invalid_argument(REQUIRED));
    };
    if r.reason.is_empty() || r.namespace.is_empty() || selectors == 0 {
        return Err(Status::invalid_argument(REQUIRED));
    }
    if r.job_id.is_empty() {
        return Err(Status::invalid_argument("JobId is not set on request."));
    }
    if selectors > 1 {
        return Err(Status::invalid_argument(
            "visibility query, executions, and target executions are mutually exclusive",
        ));
    }
    if r.job_id.len() > 1000 {
        return Err(Status::invalid_argument("JobId length exceeds limit."));
    }
    match op {
        Operation::SignalOperation(s) if s.signal.is_empty() => {
            return Err(Status::invalid_argument("must provide signal name"));
        }
        Operation::ResetOperation(reset) => match &reset.options {
            Some(o) if o.target.is_none() => {
                return Err(Status::invalid_argument("batch reset missing target"));
            }
            Some(_) => {}
            None => {
                #[allow(deprecated)]
                let t = reset.reset_type;
                match ResetType::try_from(t) {
                    Ok(ResetType::FirstWorkflowTask | ResetType::LastWorkflowTask) => {}
                    Ok(ResetType::Unspecified) => {
                        return Err(Status::invalid_argument(
                            "unknown batch reset type Unspecified",
                        ));
                    }
                    Err(_) => {
                        return Err(Status::invalid_argument(format!(
                            "unknown batch reset type {t}"
                        )));
                    }
                }
            }
        },
        _ => {}
    }
    match Kind::of(op) {
        Some(kind) => Ok(kind),
        None => Err(Status::invalid_argument(format!(
            "The operation type {} is not supported",
            operation_name(op)
        ))),
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::UpdateWorkflowOptionsOperation(_) => "UpdateWorkflowOptionsOperation",
        Operation::UnpauseActivitiesOperation(_) => "UnpauseActivitiesOperation",
        Operation::ResetActivitiesOperation(_) => "ResetActivitiesOperation",
        Operation::UpdateActivityOptionsOperation(_) => "UpdateActivityOptionsOperation",
        Operation::CancelActivitiesOperation(_) => "CancelActivitiesOperation",
        Operation::TerminateActivitiesOperation(_) => "TerminateActivitiesOperation",
        Operation::DeleteActivitiesOperation(_) => "DeleteActivitiesOperation",
        _ => "operation",
    }
}

/// The query the batch iterates. Temporal keeps terminate, cancel and signal to runs that are
/// still open, so a run closed meanwhile (or by an earlier attempt) is not counted again.
///
/// A reset closes the run it resets, which moves that run to the closed part of the list order,
/// ahead of the batch's cursor: without more, the batch would meet it again and reset it a
/// second time. So a reset batch leaves out runs that closed after it started (`started` is the
/// batch's start time, RFC 3339); the runs a reset creates started after the batch and sort
/// before its cursor.
pub fn adjusted_query(query: &str, kind: Kind, started: &str) -> String {
    match kind {
        _ if query.is_empty() => String::new(),
        Kind::Terminate | Kind::Cancel | Kind::Signal => {
            format!("({query}) AND (ExecutionStatus='Running' OR ExecutionStatus='Paused')")
        }
        Kind::Reset => format!("({query}) AND (CloseTime IS NULL OR CloseTime < '{started}')"),
        Kind::Delete => query.to_owned(),
    }
}

/// Operations per second for a request: what it asks for, or `default`.
pub fn rps(r: &StartBatchOperationRequest, default: f64) -> f64 {
    let asked = f64::from(r.max_operations_per_second);
    if asked.is_finite() && asked > 0.0 {
        asked
    } else {
        default
    }
}

/// A string as a `json/plain` payload (Temporal's `payload.EncodeString`).
pub fn json_payload(value: &serde_json::Value) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

/// The JSON a payload holds, if it is JSON.
pub fn payload_json(p: &Payload) -> Option<serde_json::Value> {
    serde_json::from_slice(&p.data).ok()
}

/// The memo a batch workflow starts with.
pub fn memo(r: &StartBatchOperationRequest, kind: Kind) -> Memo {
    let mut fields = HashMap::new();
    fields.insert(MEMO_TYPE.to_owned(), json_payload(&kind.memo_name().into()));
    fields.insert(
        MEMO_REASON.to_owned(),
        json_payload(&r.reason.clone().into()),
    );
    if !r.visibility_query.is_empty() {
        fields.insert(
            MEMO_QUERY.to_owned(),
            json_payload(&r.visibility_query.clone().into()),
        );
    }
    Memo { fields }
}

/// The search attributes a batch workflow starts with.
pub fn search_attributes(identity: &str) -> SearchAttributes {
    let keyword = |v: &str| {
        let mut p = json_payload(&v.into());
        p.metadata.insert("type".to_owned(), b"Keyword".to_vec());
        p
    };
    SearchAttributes {
        indexed_fields: [
            (SA_USER.to_owned(), keyword(identity)),
            (SA_DIVISION.to_owned(), keyword(NAMESPACE_DIVISION)),
        ]
        .into(),
    }
}

/// A memo or search attribute field as a string ("" when absent or not a JSON string).
pub fn string_field(fields: &HashMap<String, Payload>, key: &str) -> String {
    fields
        .get(key)
        .and_then(payload_json)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A stable request id for one operation of one batch on one run, so an operation repeated
/// after a restart is recognized by history as the same request (signals, resets, cancels).
pub fn request_id(job_id: &str, op: &str, workflow_id: &str, run_id: &str) -> String {
    // Two FNV-1a hashes with different offsets make 128 bits; collisions only matter within
    // one run's remembered request ids.
    let hash = |offset: u64| {
        let mut h = offset;
        for part in [job_id, op, workflow_id, run_id] {
            for b in part.bytes().chain(std::iter::once(0xff)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    };
    let (a, b) = (hash(0xcbf2_9ce4_8422_2325), hash(0x6c62_272e_07bb_0142));
    let bits = (u128::from(a) << 64) | u128::from(b);
    uuid::Uuid::from_u128(bits).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::batch::v1::{
        BatchOperationReset, BatchOperationSignal, BatchOperationTermination,
        BatchOperationUnpauseActivities,
    };
    use temper_proto::temporal::api::common::v1::{ResetOptions, WorkflowExecution};

    fn req(op: Option<Operation>) -> StartBatchOperationRequest {
        StartBatchOperationRequest {
            namespace: "default".into(),
            visibility_query: "WorkflowType = 'x'".into(),
            job_id: "j".into(),
            reason: "r".into(),
            operation: op,
            ..Default::default()
        }
    }

    fn terminate() -> Option<Operation> {
        Some(Operation::TerminationOperation(
            BatchOperationTermination::default(),
        ))
    }

    fn message(r: &StartBatchOperationRequest) -> String {
        validate(r).expect_err("refused").message().to_owned()
    }

    #[test]
    fn required_fields_come_first_then_job_id_then_selectors() {
        assert_eq!(message(&req(None)), REQUIRED);
        let mut r = req(terminate());
        r.reason.clear();
        assert_eq!(message(&r), REQUIRED);
        let mut r = req(terminate());
        r.visibility_query.clear();
        assert_eq!(message(&r), REQUIRED);
        let mut r = req(terminate());
        r.job_id.clear();
        assert_eq!(message(&r), "JobId is not set on request.");
        let mut r = req(terminate());
        #[allow(deprecated)]
        r.executions.push(WorkflowExecution {
            workflow_id: "w".into(),
            run_id: String::new(),
        });
        assert_eq!(
            message(&r),
            "visibility query, executions, and target executions are mutually exclusive"
        );
        assert_eq!(validate(&req(terminate())).expect("valid"), Kind::Terminate);
    }

    #[test]
    fn signal_needs_a_name_and_reset_a_target() {
        let r = req(Some(Operation::SignalOperation(
            BatchOperationSignal::default(),
        )));
        assert_eq!(message(&r), "must provide signal name");
        let r = req(Some(Operation::ResetOperation(
            BatchOperationReset::default(),
        )));
        assert_eq!(message(&r), "unknown batch reset type Unspecified");
        let r = req(Some(Operation::ResetOperation(BatchOperationReset {
            options: Some(ResetOptions::default()),
            ..Default::default()
        })));
        assert_eq!(message(&r), "batch reset missing target");
        #[allow(deprecated)]
        let r = req(Some(Operation::ResetOperation(BatchOperationReset {
            reset_type: ResetType::LastWorkflowTask as i32,
            ..Default::default()
        })));
        assert_eq!(validate(&r).expect("valid"), Kind::Reset);
    }

    #[test]
    fn operations_temper_lacks_are_refused_as_unsupported() {
        let r = req(Some(Operation::UnpauseActivitiesOperation(
            BatchOperationUnpauseActivities::default(),
        )));
        let e = validate(&r).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("is not supported"), "{}", e.message());
    }

    #[test]
    fn open_run_operations_keep_to_open_runs_and_resets_to_runs_not_closed_since() {
        let t = "2026-01-02T03:04:05Z";
        assert_eq!(
            adjusted_query("WorkflowType = 'x'", Kind::Terminate, t),
            "(WorkflowType = 'x') AND (ExecutionStatus='Running' OR ExecutionStatus='Paused')"
        );
        assert_eq!(
            adjusted_query("WorkflowType = 'x'", Kind::Delete, t),
            "WorkflowType = 'x'"
        );
        assert_eq!(
            adjusted_query("WorkflowType = 'x'", Kind::Reset, t),
            "(WorkflowType = 'x') AND (CloseTime IS NULL OR CloseTime < '2026-01-02T03:04:05Z')"
        );
        assert_eq!(adjusted_query("", Kind::Signal, t), "");
    }

    #[test]
    fn rps_defaults_to_temporals() {
        let mut r = req(terminate());
        assert_eq!(rps(&r, DEFAULT_RPS), DEFAULT_RPS);
        r.max_operations_per_second = 12.5;
        assert_eq!(rps(&r, DEFAULT_RPS), 12.5);
        r.max_operations_per_second = f32::NAN;
        assert_eq!(rps(&r, DEFAULT_RPS), DEFAULT_RPS);
    }

    #[test]
    fn states_and_types_map_as_temporal_maps_them() {
        assert_eq!(
            state(WorkflowExecutionStatus::Running as i32),
            BatchOperationState::Running
        );
        assert_eq!(
            state(WorkflowExecutionStatus::Completed as i32),
            BatchOperationState::Completed
        );
        assert_eq!(
            state(WorkflowExecutionStatus::Terminated as i32),
            BatchOperationState::Failed
        );
        for k in [
            Kind::Terminate,
            Kind::Cancel,
            Kind::Signal,
            Kind::Delete,
            Kind::Reset,
        ] {
            assert_ne!(
                type_from_memo(k.memo_name()),
                BatchOperationType::Unspecified
            );
        }
        assert_eq!(type_from_memo("x"), BatchOperationType::Unspecified);
    }

    #[test]
    fn memo_and_attributes_read_back() {
        let r = req(terminate());
        let m = memo(&r, Kind::Terminate);
        assert_eq!(string_field(&m.fields, MEMO_TYPE), "terminate");
        assert_eq!(string_field(&m.fields, MEMO_REASON), "r");
        assert_eq!(string_field(&m.fields, MEMO_QUERY), "WorkflowType = 'x'");
        let sa = search_attributes("me");
        assert_eq!(string_field(&sa.indexed_fields, SA_USER), "me");
        assert_eq!(
            string_field(&sa.indexed_fields, SA_DIVISION),
            NAMESPACE_DIVISION
        );
    }

    #[test]
    fn request_ids_are_stable_and_distinct() {
        let a = request_id("j", "signal", "w", "r");
        assert_eq!(a, request_id("j", "signal", "w", "r"));
        assert_ne!(a, request_id("j", "signal", "w", "r2"));
        assert_ne!(request_id("ab", "c", "", ""), request_id("a", "bc", "", ""));
    }
}
