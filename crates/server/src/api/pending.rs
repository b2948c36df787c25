//! Services whose RPCs come with the tier pipeline: until then they answer UNIMPLEMENTED
//! rather than pretend.

use std::pin::Pin;

use futures::Stream;
use proto::v1;
use tonic::{Request, Response, Status};

use crate::error::ApiError;

type Unary<T> = Result<Response<T>, Status>;
type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn later<T>(what: &'static str) -> Result<T, Status> {
    Err(ApiError::Unimplemented(what).into())
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PendingEscalation;

#[tonic::async_trait]
impl v1::escalation_service_server::EscalationService for PendingEscalation {
    type WatchQueueStream = ServerStream<v1::QueueItem>;
    async fn watch_queue(
        &self,
        _: Request<v1::WatchQueueRequest>,
    ) -> Unary<Self::WatchQueueStream> {
        later("WatchQueue")
    }
    async fn accept(&self, _: Request<v1::AcceptRequest>) -> Unary<v1::AcceptResponse> {
        later("Accept")
    }
    async fn call_up(&self, _: Request<v1::CallUpRequest>) -> Unary<v1::CallUpResponse> {
        later("CallUp")
    }
    async fn r#return(&self, _: Request<v1::ReturnRequest>) -> Unary<v1::ReturnResponse> {
        later("Return")
    }
    async fn dispatch(&self, _: Request<v1::DispatchRequest>) -> Unary<v1::DispatchResponse> {
        later("Dispatch")
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PendingHandling;

#[tonic::async_trait]
impl v1::handling_service_server::HandlingService for PendingHandling {
    async fn submit_result(
        &self,
        _: Request<v1::SubmitResultRequest>,
    ) -> Unary<v1::SubmitResultResponse> {
        later("SubmitResult")
    }
    async fn request_extension(
        &self,
        _: Request<v1::RequestExtensionRequest>,
    ) -> Unary<v1::RequestExtensionResponse> {
        later("RequestExtension")
    }
    async fn decide_extension(
        &self,
        _: Request<v1::DecideExtensionRequest>,
    ) -> Unary<v1::DecideExtensionResponse> {
        later("DecideExtension")
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct PendingConsole;

#[tonic::async_trait]
impl v1::console_service_server::ConsoleService for PendingConsole {
    type WatchCasesStream = ServerStream<v1::CaseChange>;
    async fn list_cases(&self, _: Request<v1::ListCasesRequest>) -> Unary<v1::ListCasesResponse> {
        later("ListCases")
    }
    async fn get_case(&self, _: Request<v1::GetCaseRequest>) -> Unary<v1::GetCaseResponse> {
        later("GetCase")
    }
    async fn watch_cases(
        &self,
        _: Request<v1::WatchCasesRequest>,
    ) -> Unary<Self::WatchCasesStream> {
        later("WatchCases")
    }
    async fn get_stats(&self, _: Request<v1::GetStatsRequest>) -> Unary<v1::GetStatsResponse> {
        later("GetStats")
    }
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
