//! Error texts of a bounded size. Messages often quote the request ("workflow X not
//! found"), and a request may carry a megabyte-long id: quoted whole, it becomes a
//! megabyte-long `grpc-message` header (and again inside `grpc-status-details-bin`, whose
//! `google.rpc.Status` repeats the message), which HTTP/2 clients refuse by closing the
//! whole connection (hyper's h2: GOAWAY `too_many_continuations`), failing every other call
//! on it. So the public services' answers carry at most [`MAX_MESSAGE_CHARS`] characters of
//! text.

use prost::Message;
use tonic::Status;
use tonic::codegen::Bytes;
use tonic::codegen::http::HeaderMap;

/// Characters of an error message sent to a client; the rest is cut.
pub(crate) const MAX_MESSAGE_CHARS: usize = 2048;

/// Largest error detail kept, encoded.
const MAX_DETAIL_BYTES: usize = 16 * 1024;

/// Headers longer than this are decoded and checked (their text may still be short).
const CHECK_ABOVE_BYTES: usize = MAX_MESSAGE_CHARS;

/// Cut the message of a (trailers-only) error response to [`MAX_MESSAGE_CHARS`], in
/// `grpc-message` and in the `google.rpc.Status` of `grpc-status-details-bin`.
pub(crate) fn bound_message(headers: &mut HeaderMap) {
    let long = |name: &str| {
        headers
            .get(name)
            .is_some_and(|v| v.len() > CHECK_ABOVE_BYTES)
    };
    if !long("grpc-message") && !long("grpc-status-details-bin") {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let details = match temper_proto::google::rpc::Status::decode(status.details()) {
        Ok(mut st) if !status.details().is_empty() => {
            st.message = cut(&st.message);
            // A detail may quote the request too (NamespaceNotFoundFailure names the
            // namespace); one that large is dropped rather than cut into an invalid message.
            st.details.retain(|d| d.value.len() <= MAX_DETAIL_BYTES);
            Bytes::from(st.encode_to_vec())
        }
        _ => Bytes::copy_from_slice(status.details()),
    };
    // tonic encodes the new values as it would have (percent-encoding, base64).
    let bounded = Status::with_details(status.code(), cut(status.message()), details)
        .into_http::<tonic::body::Body>();
    for name in ["grpc-message", "grpc-status-details-bin"] {
        if let Some(v) = bounded.headers().get(name) {
            headers.insert(name, v.clone());
        }
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let head: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    format!("{head}... (message cut at {MAX_MESSAGE_CHARS} characters)")
}

#[cfg(test)]
mod tests {
    use temper_proto::temporal::api::errordetails::v1::NotFoundFailure;

    use super::*;

    fn bounded(status: Status) -> (HeaderMap, Status) {
        let mut headers = status.into_http::<tonic::body::Body>().headers().clone();
        bound_message(&mut headers);
        let back = Status::from_header_map(&headers).expect("a status");
        (headers, back)
    }

    #[test]
    fn a_huge_quoted_id_is_cut_in_the_message_and_the_details() {
        let id = "x".repeat(1 << 20);
        let status = temper_client::status::not_found(format!("workflow {id} not found"));
        let (headers, back) = bounded(status);
        for name in ["grpc-message", "grpc-status-details-bin"] {
            assert!(headers[name].len() < 4 * MAX_MESSAGE_CHARS, "{name}");
        }
        assert_eq!(back.code(), tonic::Code::NotFound);
        assert!(back.message().starts_with("workflow xxx"));
        assert!(back.message().ends_with("(message cut at 2048 characters)"));
        // The SDKs still find the detail that tells them what kind of error this is.
        assert!(temper_client::status::detail::<NotFoundFailure>(&back).is_some());
        let st = temper_proto::google::rpc::Status::decode(back.details()).expect("details");
        assert_eq!(st.message, back.message());
    }

    #[test]
    fn a_detail_quoting_a_huge_request_is_dropped() {
        let status = temper_client::status::namespace_not_found(&"n".repeat(1 << 20));
        let (headers, back) = bounded(status);
        assert!(headers["grpc-status-details-bin"].len() < 4 * MAX_MESSAGE_CHARS);
        assert_eq!(back.code(), tonic::Code::NotFound);
        let st = temper_proto::google::rpc::Status::decode(back.details()).expect("details");
        assert!(st.details.is_empty());
    }

    #[test]
    fn unicode_survives_the_cut() {
        let (_, back) = bounded(Status::invalid_argument("日本語🦀".repeat(2000)));
        assert!(back.message().starts_with("日本語🦀日本語"));
        assert_eq!(
            back.message().chars().count(),
            MAX_MESSAGE_CHARS + "... (message cut at 2048 characters)".len()
        );
    }

    #[test]
    fn ordinary_messages_are_untouched() {
        let text = "WorkflowId is not set on request. 100% sure: ünïcödé";
        let (_, back) = bounded(Status::invalid_argument(text));
        assert_eq!(back.message(), text);
    }
}
