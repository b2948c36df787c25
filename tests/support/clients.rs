//! The test server's clients and helpers: tokens, a client per service, counts and waits.

use std::time::Duration;

use proto::v1;
use server::auth::{Role, mint_hs256};

use crate::{Authed, Bearer, SECRET, TestServer, delete_prefix, report};

impl TestServer {
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

    /// Rows written by reporting itself (not by the router that follows): cases, their
    /// first events, intake outbox rows, keys, audit records, case-number counters.
    pub async fn report_rows(&self) -> [i64; 6] {
        [
            self.count("cases").await,
            self.count("case_events WHERE event_type = 'reported'")
                .await,
            self.count("outbox WHERE stream LIKE 'intake/%'").await,
            self.count("idempotency_keys").await,
            self.count("audit_log WHERE action = 'report'").await,
            self.count("pg_class WHERE relkind = 'S' AND relname LIKE 'case_seq_%'")
                .await,
        ]
    }

    /// Moves the server's clock forward and wakes its timers.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.wake.timers.notify_one();
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        delete_prefix(&self.queue).await;
        self.pool.close().await;
        let _ = std::fs::remove_dir_all(&self.media_dir);
    }

    pub fn media(&self, b: Bearer) -> v1::media_service_client::MediaServiceClient<Authed> {
        v1::media_service_client::MediaServiceClient::with_interceptor(self.channel.clone(), b)
    }

    /// Downloads a file of a case as `b`: its type and size (from the first message) and its
    /// bytes, or the code it was refused with.
    pub async fn download(
        &self,
        b: Bearer,
        case_id: &str,
        hash: &str,
    ) -> Result<(String, u64, Vec<u8>), tonic::Code> {
        let mut stream = self
            .media(b)
            .download(v1::DownloadRequest {
                case_id: case_id.into(),
                content_hash: hash.into(),
            })
            .await
            .map_err(|e| e.code())?
            .into_inner();
        let (mut media_type, mut size, mut bytes) = (String::new(), 0, Vec::new());
        while let Some(m) = stream.message().await.map_err(|e| e.code())? {
            if media_type.is_empty() {
                media_type = m.media_type;
                size = m.size;
            }
            bytes.extend_from_slice(&m.chunk);
        }
        Ok((media_type, size, bytes))
    }

    /// Uploads `bytes` as `b` and answers the attachment to refer to them by.
    pub async fn upload(&self, b: Bearer, bytes: &[u8]) -> Result<v1::Attachment, tonic::Status> {
        let chunks: Vec<v1::UploadRequest> = bytes
            .chunks(256 * 1024)
            .map(|c| v1::UploadRequest { chunk: c.to_vec() })
            .collect();
        self.media(b)
            .upload(tokio_stream::iter(chunks))
            .await
            .map(|r| r.into_inner().attachment.unwrap())
    }

    pub fn escalation(
        &self,
        b: Bearer,
    ) -> v1::escalation_service_client::EscalationServiceClient<Authed> {
        v1::escalation_service_client::EscalationServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }

    pub fn handling(
        &self,
        b: Bearer,
    ) -> v1::handling_service_client::HandlingServiceClient<Authed> {
        v1::handling_service_client::HandlingServiceClient::with_interceptor(
            self.channel.clone(),
            b,
        )
    }

    pub fn console(&self, b: Bearer) -> v1::console_service_client::ConsoleServiceClient<Authed> {
        v1::console_service_client::ConsoleServiceClient::with_interceptor(self.channel.clone(), b)
    }

    /// Staff of `unit` (a dispatcher for townships and above).
    pub fn staff(unit: &str) -> Bearer {
        let role = if unit.len() <= 9 && !unit.contains('-') {
            Role::Dispatcher
        } else {
            Role::UnitStaff
        };
        Self::bearer(role, unit)
    }

    /// The case's status and holder straight from Postgres.
    pub async fn case_row(&self, id: &str) -> (String, Option<String>, i64) {
        let id: uuid::Uuid = id.parse().unwrap();
        sqlx::query_as("SELECT status, holder_unit, version FROM cases WHERE case_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits (up to `secs`) until `check` holds.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    /// Reports a case and waits until the router has given it to a unit.
    pub async fn routed_case(&self, grid: &str, category: &str) -> v1::Case {
        let case = self
            .admin_reporting()
            .report_event(report(grid, category, "待分派"))
            .await
            .unwrap()
            .into_inner()
            .case
            .unwrap();
        let id = case.case_id.clone();
        self.eventually(10, "the case is routed", || async {
            self.case_row(&id).await.0 == "PENDING_ACCEPT"
        })
        .await;
        self.get_case(&id).await.case.unwrap()
    }

    pub async fn get_case(&self, id: &str) -> v1::GetCaseResponse {
        self.console(Self::bearer(Role::Admin, ""))
            .get_case(v1::GetCaseRequest {
                case_id: id.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// The sample county's policy as GetPolicy answers it.
    pub async fn county_policy(&self) -> v1::Policy {
        self.admin_routing()
            .get_policy(v1::GetPolicyRequest {
                county_code: crate::COUNTY.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .policy
            .unwrap()
    }

    /// The sample county's indicators from an hour ago to a minute ahead, as its dispatcher
    /// reads them.
    pub async fn recent_indicators(&self) -> v1::Indicators {
        let now = chrono::Utc::now();
        self.console(Self::bearer(Role::Dispatcher, crate::COUNTY))
            .get_stats(v1::GetStatsRequest {
                region_code: crate::COUNTY.into(),
                from: Some(proto::convert::timestamp(now - chrono::Duration::hours(1))),
                to: Some(proto::convert::timestamp(
                    now + chrono::Duration::minutes(1),
                )),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .total
            .unwrap()
    }

    /// Puts the sample county's policy as an admin, then waits until servers see it (their
    /// directory's cache lives 200 ms in tests); answers it as stored.
    pub async fn put_county_policy(&self, policy: v1::Policy) -> v1::Policy {
        let stored = self
            .admin_routing()
            .put_policy(v1::PutPolicyRequest {
                policy: Some(policy),
            })
            .await
            .unwrap()
            .into_inner()
            .policy
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        stored
    }
}
