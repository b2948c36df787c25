//! Wiring: services, auth, health and reflection on one listener, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::v1;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::{info, warn};

use crate::api::pending::{PendingConsole, PendingEscalation, PendingExport, PendingHandling};
use crate::api::reporting::Reporting;
use crate::api::routing::Routing;
use crate::api::{Ctx, Limits};
use crate::auth::Verifier;
use crate::clock::SharedClock;

/// Everything a server needs, already connected.
pub struct ServerOptions {
    pub store: store::Store,
    pub clock: SharedClock,
    pub verifier: Verifier,
    pub listener: TcpListener,
    pub max_sync_batch: usize,
}

/// A server running in the background.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    join: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// Stops accepting calls, lets in-flight calls finish for up to `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        match tokio::time::timeout(grace, self.join).await {
            Ok(Ok(Ok(()))) => info!("server drained"),
            Ok(Ok(Err(e))) => warn!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => warn!(error = %e, "server task failed"),
            Err(_) => warn!("in-flight calls did not finish within the grace period"),
        }
    }

    /// A token that, once cancelled, begins the graceful shutdown.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server stops by itself or by its token.
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        self.join.await.unwrap_or(Ok(()))
    }
}

/// Starts serving on the given listener (bind port 0 in tests to get a free port).
pub async fn start(opts: ServerOptions) -> std::io::Result<Running> {
    let addr = opts.listener.local_addr()?;
    let ctx = Ctx {
        store: opts.store,
        clock: opts.clock,
        limits: Arc::new(Limits {
            max_sync_batch: opts.max_sync_batch,
        }),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::reporting_service_server::ReportingServiceServer<Reporting>>()
        .await;
    health
        .set_serving::<v1::routing_service_server::RoutingServiceServer<Routing>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;

    let v = opts.verifier;
    let auth = move |req| v.intercept(req);
    let router = Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            v1::reporting_service_server::ReportingServiceServer::with_interceptor(
                Reporting::new(ctx.clone()),
                auth.clone(),
            ),
        )
        .add_service(
            v1::routing_service_server::RoutingServiceServer::with_interceptor(
                Routing::new(ctx.clone()),
                auth.clone(),
            ),
        )
        .add_service(
            v1::escalation_service_server::EscalationServiceServer::with_interceptor(
                PendingEscalation,
                auth.clone(),
            ),
        )
        .add_service(
            v1::handling_service_server::HandlingServiceServer::with_interceptor(
                PendingHandling,
                auth.clone(),
            ),
        )
        .add_service(
            v1::console_service_server::ConsoleServiceServer::with_interceptor(
                PendingConsole,
                auth.clone(),
            ),
        )
        .add_service(
            v1::export_service_server::ExportServiceServer::with_interceptor(PendingExport, auth),
        );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let incoming = TcpListenerStream::new(opts.listener);
    let join = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
            .await
    });
    info!(%addr, "gridd listening");
    Ok(Running {
        addr,
        shutdown,
        join,
    })
}
