//! Prometheus metrics (ADR 0036), in the OpenMetrics text format by the `prometheus-client`
//! crate, served on a listener of their own (`GRIDD_METRICS_ADDR`) so that the scrape needs no
//! token and never shares the public port.
//!
//! Counters and histograms are recorded where things happen, in one registry per process
//! ([`global`]); gauges of the shared state (queues, outbox, deadlines armed, the pool) are
//! sampled from Postgres and Redis at each scrape, so every replica answers the same.
//!
//! Series (all but the gRPC ones prefixed `gd_`):
//! - `grpc_server_handled_total{service,method,code}`, `grpc_server_handling_seconds{service,
//!   method}`: every call, gRPC or HTTP (`service="http"`), by the status it was answered with;
//!   latency until the answer's head (a whole unary call; a stream's opening);
//! - `gd_queue_depth{status,tier,unit_kind}`, `gd_queue_oldest_age_seconds{…}`,
//!   `gd_cases_overdue{…}`: open cases per stage, tier and kind of holder;
//! - `gd_outbox_pending`, `gd_outbox_lag_seconds`: what the relay has yet to publish;
//! - `gd_deadlines_armed`, `gd_deadlines_fired_total{outcome}`,
//!   `gd_deadline_lateness_seconds`: the timers;
//! - `gd_dead_letters_total`, `gd_reconciler_repairs_total{kind}`;
//! - `gd_db_pool_connections{state}`, `gd_redis_up`, `gd_redis_ping_seconds`,
//!   `gd_redis_blocking_connections`;
//! - `gd_batch_size{batch}`: reports, commands, deadlines and outbox rows per commit.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub service: String,
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub service: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub status: String,
    pub tier: String,
    pub unit_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    pub batch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 0.5 ms to ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn sizes() -> Histogram {
    // 1 to 512
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

/// Every series of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    pub call_seconds: Histograms<MethodLabels>,
    pub deadlines_fired: Family<OutcomeLabels, Counter>,
    pub deadline_lateness: Histogram,
    pub dead_letters: Counter,
    pub repairs: Family<KindLabels, Counter>,
    pub batch_size: Histograms<BatchLabels>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_oldest: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    overdue: Family<QueueLabels, Gauge>,
    outbox_pending: Gauge,
    outbox_lag: Gauge<f64, AtomicU64>,
    deadlines_armed: Gauge,
    pool: Family<PoolLabels, Gauge>,
    redis_up: Gauge,
    redis_ping: Gauge<f64, AtomicU64>,
    redis_blocking: Gauge,
    scrape_errors: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        r.register(
            "grpc_server_handled",
            "Calls answered, by service, method and status code",
            calls.clone(),
        );
        let call_seconds: Histograms<MethodLabels> = Family::new_with_constructor(latency);
        r.register(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its answer's head",
            call_seconds.clone(),
        );
        let deadlines_fired = Family::<OutcomeLabels, Counter>::default();
        r.register(
            "gd_deadlines_fired",
            "Deadlines fired, by what they did",
            deadlines_fired.clone(),
        );
        let deadline_lateness = latency();
        r.register(
            "gd_deadline_lateness_seconds",
            "How long after its time a deadline fired",
            deadline_lateness.clone(),
        );
        let dead_letters = Counter::default();
        r.register(
            "gd_dead_letters",
            "Queue entries set aside after too many failed deliveries",
            dead_letters.clone(),
        );
        let repairs = Family::<KindLabels, Counter>::default();
        r.register(
            "gd_reconciler_repairs",
            "Queue repairs by the reconciler: rebuilt inbox and intake entries, re-sent cases",
            repairs.clone(),
        );
        let batch_size: Histograms<BatchLabels> = Family::new_with_constructor(sizes);
        r.register(
            "gd_batch_size",
            "Items per commit of each batching writer",
            batch_size.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        r.register(
            "gd_queue_depth",
            "Open cases by stage, tier and kind of holder",
            queue_depth.clone(),
        );
        let queue_oldest = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
        r.register(
            "gd_queue_oldest_age_seconds",
            "How long the longest-waiting open case has been in its stage",
            queue_oldest.clone(),
        );
        let overdue = Family::<QueueLabels, Gauge>::default();
        r.register(
            "gd_cases_overdue",
            "Open cases past their clock",
            overdue.clone(),
        );
        let outbox_pending = Gauge::default();
        r.register(
            "gd_outbox_pending",
            "Outbox rows not yet published",
            outbox_pending.clone(),
        );
        let outbox_lag = Gauge::<f64, AtomicU64>::default();
        r.register(
            "gd_outbox_lag_seconds",
            "Age of the oldest unpublished outbox row",
            outbox_lag.clone(),
        );
        let deadlines_armed = Gauge::default();
        r.register(
            "gd_deadlines_armed",
            "Deadlines armed and not yet fired",
            deadlines_armed.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        r.register(
            "gd_db_pool_connections",
            "This process's Postgres connections: open, idle, in use and the most it may open",
            pool.clone(),
        );
        let redis_up = Gauge::default();
        r.register(
            "gd_redis_up",
            "1 when Redis answered the scrape's ping",
            redis_up.clone(),
        );
        let redis_ping = Gauge::<f64, AtomicU64>::default();
        r.register(
            "gd_redis_ping_seconds",
            "How long Redis took to answer the scrape's ping",
            redis_ping.clone(),
        );
        let redis_blocking = Gauge::default();
        r.register(
            "gd_redis_blocking_connections",
            "Dedicated Redis connections this process holds for blocking reads (worker loops, queue watches), beside its one shared connection",
            redis_blocking.clone(),
        );
        let scrape_errors = Counter::default();
        r.register(
            "gd_scrape_errors",
            "Scrapes whose Postgres sample failed",
            scrape_errors.clone(),
        );
        // counters an alert takes the increase of exist from the start, at 0
        for outcome in [
            "escalated",
            "warned",
            "overdue",
            "flagged",
            "stale",
            "refused",
        ] {
            let _ = deadlines_fired.get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            });
        }
        for kind in ["inbox_rebuilt", "intake_rebuilt", "resent"] {
            let _ = repairs.get_or_create(&KindLabels {
                kind: kind.to_owned(),
            });
        }
        Metrics {
            registry: r,
            calls,
            call_seconds,
            deadlines_fired,
            deadline_lateness,
            dead_letters,
            repairs,
            batch_size,
            queue_depth,
            queue_oldest,
            overdue,
            outbox_pending,
            outbox_lag,
            deadlines_armed,
            pool,
            redis_up,
            redis_ping,
            redis_blocking,
            scrape_errors,
        }
    }

    /// Records one commit of `n` items by the writer `batch`.
    pub fn batch(&self, batch: &str, n: usize) {
        self.batch_size
            .get_or_create(&BatchLabels {
                batch: batch.to_owned(),
            })
            .observe(n as f64);
    }

    /// Records a fired deadline: what it did and how late.
    pub fn fired(&self, outcome: &str, late_secs: f64) {
        self.deadlines_fired
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.deadline_lateness.observe(late_secs.max(0.0));
    }

    /// Records reconciler repairs of a kind.
    pub fn repaired(&self, kind: &str, n: usize) {
        if n > 0 {
            self.repairs
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .inc_by(n as u64);
        }
    }

    /// Samples the shared state and renders every series.
    pub async fn render(
        &self,
        store: &store::Store,
        queue: &queue::Queue,
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        match store.gauges(now).await {
            Ok(g) => self.set_gauges(&g),
            Err(e) => {
                self.scrape_errors.inc();
                tracing::warn!(error = %e, "metrics: the Postgres sample failed");
            }
        }
        self.redis_blocking.set(queue::blocking_connections());
        let started = Instant::now();
        match queue.ping().await {
            Ok(()) => {
                self.redis_up.set(1);
                self.redis_ping.set(started.elapsed().as_secs_f64());
            }
            Err(_) => {
                self.redis_up.set(0);
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }

    fn set_gauges(&self, g: &store::Gauges) {
        // stages that emptied since the last scrape drop out rather than linger
        self.queue_depth.clear();
        self.queue_oldest.clear();
        self.overdue.clear();
        for q in &g.queues {
            let l = QueueLabels {
                status: q.status.to_ascii_lowercase(),
                tier: q.tier.to_ascii_lowercase(),
                unit_kind: if q.department {
                    "department"
                } else {
                    "tier_unit"
                }
                .to_owned(),
            };
            self.queue_depth.get_or_create(&l).set(q.count);
            self.queue_oldest.get_or_create(&l).set(q.oldest_secs);
            self.overdue.get_or_create(&l).set(q.overdue);
        }
        self.outbox_pending.set(g.outbox_pending);
        self.outbox_lag.set(g.outbox_lag_secs);
        self.deadlines_armed.set(g.deadlines_armed);
        let pool = |state: &str, n: i64| {
            self.pool
                .get_or_create(&PoolLabels {
                    state: state.to_owned(),
                })
                .set(n);
        };
        let open = i64::from(g.pool_open);
        let idle = i64::try_from(g.pool_idle).unwrap_or(i64::MAX);
        pool("open", open);
        pool("idle", idle);
        pool("in_use", (open - idle).max(0));
        pool("max", i64::from(g.pool_max));
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// A status code as gRPC spells it: `OK`, `INVALID_ARGUMENT`, `PERMISSION_DENIED`, …
#[must_use]
pub fn code_name(code: tonic::Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// The labels of a call's path. gRPC methods of the contract, health and reflection keep
/// their names; HTTP endpoints are named by their first segment; anything else is `unknown`,
/// so that a scanner's paths cannot grow the series without bound.
fn call_labels(path: &str, grpc: bool) -> MethodLabels {
    let label = |service: &str, method: &str| MethodLabels {
        service: service.to_owned(),
        method: method.to_owned(),
    };
    if grpc {
        let known = crate::access::lookup(path).is_some()
            || path.starts_with("/grpc.health.v1.Health/")
            || path.starts_with("/grpc.reflection.");
        return match path.trim_start_matches('/').split_once('/') {
            Some((service, method)) if known => label(service, method),
            _ => label("unknown", "unknown"),
        };
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "open311" | "media" | "board" => label("http", first),
        _ => label("http", "other"),
    }
}

/// The layer that counts and times every call on the listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallMetricsLayer;

impl<S> tower_layer::Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;

    fn layer(&self, inner: S) -> CallMetrics<S> {
        CallMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> tonic::codegen::Service<tonic::codegen::http::Request<B>> for CallMetrics<S>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<R>,
        >,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let grpc = crate::web::content_type_starts(req.headers(), "application/grpc");
        let labels = call_labels(req.uri().path(), grpc);
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            if let Ok(r) = &res {
                // a refused or failed call answers its status in the head (trailers-only);
                // a call that succeeded, or a stream, says OK there
                let code = if grpc {
                    let n = r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    code_name(tonic::Code::from_i32(n))
                } else {
                    r.status().as_u16().to_string()
                };
                let m = global();
                m.calls
                    .get_or_create(&CallLabels {
                        service: labels.service.clone(),
                        method: labels.method.clone(),
                        code,
                    })
                    .inc();
                m.call_seconds
                    .get_or_create(&labels)
                    .observe(started.elapsed().as_secs_f64());
            }
            res
        })
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub fn serve(
    listener: tokio::net::TcpListener,
    store: store::Store,
    queue: queue::Queue,
    clock: crate::clock::SharedClock,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    use axum::http::header;
    use axum::response::IntoResponse as _;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (store, queue, clock) = (store.clone(), queue.clone(), clock.clone());
            async move {
                let body = global().render(&store, &queue, clock.now()).await;
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    );
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(tonic::service::Routes::from(app))
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics listener stopped with an error");
        }
    })
}
