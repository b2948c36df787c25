//! Wiring: services, auth, health and reflection on one listener, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::v1;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::{info, warn};

use crate::api::console::Console;
use crate::api::escalation::Escalation;
use crate::api::export::Export;
use crate::api::handling::Handling;
use crate::api::reporting::Reporting;
use crate::api::routing::Routing;
use crate::api::{Ctx, Limits};
use crate::auth::Verifier;
use crate::clock::SharedClock;
use crate::pipeline::feed::{FeedTail, Sequencer};
use crate::pipeline::reconciler::Reconciler;
use crate::pipeline::relay::Relay;
use crate::pipeline::router::Router;
use crate::pipeline::timers::Timers;
use crate::pipeline::{Directory, Wake};

/// The roles one process can run; `gridd serve` runs all of them by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSet {
    All,
    Some {
        api: bool,
        relay: bool,
        router: bool,
        timers: bool,
        reconciler: bool,
    },
}

impl RoleSet {
    pub const NAMES: &'static [&'static str] = &["api", "relay", "router", "timers", "reconciler"];

    /// From `--roles api,relay,...`; empty means all.
    pub fn parse(names: &[String]) -> Result<RoleSet, String> {
        if names.is_empty() {
            return Ok(RoleSet::All);
        }
        for n in names {
            if !Self::NAMES.contains(&n.as_str()) {
                return Err(format!(
                    "unknown role {n}: known roles are {}",
                    Self::NAMES.join(", ")
                ));
            }
        }
        let has = |n: &str| names.iter().any(|x| x == n);
        Ok(RoleSet::Some {
            api: has("api"),
            relay: has("relay"),
            router: has("router"),
            timers: has("timers"),
            reconciler: has("reconciler"),
        })
    }

    fn has(self, f: impl Fn(bool, bool, bool, bool, bool) -> bool) -> bool {
        match self {
            RoleSet::All => true,
            RoleSet::Some {
                api,
                relay,
                router,
                timers,
                reconciler,
            } => f(api, relay, router, timers, reconciler),
        }
    }
}

/// Worker timings; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub relay_poll: Duration,
    pub timer_reread: Duration,
    pub router_min_idle: Duration,
    pub max_deliveries: u64,
    pub reconcile_interval: Duration,
    pub directory_ttl: Duration,
    /// How often the feed sequencer and the feed tail look for other replicas' commits.
    pub feed_poll: Duration,
    /// This process's name among consumers (unique per process).
    pub consumer: String,
    /// With the router role: route new cases in their report's transaction (ADR 0024).
    pub route_at_report: bool,
    /// A point outside every grid falls to the nearest grid's community within this many
    /// metres (ADR 0032).
    pub locate_reach_m: f64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            relay_poll: Duration::from_millis(100),
            timer_reread: Duration::from_secs(1),
            router_min_idle: Duration::from_secs(30),
            max_deliveries: 5,
            reconcile_interval: Duration::from_secs(2),
            directory_ttl: Duration::from_secs(10),
            feed_poll: Duration::from_millis(50),
            consumer: format!("gridd-{}", uuid::Uuid::now_v7()),
            route_at_report: true,
            locate_reach_m: 500.0,
        }
    }
}

/// Everything a server needs, already connected.
pub struct ServerOptions {
    pub store: store::Store,
    pub queue: queue::Queue,
    pub clock: SharedClock,
    pub verifier: Verifier,
    /// Where the api role listens; `None` runs no api.
    pub listener: Option<TcpListener>,
    pub max_sync_batch: usize,
    pub roles: RoleSet,
    pub workers: WorkerOptions,
    /// Per-principal rate and stream limits (`crate::limits`).
    pub call_limits: crate::limits::CallLimits,
    /// The largest request message accepted, in bytes (`GRIDD_MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// TLS on the listener (`crate::tls`); `None`: plain HTTP/2 (loopback or behind a proxy).
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Reporters' contacts: the keys that seal them, retention and the sweep (`crate::contacts`).
    pub contacts: crate::contacts::ContactPolicy,
    /// Where photos, videos and voice notes are kept (`crate::media`).
    pub media: crate::media::MediaStore,
    /// Where `GET /metrics` is served (`crate::metrics`), whatever the roles; `None`: nowhere.
    pub metrics: Option<TcpListener>,
    /// Web origins whose pages may call the API from a browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// The duty notifier (`crate::notify`), run beside the timers; `None`: nobody is called.
    pub notifier: Option<crate::notify::NotifierOptions>,
}

/// The largest request message by default: a report with its attachment references is a few
/// kilobytes, a registry batch a few hundred.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The most header bytes (the token among them) a request may carry.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// A server running in the background.
pub struct Running {
    pub addr: Option<SocketAddr>,
    pub wake: Arc<Wake>,
    pub directory: Arc<Directory>,
    shutdown: CancellationToken,
    join: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting calls and workers, lets in-flight calls finish for up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        let all = async move {
            if let Some(join) = self.join {
                match join.await {
                    Ok(Ok(())) => info!("server drained"),
                    Ok(Err(e)) => warn!(error = %e, "server stopped with an error"),
                    Err(e) => warn!(error = %e, "server task failed"),
                }
            }
            for w in self.workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("in-flight work did not finish within the grace period");
        }
    }

    /// A token that, once cancelled, begins the graceful shutdown.
    #[must_use]
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server stops by itself or by its token.
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        let result = match self.join {
            Some(j) => j.await.unwrap_or(Ok(())),
            None => {
                self.shutdown.cancelled().await;
                Ok(())
            }
        };
        for w in self.workers {
            let _ = w.await;
        }
        result
    }
}

/// CORS for browsers on `origins`: the methods and headers gRPC-Web and the HTTP endpoints
/// use, the gRPC status headers readable by the page. No origin, no CORS headers.
fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tonic::codegen::http::{HeaderName, HeaderValue, Method, header};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Starts the configured roles (bind port 0 in tests to get a free port).
pub async fn start(opts: ServerOptions) -> std::io::Result<Running> {
    let shutdown = CancellationToken::new();
    let wake = Arc::new(Wake::default());
    let directory = Arc::new(
        Directory::new(&opts.store, opts.workers.directory_ttl)
            .with_reach(opts.workers.locate_reach_m),
    );
    // the local sequencer wakes the local feed tail; other replicas' numbers arrive by polling
    let numbered = Arc::new(tokio::sync::Notify::new());
    let roles = opts.roles;
    let w = &opts.workers;
    let mut workers = Vec::new();
    if roles.has(|_, relay, _, _, _| relay) {
        let relay = Relay {
            store: opts.store.clone(),
            queue: opts.queue.clone(),
            wake: wake.clone(),
            poll: w.relay_poll,
        };
        workers.push(tokio::spawn(relay.run(shutdown.clone())));
        let sequencer = Sequencer {
            store: opts.store.clone(),
            poll: w.feed_poll,
            numbered: numbered.clone(),
        };
        workers.push(tokio::spawn(sequencer.run(shutdown.clone())));
    }
    if roles.has(|_, _, router, _, _| router) {
        let router = Router {
            store: opts.store.clone(),
            queue: opts.queue.clone(),
            directory: directory.clone(),
            clock: opts.clock.clone(),
            wake: wake.clone(),
            consumer: w.consumer.clone(),
            min_idle: w.router_min_idle,
            max_deliveries: w.max_deliveries,
        };
        workers.push(tokio::spawn(router.run(shutdown.clone())));
    }
    if roles.has(|_, _, _, timers, _| timers) {
        let timers = Timers {
            store: opts.store.clone(),
            directory: directory.clone(),
            clock: opts.clock.clone(),
            wake: wake.clone(),
            reread: w.timer_reread,
        };
        workers.push(tokio::spawn(timers.run(shutdown.clone())));
        if let Some(options) = opts.notifier.clone() {
            let notifier = crate::notify::DutyNotifier {
                store: opts.store.clone(),
                directory: directory.clone(),
                clock: opts.clock.clone(),
                options,
            };
            workers.push(tokio::spawn(notifier.run(shutdown.clone())));
        }
    }
    if roles.has(|_, _, _, _, reconciler| reconciler) {
        let rec = Reconciler {
            store: opts.store.clone(),
            queue: opts.queue.clone(),
            clock: opts.clock.clone(),
            interval: w.reconcile_interval,
            resent: std::sync::Arc::default(),
        };
        workers.push(tokio::spawn(rec.run(shutdown.clone())));
        let sweeper = crate::contacts::Sweeper {
            store: opts.store.clone(),
            clock: opts.clock.clone(),
            policy: opts.contacts.clone(),
        };
        workers.push(tokio::spawn(sweeper.run(shutdown.clone())));
    }
    if let Some(l) = opts.metrics {
        workers.push(crate::metrics::serve(
            l,
            opts.store.clone(),
            opts.queue.clone(),
            opts.clock.clone(),
            shutdown.clone(),
        ));
    }
    let Some(listener) = opts.listener.filter(|_| roles.has(|api, _, _, _, _| api)) else {
        return Ok(Running {
            addr: None,
            wake,
            directory,
            shutdown,
            join: None,
            workers,
        });
    };
    let addr = listener.local_addr()?;
    let feed = FeedTail::new();
    workers.push(tokio::spawn(feed.clone().run(
        opts.store.clone(),
        w.feed_poll,
        numbered,
        shutdown.clone(),
    )));
    // with the router role, new cases are routed in their report's transaction (ADR 0024)
    let inline =
        (opts.workers.route_at_report && roles.has(|_, _, router, _, _| router)).then(|| {
            crate::batcher::Inline {
                directory: directory.clone(),
                wake: wake.clone(),
            }
        });
    let limiter = crate::limits::Limiter::new(opts.call_limits);
    let ctx = Ctx {
        limiter: limiter.clone(),
        store: opts.store.clone(),
        queue: opts.queue,
        clock: opts.clock.clone(),
        limits: Arc::new(Limits {
            max_sync_batch: opts.max_sync_batch,
        }),
        directory: directory.clone(),
        wake: wake.clone(),
        shutdown: shutdown.clone(),
        reports: crate::batcher::Batcher::start(
            &opts.store,
            &opts.clock,
            4,
            &directory,
            inline.as_ref(),
        ),
        commands: crate::commands::Commands::start(&opts.store, &opts.clock, &directory, &wake, 4),
        feed,
        contacts: Arc::new(opts.contacts.clone()),
        media: opts.media.clone(),
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<v1::reporting_service_server::ReportingServiceServer<Reporting>>()
        .await;
    health
        .set_serving::<v1::routing_service_server::RoutingServiceServer<Routing>>()
        .await;
    health
        .set_serving::<v1::escalation_service_server::EscalationServiceServer<Escalation>>()
        .await;
    health
        .set_serving::<v1::handling_service_server::HandlingServiceServer<Handling>>()
        .await;
    health
        .set_serving::<v1::console_service_server::ConsoleServiceServer<Console>>()
        .await;
    health
        .set_serving::<v1::export_service_server::ExportServiceServer<Export>>()
        .await;
    health
        .set_serving::<v1::media_service_server::MediaServiceServer<crate::api::media::Media>>()
        .await;
    health
        .set_serving::<v1::duty_service_server::DutyServiceServer<crate::api::duty::Duty>>()
        .await;
    // reflection in both versions: grpcurl and current tools speak v1; Python's
    // grpcio-reflection, Evans, Postman and older grpcurl still speak v1alpha
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(std::io::Error::other)?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(std::io::Error::other)?;

    let max_message = opts.max_message_bytes;
    let tls = opts.tls.clone();
    let tls_on = tls.is_some();
    // every method has a row in the access table, or the server does not start
    crate::access::check_complete().map_err(std::io::Error::other)?;
    // gRPC services and the Open311 facade's HTTP routes share the listener and its layers
    let mut routes = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(
            v1::reporting_service_server::ReportingServiceServer::new(Reporting::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::routing_service_server::RoutingServiceServer::new(Routing::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::escalation_service_server::EscalationServiceServer::new(Escalation::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::handling_service_server::HandlingServiceServer::new(Handling::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::console_service_server::ConsoleServiceServer::new(Console::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::export_service_server::ExportServiceServer::new(Export::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::media_service_server::MediaServiceServer::new(crate::api::media::Media::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_message),
        )
        .add_service(
            v1::duty_service_server::DutyServiceServer::new(crate::api::duty::Duty::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_message),
        );
    let grpc = std::mem::take(routes.axum_router_mut());
    *routes.axum_router_mut() = grpc
        .merge(crate::open311::router(ctx.clone(), tls_on))
        .merge(crate::web::router(ctx.clone()))
        .merge(crate::board::router());
    let router = Server::builder()
        // browsers: CORS for the configured origins only (a preflight is answered here), then
        // gRPC-Web translated to gRPC, so that every layer below sees the same calls
        .layer(cors_layer(&opts.cors_origins))
        .layer(crate::web::GrpcWebLayer)
        // every call counted and timed, refusals among them
        .layer(crate::metrics::CallMetricsLayer)
        .layer(crate::access::AccessLayer::new(
            opts.verifier,
            limiter,
            tls.as_ref()
                .map(|t| t.options.client_cert_roles.clone())
                .unwrap_or_default(),
        ))
        .layer(crate::deadline::DeadlineLayer)
        // HTTP/1.1 for the Open311 facade's clients; gRPC arrives over HTTP/2 as before
        .accept_http1(true)
        .tcp_nodelay(true)
        .http2_max_header_list_size(Some(MAX_HEADER_LIST_BYTES))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_routes(routes);
    let token = shutdown.clone();
    // Accepted sockets need TCP_NODELAY set here: with an incoming stream of our own the
    // builder's `tcp_nodelay` does not apply, and small replies then wait ~40 ms for the
    // peer's delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let join = match tls {
        Some(tls) => {
            tls.spawn_reloading(shutdown.clone());
            let incoming = tls.incoming(incoming, shutdown.clone());
            tokio::spawn(async move {
                router
                    .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                    .await
            })
        }
        None => tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
                .await
        }),
    };
    info!(%addr, tls = tls_on, "gridd listening");
    Ok(Running {
        addr: Some(addr),
        wake,
        directory,
        shutdown,
        join: Some(join),
        workers,
    })
}
