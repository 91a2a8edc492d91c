//! Which replies go out gzip-compressed. A client that sends `grpc-accept-encoding: gzip` (the
//! Go SDK and `temper-loadtest` do) gets compressed replies, but gRPC marks compression per
//! message, so a reply may still go out as it is. Small ones do: a fresh gzip stream costs
//! its compressor's setup (tens of kilobytes of tables zeroed for every message) whatever the
//! message's size, and on the worker's hot path (a start, a task completion, a poll with a
//! short history) that setup was about 6% of the server's CPU while saving under a kilobyte
//! per message.

use tonic::codec::SingleMessageCompressionOverride;
use tonic::{Response, Status};

/// Replies smaller than this (encoded) go out uncompressed.
pub(crate) const COMPRESS_FROM_BYTES: usize = 4096;

/// Send `reply` uncompressed when it is small (see the module docs).
pub(crate) fn small_uncompressed<T: prost::Message>(
    reply: Result<Response<T>, Status>,
) -> Result<Response<T>, Status> {
    reply.map(|mut r| {
        if r.get_ref().encoded_len() < COMPRESS_FROM_BYTES {
            r.extensions_mut()
                .insert(SingleMessageCompressionOverride::Disable);
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use temper_proto::temporal::api::common::v1::Payload;

    fn override_of<T>(r: &Response<T>) -> Option<SingleMessageCompressionOverride> {
        r.extensions()
            .get::<SingleMessageCompressionOverride>()
            .copied()
    }

    #[test]
    fn only_small_replies_skip_compression() {
        let small = small_uncompressed(Ok(Response::new(Payload {
            data: vec![7; 100],
            ..Default::default()
        })))
        .expect("reply");
        assert_eq!(
            override_of(&small),
            Some(SingleMessageCompressionOverride::Disable)
        );
        let large = small_uncompressed(Ok(Response::new(Payload {
            data: vec![7; COMPRESS_FROM_BYTES],
            ..Default::default()
        })))
        .expect("reply");
        assert_eq!(override_of(&large), None, "compressed as the client asked");
        let err: Result<Response<Payload>, Status> = Err(Status::not_found("x"));
        assert!(small_uncompressed(err).is_err());
    }
}
