//! Test harness: a real gridd server on a free port of 127.0.0.1, over a fresh database that
//! `#[sqlx::test]` creates (and drops) for each test, with the sample county seeded.

mod clients;
pub mod cluster;
mod fixtures;
pub mod invariants;
pub mod load;
pub mod plain_http;
pub mod proxy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use server::auth::Verifier;
use server::clock::OffsetClock;
use sqlx::PgPool;
use store::Store;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use fixtures::{
    awaiting_check, community_limits, jpeg, jpeg_with_exif, open311_key, report, roster,
    seed_sample, violated_fields,
};

pub const SECRET: &[u8] = b"test-secret-not-for-production";

/// The one web origin a test server lets browsers call it from.
pub const BOARD_ORIGIN: &str = "https://board.test";

pub use proto::v1 as wire;

/// Adds a bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Bearer {
    /// The `authorization` header's value, for HTTP clients ("" for none).
    #[must_use]
    pub fn header(&self) -> String {
        self.0
            .as_ref()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// A raw `authorization` header value, for tests of bad tokens.
    pub fn raw(header: &str) -> Bearer {
        Bearer(Some(header.parse().expect("header text")))
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Store,
    pub queue: queue::Queue,
    pub wake: Arc<server::pipeline::Wake>,
    pub pool: PgPool,
    pub clock: Arc<OffsetClock>,
    pub channel: Channel,
    /// Where this server keeps uploaded media.
    pub media_dir: std::path::PathBuf,
    /// Where it serves `GET /metrics`.
    pub metrics_addr: SocketAddr,
    running: Option<server::Running>,
}

/// How a test server differs from the usual one.
struct Setup {
    max_sync_batch: usize,
    route_at_report: bool,
    call_limits: server::CallLimits,
    /// TLS on the listener, and how the test's own channel trusts it.
    tls: Option<(Arc<server::tls::Tls>, tonic::transport::ClientTlsConfig)>,
    /// The contact key file's text; `None`: one fresh key.
    contact_keys: Option<String>,
    /// Where media go; `None`: a folder of its own.
    media: Option<server::media::MediaStore>,
    /// The duty notifier; `None`: nobody is called.
    notifier: Option<server::notify::NotifierOptions>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            max_sync_batch: 10_000,
            route_at_report: true,
            call_limits: server::CallLimits::unlimited(),
            tls: None,
            contact_keys: None,
            media: None,
            notifier: None,
        }
    }
}

/// A grid of the sample county and its community, township and county.
pub const GRID: &str = "360102001001001";
pub const OTHER_GRID: &str = "360102002001001";
pub const COMMUNITY: &str = "360102001001";
pub const COUNTY: &str = "360102";

/// A county's intake stream, as the queue names it.
pub fn intake_stream(county: &str) -> queue::Stream {
    queue::Stream::Intake(domain::region::RegionCode::parse(county).unwrap())
}

/// A unit's inbox stream.
pub fn inbox_stream(unit: &str) -> queue::Stream {
    queue::Stream::Inbox(domain::region::UnitCode::parse(unit).unwrap())
}

/// A county's dead letters.
pub fn dead_stream(county: &str) -> queue::Stream {
    queue::Stream::Dead(domain::region::RegionCode::parse(county).unwrap())
}

impl TestServer {
    /// Seeds the sample county into `pool` and starts a server (every role) on it, with its
    /// own Redis key prefix.
    pub async fn start(pool: PgPool) -> TestServer {
        let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
        Self::start_with(pool, &prefix, Arc::new(OffsetClock::default()), true).await
    }

    /// A server over an already seeded (or not) database and a given key prefix and clock:
    /// several of them make several replicas.
    pub async fn start_with(
        pool: PgPool,
        prefix: &str,
        clock: Arc<OffsetClock>,
        seed: bool,
    ) -> TestServer {
        Self::start_roles(pool, prefix, clock, seed, server::RoleSet::All).await
    }

    /// A server running only `roles` (the api always, so tests can talk to it).
    pub async fn start_roles(
        pool: PgPool,
        prefix: &str,
        clock: Arc<OffsetClock>,
        seed: bool,
        roles: server::RoleSet,
    ) -> TestServer {
        Self::start_limited(pool, prefix, clock, seed, roles, 10_000).await
    }

    /// Every role, with every new case sent through the intake stream and the router rather
    /// than routed in its report's transaction: for tests of that path.
    pub async fn start_routing_by_intake(pool: PgPool) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                route_at_report: false,
                ..Setup::default()
            },
        )
        .await
    }

    /// Every role over the seeded database, a key prefix and clock of its own, and `setup`.
    async fn start_fresh(pool: PgPool, setup: Setup) -> TestServer {
        let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
        let clock = Arc::new(OffsetClock::default());
        Self::start_full(pool, &prefix, clock, true, server::RoleSet::All, setup).await
    }

    /// Every role, sealing reporters' contacts with the keys of `key_file` (its text).
    pub async fn start_with_contact_keys(pool: PgPool, key_file: &str) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                contact_keys: Some(key_file.to_owned()),
                ..Setup::default()
            },
        )
        .await
    }

    /// Every role, with the duty notifier making its calls through `notifier`.
    pub async fn start_with_notifier(
        pool: PgPool,
        notifier: server::notify::NotifierOptions,
    ) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                notifier: Some(notifier),
                ..Setup::default()
            },
        )
        .await
    }

    /// Every role, keeping media in `media` (an S3-compatible bucket, say).
    pub async fn start_with_media(pool: PgPool, media: server::media::MediaStore) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                media: Some(media),
                ..Setup::default()
            },
        )
        .await
    }

    /// Every role, listening with TLS; the test's channel trusts the server with `client`.
    pub async fn start_tls(
        pool: PgPool,
        tls: Arc<server::tls::Tls>,
        client: tonic::transport::ClientTlsConfig,
    ) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                tls: Some((tls, client)),
                ..Setup::default()
            },
        )
        .await
    }

    /// A new TLS connection to the server at `addr`, checked against the name `localhost`.
    pub async fn tls_channel(
        addr: SocketAddr,
        client: tonic::transport::ClientTlsConfig,
    ) -> Result<Channel, tonic::transport::Error> {
        tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port()))
            .unwrap()
            .tls_config(client.domain_name("localhost"))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    /// Every role, with per-principal call limits (tests elsewhere run without them: one
    /// test principal stands for many callers).
    pub async fn start_with_call_limits(pool: PgPool, limits: server::CallLimits) -> TestServer {
        Self::start_fresh(
            pool,
            Setup {
                call_limits: limits,
                ..Setup::default()
            },
        )
        .await
    }

    /// [`TestServer::start_roles`] with a `SyncReports` stream limit of its own.
    pub async fn start_limited(
        pool: PgPool,
        prefix: &str,
        clock: Arc<OffsetClock>,
        seed: bool,
        roles: server::RoleSet,
        max_sync_batch: usize,
    ) -> TestServer {
        Self::start_full(
            pool,
            prefix,
            clock,
            seed,
            roles,
            Setup {
                max_sync_batch,
                ..Setup::default()
            },
        )
        .await
    }

    async fn start_full(
        pool: PgPool,
        prefix: &str,
        clock: Arc<OffsetClock>,
        seed: bool,
        roles: server::RoleSet,
        setup: Setup,
    ) -> TestServer {
        let Setup {
            max_sync_batch,
            route_at_report,
            call_limits,
            tls,
            contact_keys,
            media,
            notifier,
        } = setup;
        let contact_keys =
            contact_keys.unwrap_or_else(|| server::contacts::ContactKeys::new_line("test-1"));
        // the pool #[sqlx::test] hands out is small; a server wants its own, as in production
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(24)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let store = Store::from_pool(pool.clone());
        if seed {
            seed_sample(&store).await;
        }
        // the server acts as gridd's restricted role, as `gridd serve` does; fixtures and
        // checks use the owner's pool
        let serving = sqlx::postgres::PgPoolOptions::new()
            .max_connections(24)
            .connect_with(
                Store::session_options((*pool.connect_options()).clone(), Some("gridd_app"))
                    .unwrap(),
            )
            .await
            .unwrap();
        let queue = queue::Queue::connect(&redis_url(), prefix).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        // media of its own, removed when the server stops
        let media_dir = std::env::temp_dir().join(format!("gd-media-{prefix}"));
        let running = server::start(server::ServerOptions {
            store: Store::from_pool(serving),
            queue: queue.clone(),
            clock: clock.clone(),
            verifier: Verifier::hs256(SECRET),
            listener: Some(listener),
            max_sync_batch,
            roles,
            workers: server::WorkerOptions {
                relay_poll: Duration::from_millis(20),
                timer_reread: Duration::from_millis(50),
                router_min_idle: Duration::from_millis(300),
                max_deliveries: 3,
                reconcile_interval: Duration::from_millis(200),
                directory_ttl: Duration::from_millis(200),
                route_at_report,
                ..server::WorkerOptions::default()
            },
            call_limits,
            max_message_bytes: server::DEFAULT_MAX_MESSAGE_BYTES,
            tls: tls.as_ref().map(|(t, _)| t.clone()),
            contacts: server::contacts::ContactPolicy {
                keys: Some(Arc::new(
                    server::contacts::ContactKeys::parse(&contact_keys).unwrap(),
                )),
                retention: chrono::Duration::days(30),
                sweep: Duration::from_millis(200),
            },
            media: media.unwrap_or_else(|| {
                server::media::MediaStore::local(&media_dir, 1024 * 1024).unwrap()
            }),
            metrics: Some(metrics),
            cors_origins: vec![BOARD_ORIGIN.to_owned()],
            notifier,
        })
        .await
        .unwrap();
        let addr = running.addr.unwrap();
        let wake = running.wake.clone();
        let channel = match tls {
            None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
            Some((_, client)) => Self::tls_channel(addr, client).await.unwrap(),
        };
        TestServer {
            addr,
            store,
            queue,
            wake,
            pool,
            clock,
            channel,
            media_dir,
            metrics_addr,
            running: Some(running),
        }
    }
}

/// Every role but the router.
pub const NO_ROUTER: server::RoleSet = server::RoleSet::Some {
    api: true,
    relay: true,
    router: false,
    timers: true,
    reconciler: true,
};

/// The api and the router only.
pub const ROUTER_ONLY: server::RoleSet = server::RoleSet::Some {
    api: true,
    relay: false,
    router: true,
    timers: false,
    reconciler: false,
};

/// Runs `body` on a runtime of two worker threads, as gridd runs in production, with a pool
/// of its own on the test's database: `#[sqlx::test]` itself runs a test on one thread, where
/// two replicas or two timer workers never truly run at the same time.
pub async fn on_worker_threads<F, Fut>(pool: PgPool, body: F)
where
    F: FnOnce(PgPool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let opts = (*pool.connect_options()).clone();
    let ran = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await
                .unwrap();
            body(pool.clone()).await;
            pool.close().await;
        });
    })
    .await;
    if let Err(e) = ran {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A plain Redis connection for poking at streams from a test.
pub async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

pub fn redis_url() -> String {
    std::env::var("GRIDD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key of a test's prefix.
pub async fn delete_prefix(q: &queue::Queue) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", q.prefix()))
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query_async(&mut c).await;
    }
}
