//! The RPCs under test, read by reflection from the descriptor set `temporalio-protos`
//! exports (copied into OUT_DIR by `build.rs`): every method of WorkflowService and
//! OperatorService, with its request's message descriptor.

use prost_reflect::{DescriptorPool, MessageDescriptor};

static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptor.bin"));

/// The services the fuzzer covers.
pub const SERVICES: &[&str] = &[
    "temporal.api.workflowservice.v1.WorkflowService",
    "temporal.api.operatorservice.v1.OperatorService",
];

/// One unary RPC.
#[derive(Clone, Debug)]
pub struct Method {
    /// `WorkflowService/StartWorkflowExecution`, for reports.
    pub short: String,
    /// `/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution`.
    pub path: String,
    pub name: String,
    pub input: MessageDescriptor,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the Temporal descriptor set does not load: {0}")]
    Pool(#[from] prost_reflect::DescriptorError),
    #[error("the Temporal descriptor set lacks service {0}")]
    MissingService(String),
}

/// The descriptor pool (well-known types plus the Temporal API) and the methods to fuzz,
/// in descriptor order. Streaming methods (there are none today) are left out and returned
/// apart, so a report can say so.
pub fn load() -> Result<(DescriptorPool, Vec<Method>, Vec<String>), SchemaError> {
    let mut pool = DescriptorPool::global();
    pool.decode_file_descriptor_set(DESCRIPTOR_SET)?;
    let mut methods = Vec::new();
    let mut streaming = Vec::new();
    for full in SERVICES {
        let service = pool
            .get_service_by_name(full)
            .ok_or_else(|| SchemaError::MissingService(full.to_string()))?;
        for m in service.methods() {
            let short = format!("{}/{}", service.name(), m.name());
            if m.is_client_streaming() || m.is_server_streaming() {
                streaming.push(short);
                continue;
            }
            methods.push(Method {
                path: format!("/{}/{}", service.full_name(), m.name()),
                name: m.name().to_string(),
                short,
                input: m.input(),
            });
        }
    }
    Ok((pool, methods, streaming))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_method_is_found() {
        let (_, methods, streaming) = load().expect("descriptor set loads");
        assert!(streaming.is_empty(), "streaming methods: {streaming:?}");
        for name in [
            "StartWorkflowExecution",
            "RespondWorkflowTaskCompleted",
            "DescribeNamespace",
            "AddSearchAttributes",
            "CreateNexusEndpoint",
        ] {
            assert!(methods.iter().any(|m| m.name == name), "{name} missing");
        }
        assert!(methods.len() > 80, "only {} methods", methods.len());
    }
}
