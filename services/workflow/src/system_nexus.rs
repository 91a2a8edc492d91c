//! System Nexus: Nexus operations the server handles itself, on the reserved endpoint
//! `__temporal_system` (no endpoint is registered for it and no Nexus worker serves it), as
//! in Temporal. One operation is there: the WorkflowService's
//! SignalWithStartWorkflowExecution, which signal-with-starts a workflow in the caller's
//! namespace and completes synchronously with the SignalWithStartWorkflowExecutionResponse.
//!
//! The ScheduleNexusOperation command checks the operation and its input here
//! ([`check_schedule`]), so a bad request fails the workflow task, as in Temporal; the
//! history service builds the request it sends with [`request`] and encodes the answer with
//! [`response_payload`] (`services/history/src/system_nexus.rs`).

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use temper_proto::temporal::api::command::v1::ScheduleNexusOperationCommandAttributes;
use temper_proto::temporal::api::common::v1::{Link, Payload};
use temper_proto::temporal::api::workflowservice::v1::{
    SignalWithStartWorkflowExecutionRequest, SignalWithStartWorkflowExecutionResponse,
};

use crate::{Limits, WorkflowError, signal_with_start};

/// The reserved endpoint name.
pub const ENDPOINT: &str = "__temporal_system";
/// The one service on it.
pub const WORKFLOW_SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";
/// The service's one operation.
pub const SIGNAL_WITH_START: &str = "SignalWithStartWorkflowExecution";
/// Metadata key Temporal sets to `true` on the payloads of System Nexus results: an SDK
/// reads the message inside with its own converter and leaves the envelope unencoded.
pub const PAYLOAD_MARKER: &str = "__temporal_system_payload";

/// Why a System Nexus operation cannot be scheduled (the command's failure message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<WorkflowError> for Invalid {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::InvalidArgument(m) => Invalid(m),
            other => Invalid(other.to_string()),
        }
    }
}

/// Check a ScheduleNexusOperation command on the system endpoint, as Temporal does before it
/// accepts one: no Nexus headers, a known service and operation, and an input that makes a
/// valid request in the caller's namespace (`search_attribute_names`, when known, are the
/// attributes the namespace lets a workflow set).
pub fn check_schedule(
    a: &ScheduleNexusOperationCommandAttributes,
    namespace: &str,
    limits: &Limits,
    search_attribute_names: Option<&[String]>,
) -> Result<(), Invalid> {
    if !a.nexus_header.is_empty() {
        return Err(Invalid(format!(
            "ScheduleNexusOperationCommandAttributes.NexusHeader must be empty when using {ENDPOINT} endpoint"
        )));
    }
    let req = request(
        &a.service,
        &a.operation,
        a.input.as_ref(),
        namespace,
        // Stand-ins: the operation's own are set when it is sent.
        "request-id",
        Vec::new(),
        limits,
    )?;
    if let (Some(known), Some(sa)) = (search_attribute_names, &req.search_attributes) {
        let mut names: Vec<&String> = sa.indexed_fields.keys().collect();
        names.sort();
        if let Some(name) = names.into_iter().find(|n| !known.contains(n)) {
            return Err(Invalid(format!(
                "Namespace {namespace} has no mapping defined for search attribute {name}"
            )));
        }
    }
    Ok(())
}

/// The SignalWithStartWorkflowExecution request an operation's input makes: in the caller's
/// `namespace`, with the operation's request id and `links` (to the caller), which the
/// input itself must not set. Checked as the RPC checks its requests.
#[allow(clippy::too_many_arguments)]
pub fn request(
    service: &str,
    operation: &str,
    input: Option<&Payload>,
    namespace: &str,
    request_id: &str,
    links: Vec<Link>,
    limits: &Limits,
) -> Result<SignalWithStartWorkflowExecutionRequest, Invalid> {
    if service != WORKFLOW_SERVICE {
        return Err(Invalid(format!("service {service:?} not found")));
    }
    if operation != SIGNAL_WITH_START {
        return Err(Invalid(format!("operation {operation:?} not found")));
    }
    let Some(mut req) = decode(input)? else {
        return Err(Invalid("Request is empty".into()));
    };
    if req.namespace.is_empty() {
        req.namespace = namespace.to_owned();
    } else if req.namespace != namespace {
        return Err(Invalid(format!(
            "Namespace in request {:?} does not match namespace in context {namespace:?}",
            req.namespace
        )));
    }
    if !req.request_id.is_empty() {
        return Err(Invalid("RequestID should not be set on the request".into()));
    }
    req.request_id = request_id.to_owned();
    if !req.links.is_empty() {
        return Err(Invalid("Links should not be set on the request".into()));
    }
    req.links = links;
    signal_with_start::validate(&req, limits)?;
    Ok(req)
}

/// The operation's input as a request, read as Temporal's SDK converters write it
/// (`binary/protobuf`, or JSON); `None` for no input (or `binary/null`).
fn decode(
    input: Option<&Payload>,
) -> Result<Option<SignalWithStartWorkflowExecutionRequest>, Invalid> {
    let Some(p) = input else {
        return Ok(None);
    };
    let failed = |why: String| {
        Invalid(format!(
            "failed to decode input payload: payload item 0: {why}"
        ))
    };
    let Some(encoding) = p.metadata.get("encoding") else {
        return Err(failed("payload encoding metadata is not set".into()));
    };
    match encoding.as_slice() {
        b"binary/null" => Ok(None),
        b"binary/protobuf" => SignalWithStartWorkflowExecutionRequest::decode(p.data.as_slice())
            .map(Some)
            .map_err(|_| {
                failed("unable to decode: proto: cannot parse invalid wire-format data".into())
            }),
        b"json/protobuf" | b"json/plain" => from_json(&p.data)
            .map(Some)
            .map_err(|e| failed(format!("unable to decode: proto: {e}"))),
        other => Err(failed(format!(
            "encoding {}: payload encoding is not supported",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The Temporal API's descriptors, read once.
fn descriptors() -> Result<&'static prost_reflect::DescriptorPool, String> {
    static POOL: OnceLock<Result<prost_reflect::DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut pool = prost_reflect::DescriptorPool::global();
        pool.decode_file_descriptor_set(temper_proto::TEMPORAL_DESCRIPTOR_SET)
            .map_err(|e| e.to_string())?;
        Ok(pool)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A request in protobuf's JSON form (camelCase or proto field names, enums by name).
fn from_json(data: &[u8]) -> Result<SignalWithStartWorkflowExecutionRequest, String> {
    let pool = descriptors()?;
    let desc = pool
        .get_message_by_name(
            "temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest",
        )
        .ok_or("the Temporal descriptors lack SignalWithStartWorkflowExecutionRequest")?;
    let mut de = serde_json::Deserializer::from_slice(data);
    let msg =
        prost_reflect::DynamicMessage::deserialize(desc, &mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    msg.transcode_to().map_err(|e| e.to_string())
}

/// The operation's result: the response as a `binary/protobuf` payload, marked as a System
/// Nexus payload.
pub fn response_payload(resp: &SignalWithStartWorkflowExecutionResponse) -> Payload {
    Payload {
        metadata: HashMap::from([
            ("encoding".to_owned(), b"binary/protobuf".to_vec()),
            (
                "messageType".to_owned(),
                b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionResponse"
                    .to_vec(),
            ),
            (PAYLOAD_MARKER.to_owned(), b"true".to_vec()),
        ]),
        data: resp.encode_to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "system_nexus_tests.rs"]
mod tests;
