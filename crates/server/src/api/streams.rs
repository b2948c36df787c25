//! Shared stream type of the server-streaming RPCs.

use std::pin::Pin;

use futures::Stream;

pub(crate) type ServerStream<T> =
    Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;
