//! Task tokens: opaque to workers, our own protobuf inside.

use prost::Message;

use crate::{WorkflowError, pb};

pub fn encode(t: &pb::TaskToken) -> Vec<u8> {
    t.encode_to_vec()
}

/// Decode a token from a worker; malformed input is an InvalidArgument, as in Temporal.
pub fn decode(bytes: &[u8]) -> Result<pb::TaskToken, WorkflowError> {
    if bytes.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "Task token not set on request.".into(),
        ));
    }
    let t = pb::TaskToken::decode(bytes)
        .map_err(|_| WorkflowError::InvalidArgument("Error deserializing task token.".into()))?;
    if t.namespace_id.is_empty() || t.workflow_id.is_empty() || t.run_id.is_empty() {
        return Err(WorkflowError::InvalidArgument(
            "Error deserializing task token.".into(),
        ));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let t = pb::TaskToken {
            namespace_id: "ns".into(),
            workflow_id: "wf".into(),
            run_id: "r".into(),
            scheduled_event_id: 5,
            ..Default::default()
        };
        assert_eq!(decode(&encode(&t)), Ok(t));
        assert!(decode(b"\xff\xff\xff").is_err());
        assert!(decode(b"").is_err());
    }
}
