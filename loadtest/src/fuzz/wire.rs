//! Raw unary gRPC: the fuzzer sends bytes it encoded itself (or broke on purpose) to any
//! method path, through tonic's generic client with a codec that passes bytes through.

use std::time::Duration;

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// Encodes and decodes `Vec<u8>` as is.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// How long past the deadline the client waits before giving up itself.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// Send `body` to `path` (`/package.Service/Method`) with a deadline of `timeout`.
pub async fn call(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, Status> {
    let path = PathAndQuery::try_from(path)
        .map_err(|e| Status::invalid_argument(format!("bad method path {path}: {e}")))?;
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
    let mut request = Request::new(body);
    request.set_timeout(timeout);
    // A server that ignores grpc-timeout (a long poll held for a minute) still ends here.
    match tokio::time::timeout(timeout + CLIENT_GRACE, grpc.unary(request, path, RawCodec)).await {
        Ok(answer) => answer.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(
            "no answer by the deadline (client side)",
        )),
    }
}
