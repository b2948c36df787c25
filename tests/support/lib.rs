//! Test harness: a real gridd server on a free port of 127.0.0.1, over a fresh database that
//! `#[sqlx::test]` creates (and drops) for each test, with the sample county seeded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use proto::convert;
use proto::v1;
use server::auth::{Role, Verifier, mint_hs256};
use server::clock::OffsetClock;
use sqlx::PgPool;
use store::Store;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const SECRET: &[u8] = b"test-secret-not-for-production";

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
    /// A raw `authorization` header value, for tests of bad tokens.
    pub fn raw(header: &str) -> Bearer {
        Bearer(Some(header.parse().expect("header text")))
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Store,
    pub pool: PgPool,
    pub clock: Arc<OffsetClock>,
    pub channel: Channel,
    running: Option<server::Running>,
}

/// A grid of the sample county and its community, township and county.
pub const GRID: &str = "360102001001001";
pub const OTHER_GRID: &str = "360102002001001";
pub const COMMUNITY: &str = "360102001001";
pub const COUNTY: &str = "360102";

impl TestServer {
    /// Seeds the sample county into `pool` and starts a server on it.
    pub async fn start(pool: PgPool) -> TestServer {
        let store = Store::from_pool(pool.clone());
        seed_sample(&store).await;
        let clock = Arc::new(OffsetClock::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = server::start(server::ServerOptions {
            store: store.clone(),
            clock: clock.clone(),
            verifier: Verifier::hs256(SECRET),
            listener,
            max_sync_batch: 10_000,
        })
        .await
        .unwrap();
        let addr = running.addr;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        TestServer {
            addr,
            store,
            pool,
            clock,
            channel,
            running: Some(running),
        }
    }

    pub fn bearer(role: Role, unit: &str) -> Bearer {
        let sub = format!("{}@{unit}", role.as_str());
        let t = mint_hs256(SECRET, &sub, role, unit, 600).unwrap();
        Bearer(Some(format!("Bearer {t}").parse().unwrap()))
    }

    pub fn anonymous() -> Bearer {
        Bearer(None)
    }

    pub fn reporting_with(
        &self,
        b: Bearer,
    ) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
        v1::reporting_service_client::ReportingServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }

    /// A grid worker of `grid`.
    pub fn worker(
        &self,
        grid: &str,
    ) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
        self.reporting_with(Self::bearer(Role::GridWorker, grid))
    }

    /// An installation-wide admin's reporting client.
    pub fn admin_reporting(&self) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
        self.reporting_with(Self::bearer(Role::Admin, ""))
    }

    pub fn routing_with(
        &self,
        b: Bearer,
    ) -> v1::routing_service_client::RoutingServiceClient<Authed> {
        v1::routing_service_client::RoutingServiceClient::with_interceptor(self.channel.clone(), b)
    }

    pub fn admin_routing(&self) -> v1::routing_service_client::RoutingServiceClient<Authed> {
        self.routing_with(Self::bearer(Role::Admin, ""))
    }

    /// Rows of a table.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Rows written by reports: cases, events, outbox, keys, audit, counters.
    pub async fn report_rows(&self) -> [i64; 6] {
        [
            self.count("cases").await,
            self.count("case_events").await,
            self.count("outbox").await,
            self.count("idempotency_keys").await,
            self.count("audit_log").await,
            self.count("case_number_counters").await,
        ]
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// Loads the sample county straight into the store.
pub async fn seed_sample(store: &Store) {
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    store.upsert_units(&seed.units).await.unwrap();
    store.upsert_categories(&seed.categories).await.unwrap();
    for p in &seed.policies {
        store.put_policy(p).await.unwrap();
    }
}

/// A valid report from `grid`, with a fresh key.
pub fn report(grid: &str, category: &str, title: &str) -> v1::ReportEventRequest {
    v1::ReportEventRequest {
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        grid_code: grid.to_owned(),
        category: category.to_owned(),
        severity: 0,
        title: title.to_owned(),
        description: "网格巡查发现".to_owned(),
        location: Some(v1::Location {
            lat: 28.6832,
            lon: 115.8992,
            crs: v1::Crs::Wgs84.into(),
        }),
        occurred_at: Some(convert::timestamp(
            Utc::now() - chrono::Duration::minutes(1),
        )),
        self_handled: false,
        attachments: vec![v1::Attachment {
            content_hash: "ab".repeat(32),
            media_type: "image/jpeg".into(),
            size: 120_000,
            url: "https://objects.invalid/photos/1.jpg".into(),
        }],
    }
}

/// The field names of an INVALID_ARGUMENT status's `BadRequest` details.
pub fn violated_fields(s: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}
