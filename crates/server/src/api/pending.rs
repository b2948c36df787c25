//! Services not built yet: they answer UNIMPLEMENTED rather than pretend.

use std::pin::Pin;

use futures::Stream;
use proto::v1;
use tonic::{Request, Response, Status};

use crate::error::ApiError;

type Unary<T> = Result<Response<T>, Status>;
pub(crate) type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn later<T>(what: &'static str) -> Result<T, Status> {
    Err(ApiError::Unimplemented(what).into())
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PendingExport;

#[tonic::async_trait]
impl v1::export_service_server::ExportService for PendingExport {
    type StreamEventsStream = ServerStream<v1::ExportRecord>;
    async fn stream_events(
        &self,
        _: Request<v1::StreamEventsRequest>,
    ) -> Unary<Self::StreamEventsStream> {
        later("StreamEvents")
    }
}
