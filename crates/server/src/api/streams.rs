//! Shared stream type of the server-streaming RPCs.

use std::pin::Pin;

use futures::Stream;

pub(crate) type ServerStream<T> =
    Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// The items of `rx` as a response stream that holds the caller's stream permit until the
/// stream ends or the client goes away.
pub(crate) fn held<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>,
    permit: crate::limits::StreamPermit,
) -> ServerStream<T> {
    use futures::StreamExt as _;
    Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| {
            let _open = &permit;
            item
        }),
    )
}
