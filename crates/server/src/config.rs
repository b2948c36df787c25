//! Layered configuration: defaults, then an optional TOML file, then `GRIDD_*` environment
//! variables (the environment wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `GRIDD_DATABASE_URL`.
    pub database_url: String,
    /// `GRIDD_REDIS_URL`.
    pub redis_url: String,
    /// `GRIDD_LISTEN`, default `127.0.0.1:50051`.
    pub listen: SocketAddr,
    /// `GRIDD_CORS_ORIGINS`: the web origins (`https://board.example.gov.cn`, comma separated)
    /// whose pages may call gridd from a browser; empty: none but gridd's own.
    pub cors_origins: String,
    /// `GRIDD_METRICS_LISTEN`, e.g. `0.0.0.0:9464`: where `GET /metrics` is served, for any
    /// role; unset: nowhere. Keep it off the public network: it takes no token.
    pub metrics_listen: Option<SocketAddr>,
    /// `GRIDD_NOTIFY_WEBHOOK_URL`: where the duty notifier POSTs its calls (ADR 0043); unset:
    /// nobody is called. `GRIDD_NOTIFY_WEBHOOK_SECRET_FILE` holds the HMAC key that signs them;
    /// `GRIDD_NOTIFY_ANSWER_SECS` (300) is how long a call waits before the next person's.
    pub notify_webhook_url: Option<String>,
    pub notify_webhook_secret_file: Option<PathBuf>,
    pub notify_answer_secs: u64,
    /// `GRIDD_DEMO_CLOCK_SPEED`: a demo's accelerated clock, this many times the wall
    /// clock's pace (1: the wall clock). Loopback only.
    pub demo_clock_speed: f64,
    /// `GRIDD_DEMO_CLOCK_START`: what the demo clock reads at `GRIDD_DEMO_CLOCK_ANCHOR`
    /// (RFC 3339).
    pub demo_clock_start: Option<String>,
    /// `GRIDD_DEMO_CLOCK_ANCHOR`: the real instant (RFC 3339) the demo clock reads its start;
    /// unset: when gridd starts.
    pub demo_clock_anchor: Option<String>,
    /// `GRIDD_JWT_SECRET`: HS256 secret for development tokens.
    pub jwt_secret: Option<String>,
    /// `GRIDD_JWT_PUBLIC_KEY_FILE`: the RS256 or ES256 public key (PEM) of production tokens;
    /// read again when it changes.
    pub jwt_public_key_file: Option<PathBuf>,
    /// `GRIDD_JWT_JWKS_FILE`: a JSON Web Key Set of RS256/ES256 keys, picked by `kid`; read
    /// again when it changes. Wins over the PEM file and the secret.
    pub jwt_jwks_file: Option<PathBuf>,
    /// `GRIDD_JWT_ISSUER`: when set, tokens must carry this `iss`.
    pub jwt_issuer: Option<String>,
    /// `GRIDD_JWT_AUDIENCE`: when set, tokens must carry this `aud`.
    pub jwt_audience: Option<String>,
    /// `GRIDD_JWT_RELOAD_SECS`: how often key files are checked for a change.
    pub jwt_reload_secs: u64,
    /// `GRIDD_DATABASE_ROLE`: the role `gridd serve` acts as (`gridd_app`, made by the
    /// migrations: it may only append to the audit trail and owns no table); empty: the login's
    /// own role. `gridd migrate` always runs as the login.
    pub database_role: String,
    /// `GRIDD_TLS_CERT_FILE` and `GRIDD_TLS_KEY_FILE`: the listener's PEM certificate chain and
    /// key; unset: plain HTTP/2. Read again when they change.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// `GRIDD_TLS_CLIENT_CA_FILE`: the CA client certificates must chain to.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `GRIDD_TLS_CLIENT_CERT_ROLES`: roles that must present a client certificate, comma
    /// separated (with a client CA; default `platform`).
    pub tls_client_cert_roles: String,
    /// `GRIDD_TLS_RELOAD_SECS`: how often the certificate files are checked for a change.
    pub tls_reload_secs: u64,
    /// `GRIDD_RATE_PER_SEC`: calls per second each principal may make on average; 0: no limit.
    pub rate_per_sec: f64,
    /// `GRIDD_RATE_BURST`: calls a principal may make at once after a quiet spell.
    pub rate_burst: f64,
    /// `GRIDD_MAX_STREAMS`: streams a principal may hold open at once; 0: no limit.
    pub max_streams: usize,
    /// `GRIDD_MAX_MESSAGE_BYTES`: the largest request message accepted.
    pub max_message_bytes: usize,
    /// `GRIDD_INSECURE_DEV=1`: no authentication at all. Development only.
    pub insecure_dev: bool,
    /// `GRIDD_OTLP_ENDPOINT`: OTLP/gRPC collector for traces; unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `GRIDD_DB_MAX_CONNECTIONS`.
    pub db_max_connections: u32,
    /// `GRIDD_REDIS_PREFIX`: prefix of every Redis key (one per installation or test).
    pub redis_prefix: String,
    /// `GRIDD_LOG_FORMAT`: `json` (default) or `text`.
    pub log_format: String,
    /// `GRIDD_SHUTDOWN_GRACE_SECS`: how long the first signal waits for in-flight calls.
    pub shutdown_grace_secs: u64,
    /// `GRIDD_MAX_SYNC_BATCH`: most reports one `SyncReports` stream may send.
    pub max_sync_batch: usize,
    /// `GRIDD_ROUTER_MIN_IDLE_MS`: how long an intake entry read by a consumer that went away
    /// waits before another router claims it.
    pub router_min_idle_ms: u64,
    /// `GRIDD_MAX_DELIVERIES`: deliveries of one intake entry before it is dead-lettered.
    pub max_deliveries: u64,
    /// `GRIDD_RECONCILE_INTERVAL_MS`: how often the reconciler checks that Redis still holds
    /// the queues.
    pub reconcile_interval_ms: u64,
    /// `GRIDD_ROUTE_AT_REPORT`: a process running the router role also routes each new case in
    /// its report's own transaction (default `true`); `false` sends every case through the
    /// intake stream and the router.
    pub route_at_report: bool,
    /// `GRIDD_CONTACT_KEYS_FILE`: the keys that seal reporters' contacts, one `<id> <64 hex>`
    /// per line, the current one first (`gridctl contact-key` makes a line); unset: reports
    /// with a contact are refused.
    pub contact_keys_file: Option<PathBuf>,
    /// `GRIDD_CONTACT_RETENTION_DAYS`: a closed case's contact is purged this many days after
    /// the case last changed.
    pub contact_retention_days: u32,
    /// `GRIDD_CONTACT_SWEEP_SECS`: how often the purge and reseal sweep runs.
    pub contact_sweep_secs: u64,
    /// `GRIDD_LOCATE_REACH_M`: a point outside every grid falls to the nearest grid's
    /// community when it lies within this many metres of it, and is refused farther out.
    pub locate_reach_m: f64,
    /// `GRIDD_MEDIA_DIR`: the folder photos, videos and voice notes are kept in (made if
    /// missing), under their SHA-256.
    pub media_dir: PathBuf,
    /// `GRIDD_MEDIA_MAX_BYTES`: the largest file one upload may carry.
    pub media_max_bytes: usize,
    /// `GRIDD_MEDIA_S3_BUCKET`: keep media in this S3-compatible bucket instead of the folder
    /// (credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).
    pub media_s3_bucket: Option<String>,
    /// `GRIDD_MEDIA_S3_ENDPOINT`: the S3-compatible service's URL; unset: AWS itself.
    pub media_s3_endpoint: Option<String>,
    /// `GRIDD_MEDIA_S3_REGION`: the bucket's region.
    pub media_s3_region: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "postgres://postgres:postgres@127.0.0.1:5432/griddispatch".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: None,
            notify_webhook_url: None,
            notify_webhook_secret_file: None,
            notify_answer_secs: 300,
            cors_origins: String::new(),
            demo_clock_speed: 1.0,
            demo_clock_start: None,
            demo_clock_anchor: None,
            jwt_secret: None,
            jwt_public_key_file: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_reload_secs: 10,
            database_role: "gridd_app".into(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_cert_roles: "platform".into(),
            tls_reload_secs: 10,
            rate_per_sec: 20.0,
            rate_burst: 200.0,
            max_streams: 16,
            max_message_bytes: crate::app::DEFAULT_MAX_MESSAGE_BYTES,
            insecure_dev: false,
            otlp_endpoint: None,
            db_max_connections: 32,
            redis_prefix: "gd".into(),
            log_format: "json".into(),
            shutdown_grace_secs: 20,
            max_sync_batch: 10_000,
            router_min_idle_ms: 30_000,
            max_deliveries: 5,
            reconcile_interval_ms: 2_000,
            route_at_report: true,
            contact_keys_file: None,
            contact_retention_days: 180,
            contact_sweep_secs: 600,
            locate_reach_m: 500.0,
            media_dir: PathBuf::from("gridd-media"),
            media_max_bytes: crate::media::DEFAULT_MAX_BYTES,
            media_s3_bucket: None,
            media_s3_endpoint: None,
            media_s3_region: "us-east-1".into(),
        }
    }
}

impl std::fmt::Debug for Config {
    // Hand-written so that secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("cors_origins", &self.cors_origins)
            .field("demo_clock_speed", &self.demo_clock_speed)
            .field("demo_clock_start", &self.demo_clock_start)
            .field("demo_clock_anchor", &self.demo_clock_anchor)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("jwt_jwks_file", &self.jwt_jwks_file)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_reload_secs", &self.jwt_reload_secs)
            .field("database_role", &self.database_role)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_client_ca_file", &self.tls_client_ca_file)
            .field("tls_client_cert_roles", &self.tls_client_cert_roles)
            .field("tls_reload_secs", &self.tls_reload_secs)
            .field("rate_per_sec", &self.rate_per_sec)
            .field("rate_burst", &self.rate_burst)
            .field("max_streams", &self.max_streams)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("insecure_dev", &self.insecure_dev)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("db_max_connections", &self.db_max_connections)
            .field("redis_prefix", &self.redis_prefix)
            .field("contact_keys_file", &self.contact_keys_file)
            .field("contact_retention_days", &self.contact_retention_days)
            .field("locate_reach_m", &self.locate_reach_m)
            .field("media_dir", &self.media_dir)
            .field("media_s3_bucket", &self.media_s3_bucket)
            .field("media_s3_endpoint", &self.media_s3_endpoint)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads defaults, then `file` if given (it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, config::ConfigError> {
        let mut b = config::Config::builder();
        if let Some(f) = file {
            b = b.add_source(config::File::from(f).required(true));
        }
        b = b.add_source(
            config::Environment::with_prefix("GRIDD")
                .prefix_separator("_")
                .try_parsing(true),
        );
        b.build()?.try_deserialize()
    }

    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Checks every setting that has a rule beyond its type (the types were checked as the
    /// configuration loaded) and names the first bad one: `gridd check-config` prints it and
    /// `gridd serve` refuses to start with it. Files named by settings are read by their own
    /// loaders (tokens, TLS, contact keys), which `gridd` calls next.
    pub fn check(&self) -> Result<(), String> {
        fn bad(name: &str, why: impl std::fmt::Display) -> Result<(), String> {
            Err(format!("GRIDD_{name}: {why}"))
        }
        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad("DATABASE_URL", "must be a postgres:// URL");
        }
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return bad("REDIS_URL", "must be a redis:// or rediss:// URL");
        }
        if self.insecure_dev && !self.listen.ip().is_loopback() {
            return bad(
                "INSECURE_DEV",
                format!(
                    "refused on a listener off loopback ({}): configure tokens instead",
                    self.listen
                ),
            );
        }
        if self
            .jwt_secret
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s.len() < 16)
        {
            return bad("JWT_SECRET", "at least 16 bytes");
        }
        self.clock()?;
        self.cors_origin_list()?;
        crate::notify::NotifierOptions::from_config(self)?;
        if self.metrics_listen == Some(self.listen) {
            return bad("METRICS_LISTEN", "another address than GRIDD_LISTEN");
        }
        if self.jwt_reload_secs == 0 {
            return bad("JWT_RELOAD_SECS", "at least 1");
        }
        if self.tls_reload_secs == 0 {
            return bad("TLS_RELOAD_SECS", "at least 1");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad(
                "TLS_CERT_FILE",
                "GRIDD_TLS_CERT_FILE and GRIDD_TLS_KEY_FILE go together",
            );
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return bad(
                "TLS_CLIENT_CA_FILE",
                "needs the server's own GRIDD_TLS_CERT_FILE",
            );
        }
        for (name, file) in [
            ("JWT_PUBLIC_KEY_FILE", &self.jwt_public_key_file),
            ("JWT_JWKS_FILE", &self.jwt_jwks_file),
            ("TLS_CERT_FILE", &self.tls_cert_file),
            ("TLS_KEY_FILE", &self.tls_key_file),
            ("TLS_CLIENT_CA_FILE", &self.tls_client_ca_file),
            ("CONTACT_KEYS_FILE", &self.contact_keys_file),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                return bad(name, format!("{} is not a readable file", f.display()));
            }
        }
        if !self.rate_per_sec.is_finite() || self.rate_per_sec < 0.0 {
            return bad(
                "RATE_PER_SEC",
                "a number of calls per second, 0 for no limit",
            );
        }
        if self.rate_per_sec > 0.0 && !(self.rate_burst.is_finite() && self.rate_burst >= 1.0) {
            return bad("RATE_BURST", "at least 1 when GRIDD_RATE_PER_SEC is set");
        }
        if self.max_message_bytes < 4 * 1024 {
            return bad("MAX_MESSAGE_BYTES", "at least 4096");
        }
        if self.db_max_connections < 2 {
            return bad("DB_MAX_CONNECTIONS", "at least 2");
        }
        if self.redis_prefix.is_empty()
            || !self
                .redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("REDIS_PREFIX", "letters, digits, '-' and '_', not empty");
        }
        if self.log_format != "json" && self.log_format != "text" {
            return bad("LOG_FORMAT", "json or text");
        }
        if self.max_sync_batch == 0 {
            return bad("MAX_SYNC_BATCH", "at least 1");
        }
        if self.max_deliveries == 0 {
            return bad("MAX_DELIVERIES", "at least 1");
        }
        if self.reconcile_interval_ms == 0 {
            return bad("RECONCILE_INTERVAL_MS", "at least 1");
        }
        if self.contact_retention_days == 0 {
            return bad("CONTACT_RETENTION_DAYS", "at least 1");
        }
        if self.contact_sweep_secs == 0 {
            return bad("CONTACT_SWEEP_SECS", "at least 1");
        }
        if !self.locate_reach_m.is_finite() || self.locate_reach_m < 0.0 {
            return bad("LOCATE_REACH_M", "a distance in metres, 0 or more");
        }
        if let Some(e) = &self.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad("OTLP_ENDPOINT", "an http:// or https:// URL");
        }
        if self.media_max_bytes < 1024 {
            return bad("MEDIA_MAX_BYTES", "at least 1024");
        }
        if self.media_dir.as_os_str().is_empty() {
            return bad("MEDIA_DIR", "a folder");
        }
        if let Some(e) = self.media_s3_endpoint.as_deref().filter(|e| !e.is_empty())
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad("MEDIA_S3_ENDPOINT", "an http:// or https:// URL");
        }
        self.tls_options()?;
        Ok(())
    }

    /// The media store this configuration names: the bucket when one is named, else the
    /// folder (made if missing).
    pub fn media_store(&self) -> Result<crate::media::MediaStore, String> {
        match self.media_s3_bucket.as_deref().filter(|b| !b.is_empty()) {
            Some(bucket) => crate::media::MediaStore::s3(
                bucket,
                self.media_s3_endpoint.as_deref().filter(|e| !e.is_empty()),
                &self.media_s3_region,
                None,
                self.media_max_bytes,
            )
            .map_err(|e| format!("GRIDD_MEDIA_S3_BUCKET: {e}")),
            None => crate::media::MediaStore::local(&self.media_dir, self.media_max_bytes)
                .map_err(|e| format!("GRIDD_MEDIA_DIR: {e}")),
        }
    }

    /// How reporters' contacts are kept: the key file is read here, once.
    pub fn contact_policy(&self) -> Result<crate::contacts::ContactPolicy, String> {
        let keys = self
            .contact_keys_file
            .as_deref()
            .map(crate::contacts::ContactKeys::from_file)
            .transpose()
            .map_err(|e| format!("GRIDD_CONTACT_KEYS_FILE: {e}"))?;
        if self.contact_retention_days == 0 {
            return Err("GRIDD_CONTACT_RETENTION_DAYS must be at least 1".into());
        }
        Ok(crate::contacts::ContactPolicy {
            keys: keys.map(std::sync::Arc::new),
            retention: chrono::Duration::days(i64::from(self.contact_retention_days)),
            sweep: Duration::from_secs(self.contact_sweep_secs.max(1)),
        })
    }

    /// The listener's TLS settings, when a certificate is configured.
    pub fn tls_options(&self) -> Result<Option<crate::tls::TlsOptions>, String> {
        let (cert, key) = match (&self.tls_cert_file, &self.tls_key_file) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => return Err("GRIDD_TLS_CERT_FILE and GRIDD_TLS_KEY_FILE go together".into()),
        };
        let roles = if self.tls_client_ca_file.is_some() {
            self.tls_client_cert_roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| {
                    crate::auth::Role::parse(r)
                        .ok_or_else(|| format!("GRIDD_TLS_CLIENT_CERT_ROLES: unknown role {r}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        Ok(Some(crate::tls::TlsOptions {
            cert_file: cert,
            key_file: key,
            client_ca_file: self.tls_client_ca_file.clone(),
            client_cert_roles: roles,
            reload_every: Duration::from_secs(self.tls_reload_secs.max(1)),
        }))
    }

    /// The origins `GRIDD_CORS_ORIGINS` names: each `http(s)://host[:port]`, no path, no
    /// wildcard (the API carries bearer tokens: it is never open to every origin).
    pub fn cors_origin_list(&self) -> Result<Vec<String>, String> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| {
                let rest = o
                    .strip_prefix("https://")
                    .or_else(|| o.strip_prefix("http://"));
                match rest {
                    Some(host)
                        if !host.is_empty()
                            && !host.contains(['/', '*', ' '])
                            && axum::http::HeaderValue::from_str(o).is_ok() =>
                    {
                        Ok(o.to_owned())
                    }
                    _ => Err(format!(
                        "GRIDD_CORS_ORIGINS: {o:?} is not an origin such as https://board.example.gov.cn (no path, no wildcard)"
                    )),
                }
            })
            .collect()
    }

    /// The server's clock: the wall clock, or a demo's accelerated one.
    pub fn clock(&self) -> Result<crate::clock::SharedClock, String> {
        let time = |name: &str, v: &str| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    format!("GRIDD_{name}: an RFC 3339 time such as 2026-12-03T06:00:00+08:00")
                })
        };
        let speed = self.demo_clock_speed;
        if !speed.is_finite() || !(1.0..=100_000.0).contains(&speed) {
            return Err("GRIDD_DEMO_CLOCK_SPEED: from 1 (the wall clock) to 100000".into());
        }
        let start = self.demo_clock_start.as_deref().filter(|s| !s.is_empty());
        if speed == 1.0 && start.is_none() {
            return Ok(std::sync::Arc::new(crate::clock::SystemClock));
        }
        // a worker-only process binds no listener: its database and Redis say where it runs
        if !self.listen.ip().is_loopback()
            || !loopback_url(&self.database_url)
            || !loopback_url(&self.redis_url)
        {
            return Err(format!(
                "GRIDD_DEMO_CLOCK_SPEED: a demo's clock runs only with gridd's listener, its \
                 database and its Redis all on this machine (loopback), not {}",
                self.listen
            ));
        }
        let now = chrono::Utc::now();
        let anchor = match self.demo_clock_anchor.as_deref().filter(|s| !s.is_empty()) {
            Some(a) => time("DEMO_CLOCK_ANCHOR", a)?,
            None => now,
        };
        let start = match start {
            Some(s) => time("DEMO_CLOCK_START", s)?,
            None => anchor,
        };
        Ok(std::sync::Arc::new(crate::clock::ScaledClock {
            start,
            anchor,
            speed,
        }))
    }

    /// The per-principal limits this configuration names.
    #[must_use]
    pub fn call_limits(&self) -> crate::limits::CallLimits {
        crate::limits::CallLimits {
            per_sec: self.rate_per_sec,
            burst: self.rate_burst,
            max_streams: self.max_streams,
        }
    }

    /// The background workers' settings this configuration names; the rest are defaults.
    #[must_use]
    pub fn workers(&self) -> crate::WorkerOptions {
        crate::WorkerOptions {
            router_min_idle: Duration::from_millis(self.router_min_idle_ms),
            max_deliveries: self.max_deliveries,
            reconcile_interval: Duration::from_millis(self.reconcile_interval_ms),
            route_at_report: self.route_at_report,
            locate_reach_m: self.locate_reach_m.max(0.0),
            ..crate::WorkerOptions::default()
        }
    }
}

/// Whether a `scheme://[user@]host[:port]/…` URL names this machine.
fn loopback_url(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod check_tests;
