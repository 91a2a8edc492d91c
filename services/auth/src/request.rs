//! Reading the namespace a unary gRPC request names, before the service decodes it: the body
//! is one length-prefixed message (gzip-compressed if `grpc-encoding` says so) whose
//! top-level `namespace` field number comes from the descriptor set. Only the wire format's
//! framing is read; the message is handed on untouched.

use std::io::Read;

use bytes::Bytes;

/// Why the namespace could not be read: the service would refuse the request too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is not one gRPC message")]
    Framing,
    #[error("the request message is not valid protobuf")]
    Protobuf,
    #[error("the request is compressed with `{0}`, which temper does not accept")]
    Encoding(String),
    #[error("the request is larger than {0} bytes")]
    TooLarge(usize),
}

/// The message of a unary request body (5-byte gRPC prefix, then the message).
pub fn message(body: &[u8], encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, RequestError> {
    if body.len() < 5 {
        return Err(RequestError::Framing);
    }
    let compressed = body[0] == 1;
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let payload = body.get(5..5 + len).ok_or(RequestError::Framing)?;
    if !compressed {
        return Ok(payload.to_vec());
    }
    match encoding {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(payload)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| RequestError::Framing)?;
            if out.len() > limit {
                return Err(RequestError::TooLarge(limit));
            }
            Ok(out)
        }
        other => Err(RequestError::Encoding(other.unwrap_or("none").to_string())),
    }
}

/// The last value of top-level length-delimited field `field` (a string or bytes field), as
/// protobuf decoding would keep it.
pub fn field(message: &[u8], field: u32) -> Result<Option<Bytes>, RequestError> {
    let mut rest = message;
    let mut found = None;
    while !rest.is_empty() {
        let key = varint(&mut rest)?;
        let number = key >> 3;
        match key & 7 {
            0 => {
                varint(&mut rest)?;
            }
            1 => rest = rest.get(8..).ok_or(RequestError::Protobuf)?,
            2 => {
                let len =
                    usize::try_from(varint(&mut rest)?).map_err(|_| RequestError::Protobuf)?;
                let value = rest.get(..len).ok_or(RequestError::Protobuf)?;
                if number == u64::from(field) {
                    found = Some(Bytes::copy_from_slice(value));
                }
                rest = &rest[len..];
            }
            5 => rest = rest.get(4..).ok_or(RequestError::Protobuf)?,
            // Groups (3, 4) are not in proto3 messages.
            _ => return Err(RequestError::Protobuf),
        }
    }
    Ok(found)
}

/// The request's namespace: field `field` as UTF-8 (empty when absent).
pub fn namespace(message: &[u8], number: u32) -> Result<String, RequestError> {
    match field(message, number)? {
        None => Ok(String::new()),
        Some(b) => String::from_utf8(b.to_vec()).map_err(|_| RequestError::Protobuf),
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64, RequestError> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&byte, rest) = buf.split_first().ok_or(RequestError::Protobuf)?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RequestError::Protobuf)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use prost::Message;
    use temper_proto::temporal::api::workflowservice::v1::{
        RespondWorkflowTaskCompletedRequest, StartWorkflowExecutionRequest,
    };

    use super::*;

    fn frame(msg: &[u8], compressed: bool) -> Vec<u8> {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(msg);
        out
    }

    #[test]
    fn the_namespace_is_read_from_the_field_the_descriptor_names() {
        let req = StartWorkflowExecutionRequest {
            namespace: "orders".into(),
            workflow_id: "wf".into(),
            request_id: "r".into(),
            ..Default::default()
        };
        let m =
            crate::methods::api_method(crate::methods::WORKFLOW_SERVICE, "StartWorkflowExecution")
                .expect("known");
        let body = frame(&req.encode_to_vec(), false);
        let msg = message(&body, None, 1 << 20).expect("framed");
        assert_eq!(
            namespace(&msg, m.namespace_field.expect("has one")).expect("ok"),
            "orders"
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&req.encode_to_vec()).expect("gzip");
        let body = frame(&gz.finish().expect("gzip"), true);
        let msg = message(&body, Some("gzip"), 1 << 20).expect("framed");
        assert_eq!(namespace(&msg, 1).expect("ok"), "orders");
        assert_eq!(
            message(&body, Some("br"), 1 << 20),
            Err(RequestError::Encoding("br".into()))
        );
        assert_eq!(
            message(&body, Some("gzip"), 3),
            Err(RequestError::TooLarge(3))
        );

        // Namespace is field 9 here, after the task token (field 1) and commands.
        let req = RespondWorkflowTaskCompletedRequest {
            task_token: b"namespace:not-this".to_vec(),
            namespace: "payments".into(),
            identity: "w".into(),
            ..Default::default()
        };
        let m = crate::methods::api_method(
            crate::methods::WORKFLOW_SERVICE,
            "RespondWorkflowTaskCompleted",
        )
        .expect("known");
        let msg = req.encode_to_vec();
        assert_eq!(
            namespace(&msg, m.namespace_field.expect("has one")).expect("ok"),
            "payments"
        );
        assert_eq!(namespace(&[], 1).expect("ok"), "");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(message(&[0, 0, 0], None, 10), Err(RequestError::Framing));
        assert_eq!(
            message(&[0, 0, 0, 0, 9, 1], None, 10),
            Err(RequestError::Framing)
        );
        assert_eq!(field(&[0x0a, 0x05, b'a'], 1), Err(RequestError::Protobuf));
        assert_eq!(field(&[0xff; 11], 1), Err(RequestError::Protobuf));
        assert_eq!(field(&[0x0b], 1), Err(RequestError::Protobuf));
        assert_eq!(
            namespace(&[0x0a, 0x01, 0xff], 1),
            Err(RequestError::Protobuf)
        );
        // Every prefix of a valid message is handled without panicking.
        let msg = StartWorkflowExecutionRequest {
            namespace: "n".into(),
            ..Default::default()
        }
        .encode_to_vec();
        for i in 0..msg.len() {
            let _ = field(&msg[..i], 1);
        }
    }
}
