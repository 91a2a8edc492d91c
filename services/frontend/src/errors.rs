//! Status helpers: Temporal's error details, and the store's errors as statuses.

use prost::Message;
use temper_persistence::StoreError;
use tonic::{Code, Status};

/// A status carrying one Temporal error detail, as `grpc-status-details-bin`.
pub fn status_with_details<M: Message + prost::Name>(
    code: Code,
    message: String,
    detail: &M,
) -> Status {
    let any = temper_proto::wkt::Any {
        type_url: M::type_url(),
        value: detail.encode_to_vec(),
    };
    let st = temper_proto::google::rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![any],
    };
    Status::with_details(code, message, st.encode_to_vec().into())
}

pub fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(m),
        StoreError::NotFound(m) => Status::not_found(m),
        StoreError::AlreadyExists(m) => Status::already_exists(m),
        other => Status::internal(other.to_string()),
    }
}

/// How long a long poll may wait: a second less than the caller's `grpc-timeout`, capped.
pub fn long_poll_budget(
    meta: &tonic::metadata::MetadataMap,
    cap: std::time::Duration,
) -> std::time::Duration {
    let Some(t) = meta
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
    else {
        return cap;
    };
    t.saturating_sub(std::time::Duration::from_secs(1)).min(cap)
}

/// Parse gRPC's `grpc-timeout` header value (`<digits><unit>`).
pub fn parse_grpc_timeout(v: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    if v.len() < 2 {
        return None;
    }
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_timeout() {
        assert_eq!(
            parse_grpc_timeout("69999m"),
            Some(Duration::from_millis(69999))
        );
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("12Q"), None);
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", "5S".parse().expect("valid header"));
        assert_eq!(
            long_poll_budget(&m, Duration::from_secs(60)),
            Duration::from_secs(4)
        );
        assert_eq!(
            long_poll_budget(
                &tonic::metadata::MetadataMap::new(),
                Duration::from_secs(60)
            ),
            Duration::from_secs(60)
        );
    }
}
