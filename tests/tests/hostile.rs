//! Hostile bytes at the gRPC level: garbage, truncated and oversized messages get a clear
//! error, write nothing, and the server keeps serving.

use bytes::{Buf as _, BufMut as _};
use griddispatch_tests::*;
use prost::Message as _;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends and receives raw message bytes, so a test can put anything on the wire.
#[derive(Default, Clone, Copy)]
struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

async fn send(s: &TestServer, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let svc = tonic::service::interceptor::InterceptedService::new(
        s.channel.clone(),
        TestServer::bearer(Role::Admin, ""),
    );
    let mut grpc = tonic::client::Grpc::new(svc);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(e.to_string()))?;
    let path =
        http::uri::PathAndQuery::from_static("/griddispatch.v1.ReportingService/ReportEvent");
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn garbage_truncated_and_oversized_messages_are_refused_and_the_server_stays_up(
    pool: PgPool,
) {
    let s = TestServer::start(pool).await;
    let good = report(GRID, "0501", "正常上报").encode_to_vec();

    let err = send(&s, vec![0xff; 64]).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(err.message().contains("decode"), "{}", err.message());

    let err = send(&s, good[..good.len() / 2].to_vec()).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "truncated: {err:?}");

    let err = send(&s, vec![0x0a; 5 * 1024 * 1024]).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "oversized: {err:?}"
    );

    // an empty message is a report with every field missing: named, not crashed
    let err = send(&s, Vec::new()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields = violated_fields(&err);
    for f in [
        "idempotency_key",
        "grid_code",
        "category",
        "title",
        "location",
        "occurred_at",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
    }
    assert_eq!(s.report_rows().await, [0; 6], "nothing written");

    // still serving: a good report goes through on the same connection
    let reply = send(&s, good).await.unwrap();
    let reply = proto::v1::ReportEventResponse::decode(reply.as_slice()).unwrap();
    assert!(reply.case.is_some());
    s.stop().await;
}
