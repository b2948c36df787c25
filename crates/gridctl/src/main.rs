//! `gridctl`: the GridDispatch command line — seed the registry, mint development tokens,
//! report events, list units, and run the demo pipeline.

mod audit;
mod bench;
mod console;
mod console_bench;
mod day;
mod deadletters;
mod demo;
mod grids;
mod intake_bench;
mod open311key;
mod roster;
mod stats;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use proto::convert;
use proto::v1;
use server::auth::{Role, mint_hs256};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(
    name = "gridctl",
    version,
    about = "GridDispatch command line",
    args_override_self = true
)]
struct Cli {
    /// gridd's address.
    #[arg(
        long,
        global = true,
        env = "GRIDD_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// Bearer token. Without one, commands that need one mint it from GRIDD_JWT_SECRET when
    /// that is set, or send none (for a server in insecure dev mode).
    #[arg(long, global = true, env = "GRIDD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a development token signed with GRIDD_JWT_SECRET.
    Token {
        #[arg(long)]
        role: String,
        /// The unit the principal acts for (empty for an installation-wide admin or platform).
        #[arg(long, default_value = "")]
        unit: String,
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 12 * 3600)]
        ttl: u64,
    },
    /// Load a registry seed file (default: the sample county in deploy/sample/).
    Seed { file: Option<PathBuf> },
    /// List units of the registry.
    Units {
        #[arg(long, default_value = "")]
        parent: String,
    },
    /// Residents' reports placed by their point: gRPC ReportEvent beside Open311 POST
    /// requests, closed loop (see scripts/bench).
    BenchIntake(intake_bench::IntakeBenchArgs),
    /// The Open311 facade's client keys: issue, revoke, list (reads gridd's database).
    #[command(name = "open311-key")]
    Open311Key(open311key::Open311KeyArgs),
    /// Grids: where a point falls, and the benchmark of point location.
    Grids {
        #[command(subcommand)]
        cmd: grids::GridsCommand,
    },
    /// Report one event from a grid.
    Report {
        #[arg(long)]
        grid: String,
        #[arg(long)]
        category: String,
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value_t = 28.68)]
        lat: f64,
        #[arg(long, default_value_t = 115.89)]
        lon: f64,
        /// Client-made idempotency key; a fresh one by default.
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        self_handled: bool,
        /// A photo, video or voice note to upload and attach (repeat for more).
        #[arg(long = "photo")]
        photos: Vec<PathBuf>,
    },
    /// Load the whole pipeline and print throughput, latencies and this machine's baselines.
    Bench(bench::BenchArgs),
    /// Time the console pages, a county-month of indicators and the platform's catch-up over
    /// a year of history loaded into gridd's database (see scripts/bench-console).
    BenchConsole(console_bench::ConsoleBenchArgs),
    /// List the router's dead letters of a county, or re-drive them.
    DeadLetters(deadletters::DeadLetterArgs),
    /// A case's audit trail (or another object's): who did what, when, as which unit.
    Audit(audit::AuditArgs),
    /// List cases as a console sees them (ListCases): filters as flags, a table or --json.
    Cases(console::CasesArgs),
    /// The GB/T 30428 indicators of a region and period (GetStats): counts and rates over
    /// cases, per tier and per unit.
    Stats(stats::StatsArgs),
    /// Follow every change in a region live (WatchCases); prints the cursor to resume with.
    WatchCases(console::WatchArgs),
    /// The provincial platform's feed (StreamEvents) as JSON lines on stdout; the cursor to
    /// resume with goes to stderr when it stops.
    Export(console::ExportArgs),
    /// Print a new line for GRIDD_CONTACT_KEYS_FILE: a fresh random key that seals reporters'
    /// contacts. To rotate, put the new line first and keep the old ones below it until
    /// gridd's sweep has resealed every contact (see docs/security.md).
    ContactKey {
        /// The key's id, kept beside each contact it seals.
        #[arg(long)]
        id: String,
    },
    /// Wait until gridd answers its health check (up to --wait seconds).
    Health {
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// The demo pipeline: seed the sample county and report a handful of events through the
    /// real API, printing what happened.
    Demo,
    /// A working day of the sample county through the real API, against a gridd on a demo
    /// clock (GRIDD_DEMO_CLOCK_*): reports, acceptances, calls up, escalations, joint
    /// handling, checks and ratings, live; the day's indicators at the end.
    Day(day::DayArgs),
    /// A unit's duty roster for a week: who is on duty on each shift (365天服務不打烊).
    Roster(roster::RosterArgs),
}

pub(crate) type Intercepted = InterceptedService<Channel, Auth>;

/// Adds the bearer token to every call.
#[derive(Clone)]
pub(crate) struct Auth(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub(crate) struct Conn {
    channel: Channel,
    token: Option<String>,
}

impl Conn {
    /// Another connection to the same server with the same credentials: a console per
    /// connection, as real consoles have (one HTTP/2 connection carries a bounded number of
    /// concurrent streams).
    pub(crate) async fn another(&self, server: &str) -> anyhow::Result<Conn> {
        Conn::open(server, self.token.clone()).await
    }

    async fn open(server: &str, token: Option<String>) -> anyhow::Result<Conn> {
        let channel = endpoint(server)?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("connecting to gridd at {server}"))?;
        Ok(Conn { channel, token })
    }

    /// A token for `role` at `unit`: the one given, or one minted from GRIDD_JWT_SECRET.
    pub(crate) fn auth_as(&self, role: Role, unit: &str, sub: &str) -> anyhow::Result<Auth> {
        let token = match &self.token {
            Some(t) => Some(t.clone()),
            None => match std::env::var("GRIDD_JWT_SECRET") {
                Ok(s) if !s.is_empty() => Some(mint_hs256(s.as_bytes(), sub, role, unit, 3600)?),
                _ => None,
            },
        };
        Ok(Auth(
            token
                .map(|t| format!("Bearer {t}").parse())
                .transpose()
                .context("token is not valid header text")?,
        ))
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(crate) fn routing(
        &self,
        auth: Auth,
    ) -> v1::routing_service_client::RoutingServiceClient<Intercepted> {
        v1::routing_service_client::RoutingServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }

    pub(crate) fn escalation(
        &self,
        auth: Auth,
    ) -> v1::escalation_service_client::EscalationServiceClient<Intercepted> {
        v1::escalation_service_client::EscalationServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }

    pub(crate) fn handling(
        &self,
        auth: Auth,
    ) -> v1::handling_service_client::HandlingServiceClient<Intercepted> {
        v1::handling_service_client::HandlingServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }

    pub(crate) fn console(
        &self,
        auth: Auth,
    ) -> v1::console_service_client::ConsoleServiceClient<Intercepted> {
        v1::console_service_client::ConsoleServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }

    pub(crate) fn reporting(
        &self,
        auth: Auth,
    ) -> v1::reporting_service_client::ReportingServiceClient<Intercepted> {
        v1::reporting_service_client::ReportingServiceClient::with_interceptor(
            self.channel.clone(),
            auth,
        )
    }
}

/// The endpoint of `server`; an `https://` address speaks TLS, trusting the CA in
/// `GRIDD_TLS_CA_FILE` and presenting `GRIDD_TLS_CLIENT_CERT_FILE`/`GRIDD_TLS_CLIENT_KEY_FILE`
/// when they are set (the platform's feed needs a client certificate). `GRIDD_TLS_DOMAIN`
/// names the server when its certificate is for another name than the address.
fn endpoint(server: &str) -> anyhow::Result<Endpoint> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let ep = Endpoint::from_shared(server.to_owned()).context("parsing --server")?;
    if !server.starts_with("https://") {
        return Ok(ep);
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = var("GRIDD_TLS_CA_FILE") {
        let pem = std::fs::read(&ca).with_context(|| format!("reading {ca}"))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let (Some(cert), Some(key)) = (
        var("GRIDD_TLS_CLIENT_CERT_FILE"),
        var("GRIDD_TLS_CLIENT_KEY_FILE"),
    ) {
        let cert = std::fs::read(&cert).with_context(|| format!("reading {cert}"))?;
        let key = std::fs::read(&key).with_context(|| format!("reading {key}"))?;
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    if let Some(name) = var("GRIDD_TLS_DOMAIN") {
        tls = tls.domain_name(name);
    }
    ep.tls_config(tls).context("configuring TLS")
}

async fn health(server: &str) -> anyhow::Result<String> {
    let channel = endpoint(server)?
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect()
        .await?;
    let r = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    Ok(r.status().as_str_name().to_owned())
}

/// Loads a seed through the API: units in file order (parents first), categories, policies.
pub(crate) async fn load_seed(conn: &Conn, text: &str) -> anyhow::Result<(u32, u32, usize)> {
    let seed = domain::seed::parse(text)?;
    let mut routing = conn.routing(conn.auth_as(Role::Admin, "", "seed")?);
    let mut changed = 0;
    for chunk in seed.units.chunks(1000) {
        changed += routing
            .upsert_units(v1::UpsertUnitsRequest {
                units: chunk.iter().map(convert::unit_to_wire).collect(),
            })
            .await
            .context("UpsertUnits")?
            .into_inner()
            .changed;
    }
    let mut cats = 0;
    if !seed.categories.is_empty() {
        cats = routing
            .upsert_categories(v1::UpsertCategoriesRequest {
                categories: seed
                    .categories
                    .iter()
                    .map(convert::category_to_wire)
                    .collect(),
            })
            .await
            .context("UpsertCategories")?
            .into_inner()
            .changed;
    }
    for p in &seed.policies {
        routing
            .put_policy(v1::PutPolicyRequest {
                policy: Some(convert::policy_to_wire(p, 0, chrono::Utc::now())),
            })
            .await
            .with_context(|| format!("PutPolicy for {}", p.county_code))?;
    }
    Ok((changed, cats, seed.policies.len()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gridctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Token {
            role,
            unit,
            sub,
            ttl,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role {role}: grid_worker, unit_staff, dispatcher, admin, platform")
            })?;
            let secret = std::env::var("GRIDD_JWT_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .context("GRIDD_JWT_SECRET is not set")?;
            if !unit.is_empty() {
                domain::region::UnitCode::parse(&unit)
                    .map_err(|e| anyhow::anyhow!("--unit: {e}"))?;
            }
            println!("{}", mint_hs256(secret.as_bytes(), &sub, role, &unit, ttl)?);
        }
        Command::Seed { file } => {
            let text = match &file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => domain::seed::SAMPLE.to_owned(),
            };
            let conn = Conn::open(&cli.server, cli.token).await?;
            let (units, cats, policies) = load_seed(&conn, &text).await?;
            println!(
                "seeded: {units} units changed, {cats} categories changed, {policies} policies stored"
            );
        }
        Command::Units { parent } => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            let mut routing = conn.routing(conn.auth_as(Role::Admin, "", "gridctl")?);
            let mut page_token = String::new();
            loop {
                let r = routing
                    .list_units(v1::ListUnitsRequest {
                        parent_code: parent.clone(),
                        kind: 0,
                        page_size: 500,
                        page_token,
                        region_code: String::new(),
                    })
                    .await?
                    .into_inner();
                for u in &r.units {
                    println!("{}\t{}\t{}", u.code, u.kind().as_str_name(), u.name);
                }
                if r.next_page_token.is_empty() {
                    break;
                }
                page_token = r.next_page_token;
            }
        }
        Command::Grids { cmd } => match cmd {
            grids::GridsCommand::Locate { lat, lon, crs } => {
                let conn = Conn::open(&cli.server, cli.token).await?;
                let mut routing = conn.routing(conn.auth_as(Role::Admin, "", "gridctl")?);
                let r = routing
                    .locate_point(v1::LocatePointRequest {
                        location: Some(v1::Location {
                            lat,
                            lon,
                            crs: v1::Crs::from(crs).into(),
                        }),
                    })
                    .await;
                match r {
                    Ok(r) => grids::print_located(&r.into_inner()),
                    Err(s) => bail!("{}", demo::describe(&s)),
                }
            }
            grids::GridsCommand::Bench(a) => grids::bench(&a)?,
        },
        Command::Report {
            grid,
            category,
            title,
            description,
            lat,
            lon,
            key,
            self_handled,
            photos,
        } => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            let mut attachments = Vec::new();
            for p in &photos {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                let chunks: Vec<v1::UploadRequest> = bytes
                    .chunks(256 * 1024)
                    .map(|c| v1::UploadRequest { chunk: c.to_vec() })
                    .collect();
                let up = v1::media_service_client::MediaServiceClient::with_interceptor(
                    conn.channel(),
                    conn.auth_as(Role::GridWorker, &grid, "gridctl")?,
                )
                .upload(tokio_stream::iter(chunks))
                .await
                .map_err(|s| anyhow::anyhow!("uploading {}: {}", p.display(), demo::describe(&s)))?
                .into_inner();
                let a = up.attachment.context("upload answered no attachment")?;
                eprintln!(
                    "uploaded {}: {} {} bytes sha256 {}",
                    p.display(),
                    a.media_type,
                    a.size,
                    a.content_hash
                );
                attachments.push(a);
            }
            let mut reporting = conn.reporting(conn.auth_as(Role::GridWorker, &grid, "gridctl")?);
            let mut req = demo::report_request(
                key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                &grid,
                &category,
                &title,
                &description,
                (lat, lon, v1::Crs::Wgs84),
                self_handled,
            );
            req.attachments = attachments;
            let resp = reporting.report_event(req).await;
            match resp {
                Ok(r) => {
                    let r = r.into_inner();
                    let c = r.case.context("reply without a case")?;
                    println!(
                        "{} {} status={} replayed={}",
                        c.case_number,
                        c.case_id,
                        c.status().as_str_name(),
                        r.replayed
                    );
                }
                Err(s) => bail!("{}", demo::describe(&s)),
            }
        }
        Command::Health { wait } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
            loop {
                match health(&cli.server).await {
                    Ok(status) => {
                        println!("gridd at {} is {status}", cli.server);
                        break;
                    }
                    Err(e) if std::time::Instant::now() >= deadline => {
                        bail!(
                            "gridd at {} did not answer within {wait} s: {e:#}",
                            cli.server
                        )
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
        Command::Bench(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            bench::run(&conn, &cli.server, args).await?;
        }
        Command::BenchIntake(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            intake_bench::run(&conn, &cli.server, args).await?;
        }
        Command::DeadLetters(args) => deadletters::run(args).await?,
        Command::Audit(args) => audit::run(args).await?,
        Command::Roster(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            roster::run(&conn, args).await?;
        }
        Command::Open311Key(args) => open311key::run(args).await?,
        Command::ContactKey { id } => {
            println!("{}", server::contacts::ContactKeys::new_line(&id));
        }
        Command::BenchConsole(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            console_bench::run(&conn, args).await?;
        }
        Command::Cases(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            console::cases(&conn, args).await?;
        }
        Command::Day(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            day::run(conn, args).await?;
        }
        Command::Stats(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            stats::run(&conn, args).await?;
        }
        Command::WatchCases(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            console::watch(&conn, args).await?;
        }
        Command::Export(args) => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            console::export(&conn, args).await?;
        }
        Command::Demo => {
            let conn = Conn::open(&cli.server, cli.token).await?;
            demo::run(&conn).await?;
        }
    }
    Ok(())
}
