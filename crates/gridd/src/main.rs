//! `gridd`: the GridDispatch daemon.
//!
//! `gridd serve` migrates (unless `--no-migrate`) and runs every role; `gridd migrate` only
//! migrates. Configuration: `--config FILE`, then `GRIDD_*` environment variables.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use server::Config;
use server::auth::Verifier;
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(name = "gridd", version, about = "GridDispatch daemon")]
struct Cli {
    /// TOML configuration file; GRIDD_* environment variables override it.
    #[arg(long, global = true, env = "GRIDD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (api and workers).
    Serve {
        /// Do not run database migrations at start.
        #[arg(long)]
        no_migrate: bool,
        /// Run without authentication (development only; same as GRIDD_INSECURE_DEV=1).
        #[arg(long)]
        insecure_dev: bool,
        /// Roles to run in this process, comma-separated (api, relay, router, timers,
        /// reconciler). Default: all.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Create the database if needed and apply migrations, then exit.
    Migrate,
    /// Check every setting (and read the files they name) without starting: prints what would
    /// run, or names the bad setting and exits non-zero.
    CheckConfig,
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Crash points for the fault suite, named in FAILPOINTS; absent from builds without the
    // `failpoints` feature of gd-server.
    let _failpoints = server::failpoint::setup();
    let mut cfg = Config::load(cli.config.as_deref()).context("loading configuration")?;
    if let Command::Serve { insecure_dev, .. } = &cli.command {
        cfg.insecure_dev |= *insecure_dev;
    }
    if matches!(cli.command, Command::CheckConfig) {
        return check_config(&cfg);
    }
    cfg.check()
        .map_err(anyhow::Error::msg)
        .context("bad configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let _telemetry = server::telemetry::init(&cfg.log_format, cfg.otlp_endpoint.as_deref())
            .context("setting up telemetry")?;
        server::failpoint::announce();
        match cli.command {
            Command::Migrate => migrate(&cfg).await.map(|_| ()),
            Command::CheckConfig => Ok(()),
            Command::Serve {
                no_migrate, roles, ..
            } => {
                let roles = server::RoleSet::parse(&roles).map_err(anyhow::Error::msg)?;
                serve(cfg, no_migrate, roles).await
            }
        }
    })
}

/// `gridd check-config`: the settings' own rules, then the files they name, read by the same
/// loaders `serve` uses. Nothing is contacted (no database, no Redis).
fn check_config(cfg: &Config) -> anyhow::Result<()> {
    cfg.check().map_err(anyhow::Error::msg)?;
    let tokens = match verifier(cfg)? {
        Verifier::InsecureDev => "NONE (GRIDD_INSECURE_DEV: every caller is an admin)".to_owned(),
        _ if cfg.jwt_jwks_file.is_some() => "a JWKS file".to_owned(),
        _ if cfg.jwt_public_key_file.is_some() => "a public key file".to_owned(),
        _ => "an HS256 secret (development)".to_owned(),
    };
    let tls = match cfg.tls_options().map_err(anyhow::Error::msg)? {
        Some(o) => {
            let mtls = o.client_ca_file.is_some();
            server::tls::Tls::load(o)
                .map_err(anyhow::Error::msg)
                .context("GRIDD_TLS_CERT_FILE / GRIDD_TLS_KEY_FILE")?;
            if mtls {
                "on, with client certificates"
            } else {
                "on"
            }
        }
        None => "off (plain HTTP/2)",
    };
    let contacts = cfg.contact_policy().map_err(anyhow::Error::msg)?;
    println!("configuration OK");
    println!("  listen     {}", cfg.listen);
    println!("  tokens     {tokens}");
    println!("  TLS        {tls}");
    println!(
        "  contacts   {}",
        contacts.keys.as_ref().map_or_else(
            || "not kept (no key file)".to_owned(),
            |k| format!("sealed under key {}", k.current())
        )
    );
    println!(
        "  limits     {} calls/s per caller (burst {}), {} streams",
        cfg.rate_per_sec, cfg.rate_burst, cfg.max_streams
    );
    Ok(())
}

async fn migrate(cfg: &Config) -> anyhow::Result<store::Store> {
    if store::Store::create_database_if_missing(&cfg.database_url)
        .await
        .context("reaching PostgreSQL")?
    {
        info!("database created");
    }
    let store = store::Store::connect(&cfg.database_url, cfg.db_max_connections)
        .await
        .context("connecting to PostgreSQL")?;
    store.migrate().await.context("applying migrations")?;
    info!("migrations applied");
    Ok(store)
}

fn verifier(cfg: &Config) -> anyhow::Result<Verifier> {
    use server::auth::keys::KeySource;
    if cfg.insecure_dev {
        // without tokens every caller is an admin: only ever on a loopback listener
        if !cfg.listen.ip().is_loopback() {
            bail!(
                "GRIDD_INSECURE_DEV refuses a listener that is not on loopback ({}): \
                 configure tokens (GRIDD_JWT_*) to listen on {}",
                cfg.listen,
                cfg.listen.ip()
            );
        }
        warn!(
            listen = %cfg.listen,
            "running WITHOUT authentication (GRIDD_INSECURE_DEV): every caller is an admin; \
             development only"
        );
        return Ok(Verifier::InsecureDev);
    }
    let source = if let Some(path) = &cfg.jwt_jwks_file {
        KeySource::JwksFile(path.clone())
    } else if let Some(path) = &cfg.jwt_public_key_file {
        KeySource::PemFile(path.clone())
    } else {
        match &cfg.jwt_secret {
            Some(s) if !s.is_empty() => KeySource::Secret(s.as_bytes().to_vec()),
            _ => bail!(
                "no authentication configured: set GRIDD_JWT_JWKS_FILE, GRIDD_JWT_PUBLIC_KEY_FILE \
                 or GRIDD_JWT_SECRET, or GRIDD_INSECURE_DEV=1 for development on loopback"
            ),
        }
    };
    Verifier::from_source(source, cfg.jwt_issuer.clone(), cfg.jwt_audience.clone())
        .map_err(anyhow::Error::msg)
        .context("loading the token keys")
}

async fn serve(cfg: Config, no_migrate: bool, roles: server::RoleSet) -> anyhow::Result<()> {
    info!(config = ?cfg, "starting gridd");
    let verifier = verifier(&cfg)?;
    let verifier_for_reload = verifier.clone();
    let tls = cfg
        .tls_options()
        .map_err(anyhow::Error::msg)?
        .map(|o| server::tls::Tls::load(o).map_err(anyhow::Error::msg))
        .transpose()
        .context("loading the TLS certificate")?;
    let contacts = cfg.contact_policy().map_err(anyhow::Error::msg)?;
    let media = cfg.media_store().map_err(anyhow::Error::msg)?;
    match &contacts.keys {
        Some(k) => info!(current = k.current(), "reporters' contacts sealed"),
        None => {
            warn!("no GRIDD_CONTACT_KEYS_FILE: reports carrying a reporter's contact are refused")
        }
    }
    if tls.is_none() && !cfg.listen.ip().is_loopback() {
        warn!(listen = %cfg.listen, "listening WITHOUT TLS off loopback: put a TLS-terminating proxy in front, or set GRIDD_TLS_CERT_FILE and GRIDD_TLS_KEY_FILE");
    }
    if !no_migrate {
        // as the owner; the pool is closed before serving starts
        migrate(&cfg).await?.pool().close().await;
    }
    // serving acts as the restricted role: it may only append to the audit trail
    let role = (!cfg.database_role.is_empty()).then_some(cfg.database_role.as_str());
    let store = store::Store::connect_as(&cfg.database_url, cfg.db_max_connections, role)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL as role {}",
                role.unwrap_or("of the login")
            )
        })?;
    info!(
        role = role.unwrap_or("(the login's)"),
        "serving as database role"
    );
    let queue = queue::Queue::connect(&cfg.redis_url, &cfg.redis_prefix)
        .await
        .context("connecting to Redis")?;
    let wants_api = matches!(
        roles,
        server::RoleSet::All | server::RoleSet::Some { api: true, .. }
    );
    let listener = if wants_api {
        Some(
            tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("binding {}", cfg.listen))?,
        )
    } else {
        None
    };
    let metrics = match cfg.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics listener {a}"))?,
        ),
        None => None,
    };
    let running = server::start(server::ServerOptions {
        store,
        queue,
        clock: cfg.clock().map_err(anyhow::Error::msg)?,
        verifier,
        listener,
        max_sync_batch: cfg.max_sync_batch,
        roles,
        workers: cfg.workers(),
        call_limits: cfg.call_limits(),
        max_message_bytes: cfg.max_message_bytes,
        tls,
        contacts,
        media,
        metrics,
        cors_origins: cfg.cors_origin_list().map_err(anyhow::Error::msg)?,
        notifier: server::notify::NotifierOptions::from_config(&cfg).map_err(anyhow::Error::msg)?,
    })
    .await
    .context("starting the server")?;
    let token = running.shutdown_token();
    let token_for_grace = running.shutdown_token();
    // key files are read again when they change: keys rotate without a restart
    verifier_for_reload.spawn_reloading(
        std::time::Duration::from_secs(cfg.jwt_reload_secs.max(1)),
        running.shutdown_token(),
    );
    let grace = cfg.shutdown_grace();
    // First signal: stop accepting and drain in-flight calls. Second signal: exit now.
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("signal received: draining (a second signal exits at once)");
        token.cancel();
        wait_for_signal().await;
        error!("second signal: exiting without draining");
        std::process::exit(130);
    });
    let drained = async {
        token_for_grace.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = running.wait() => r.context("server failed")?,
        () = drained => warn!(?grace, "grace period over: exiting with calls still in flight"),
    }
    info!("gridd stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
