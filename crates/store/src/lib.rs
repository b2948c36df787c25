//! PostgreSQL, the system of record: migrations, the registry, cases and their event log,
//! assignments, deadlines, the outbox, idempotency keys and the audit trail.
//!
//! Row types stay private to this crate; callers get domain types. Postgres error codes are
//! mapped to [`StoreError`] here, where the database is called.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

mod audit;
mod batch;
mod cases;
mod console;
mod contacts;
mod deadlines;
mod feed;
mod gauges;
mod history;
mod media;
mod notices;
mod open311;
mod outbox;
mod pending;
mod registry;
mod repeats;
mod roster;
mod rows;
mod scope;
mod stats;
mod writer;

pub use audit::AuditEntry;
pub use batch::{BatchItem, Planner, RepeatLink, Route, Routed};
pub use cases::{Actor, ReportOutcome};
pub use console::{CaseFilter, PageKey};
pub use contacts::{SealedContact, StoredContact};
pub use deadlines::{Arm, Claim, DueDeadline};
pub use feed::{FeedEvent, FeedRegion};
pub use gauges::{Gauges, QueueGauge};
pub use history::History;
pub use media::MediaInfo;
pub use notices::{NewNotice, Notice};
pub use open311::{Open311Client, key_hash as open311_key_hash};
pub use outbox::OutboxRow;
pub use pending::{Assignment, PendingAnywhere, PendingItem, Unrouted};
pub use registry::{GridBoundaries, UnitFilter};
pub use stats::{StatsCase, StatsScope};
pub use writer::{Append, CaseTx};

/// Errors of the store, in the terms callers act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    /// The idempotency key was used before for a different report.
    #[error("idempotency key already used for a different report")]
    KeyReused,
    /// Something the request names is missing or inconsistent in the database.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A stored value could not be read back (a bug or a hand-edited row).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Too much work queued for the database already; retry later.
    #[error("too many writes queued")]
    Busy,
    #[error("database error")]
    Db(#[source] sqlx::Error),
    /// The group-committed batch this request was part of failed.
    #[error("{0}")]
    Batch(std::sync::Arc<StoreError>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            // the connection or the server went away mid-conversation
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            // 08: connection exception; 53: insufficient resources (too many connections);
            // 57P0x: the server shutting down, crashed or starting up; 57014: the statement
            // timed out; 40001 and 40P01: a serialization failure or deadlock, which a retry
            // of the whole transaction resolves
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P0")
                        || matches!(&*c, "57014" | "40001" | "40P01")
                }) =>
            {
                StoreError::Unavailable(e)
            }
            _ => StoreError::Db(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The migrations shipped in `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A connection idle longer than this is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool settings shared by every pool of the store. A connection in steady use is handed out
/// without a ping (a round trip per transaction otherwise); one that sat idle is pinged first,
/// so that after a quiet spell — a database restart, a dropped connection — the first caller
/// gets a fresh connection rather than an error. Under load a restart still fails each pooled
/// connection once, as `UNAVAILABLE`, which callers retry.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Counties whose case sequence this process knows exists.
    known_seqs: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Store {
    /// Connects with a bounded pool. Statements that take longer than `statement_timeout`
    /// are cancelled by the server, so a stuck query never holds a request forever.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        Store::connect_as(url, max_connections, None).await
    }

    /// [`Store::connect`], each connection acting as `role` (`SET ROLE` at its start): gridd
    /// serves as `gridd_app`, which may only append to the audit trail and owns no table.
    pub async fn connect_as(url: &str, max_connections: u32, role: Option<&str>) -> Result<Store> {
        let opts = url.parse::<PgConnectOptions>()?;
        let pool = pool_options(max_connections)
            .connect_with(Store::session_options(opts, role)?)
            .await?;
        Ok(Store::from_pool(pool))
    }

    /// The session settings every connection of the store starts with: a statement timeout,
    /// and the role it acts as.
    pub fn session_options(opts: PgConnectOptions, role: Option<&str>) -> Result<PgConnectOptions> {
        let opts = opts.options([("statement_timeout", "30s")]);
        match role.filter(|r| !r.is_empty()) {
            None => Ok(opts),
            Some(r) => {
                if !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(StoreError::Invalid {
                        field: "database_role".into(),
                        reason: format!("{r:?}: letters, digits and underscores only"),
                    });
                }
                Ok(opts.options([("role", r)]))
            }
        }
    }

    #[must_use]
    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            known_seqs: std::sync::Arc::default(),
        }
    }

    /// A second handle to the same database with its own pool of `max_connections`: for
    /// lookups made while a transaction holds a connection, so they never wait on a pool that
    /// those transactions have drained.
    #[must_use]
    pub fn fork(&self, max_connections: u32) -> Store {
        let opts = (*self.pool.connect_options()).clone();
        let pool = pool_options(max_connections).connect_lazy_with(opts);
        Store::from_pool(pool)
    }

    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the database named in `url` when it does not exist; answers whether it did.
    pub async fn create_database_if_missing(url: &str) -> Result<bool> {
        use sqlx::migrate::MigrateDatabase as _;
        if sqlx::Postgres::database_exists(url).await? {
            return Ok(false);
        }
        sqlx::Postgres::create_database(url).await?;
        Ok(true)
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Db(e.into()))
    }

    /// Cheap liveness probe for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
