//! `gridctl bench-intake`: residents' reports placed by their point, filed closed-loop through
//! gRPC `ReportEvent` and through the Open311 facade's `POST requests`, side by side.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use proto::v1;
use server::auth::Role;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::Conn;
use crate::bench::Samples;

#[derive(Debug, clap::Args)]
pub struct IntakeBenchArgs {
    /// Seconds each path is driven for.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Callers at once on each path (each with its own connection for Open311).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// An Open311 key for the sample county (`gridctl open311-key issue`).
    #[arg(long, env = "GRIDD_OPEN311_KEY")]
    pub api_key: String,
    /// Exit non-zero when any call fails.
    #[arg(long)]
    pub fail_on_errors: bool,
}

/// Points inside the sample county (deploy/sample: 115.8984..115.9684 E, 28.6824..28.7424 N).
fn point(i: u64) -> (f64, f64) {
    let x = (i.wrapping_mul(0x9E37_79B9) % 10_000) as f64 / 10_000.0;
    let y = (i.wrapping_mul(0x85EB_CA6B) % 10_000) as f64 / 10_000.0;
    (28.6830 + 0.059 * y, 115.8990 + 0.069 * x)
}

struct Run {
    ok: u64,
    errors: u64,
    latency: Samples,
    elapsed: Duration,
}

impl Run {
    fn line(&mut self, name: &str) -> String {
        format!(
            "{name:<16} {:>8.0} requests/s ({} in {:.1} s, {} errors)\n{}",
            self.ok as f64 / self.elapsed.as_secs_f64(),
            self.ok,
            self.elapsed.as_secs_f64(),
            self.errors,
            self.latency.line("latency")
        )
    }
}

async fn grpc(conn: &Conn, server: &str, a: &IntakeBenchArgs) -> anyhow::Result<Run> {
    let until = Instant::now() + Duration::from_secs(a.duration);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let mut client = conn.another(server).await?.reporting(conn.auth_as(
            Role::Intake,
            "360102",
            "bench-intake",
        )?);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Samples::default());
            let mut i = w as u64 * 1_000_003;
            while Instant::now() < until {
                i += 1;
                let (lat_deg, lon_deg) = point(i);
                let req = v1::ReportEventRequest {
                    idempotency_key: uuid::Uuid::now_v7().to_string(),
                    category: "0501".into(),
                    title: "居民反映垃圾堆积".into(),
                    description: "小区门口".into(),
                    location: Some(v1::Location {
                        lat: lat_deg,
                        lon: lon_deg,
                        crs: v1::Crs::Wgs84.into(),
                    }),
                    occurred_at: Some(proto::convert::timestamp(chrono::Utc::now())),
                    source: v1::ReportSource::Resident.into(),
                    ..Default::default()
                };
                let t = Instant::now();
                match client.report_event(req).await {
                    Ok(_) => {
                        ok += 1;
                        lat.add(t.elapsed());
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, errors, lat)
        }));
    }
    collect(tasks, start).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(u64, u64, Samples)>>,
    start: Instant,
) -> anyhow::Result<Run> {
    let mut run = Run {
        ok: 0,
        errors: 0,
        latency: Samples::default(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (ok, errors, lat) = t.await?;
        run.ok += ok;
        run.errors += errors;
        run.latency.0.extend(lat.0);
    }
    run.elapsed = start.elapsed();
    Ok(run)
}

/// One keep-alive HTTP/1.1 connection: a form POST, then the status line, headers and a body
/// of the announced length.
async fn post(conn: &mut BufReader<TcpStream>, host: &str, body: &str) -> anyhow::Result<u16> {
    let head = format!(
        "POST /open311/v2/requests.json HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(head.as_bytes()).await?;
    conn.get_mut().write_all(body.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP status line: {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse()?;
        }
    }
    let mut sink = vec![0u8; length];
    conn.read_exact(&mut sink).await?;
    Ok(status)
}

async fn open311(addr: SocketAddr, a: &IntakeBenchArgs) -> anyhow::Result<Run> {
    let until = Instant::now() + Duration::from_secs(a.duration);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let mut conn = BufReader::new(TcpStream::connect(addr).await?);
        conn.get_ref().set_nodelay(true)?;
        let key = a.api_key.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Samples::default());
            let host = addr.to_string();
            let mut i = w as u64 * 1_000_003 + 500_000;
            while Instant::now() < until {
                i += 1;
                let (lat_deg, lon_deg) = point(i);
                let body = format!(
                    "api_key={key}&service_code=0501&lat={lat_deg}&long={lon_deg}&description=%E5%B0%8F%E5%8C%BA%E9%97%A8%E5%8F%A3"
                );
                let t = Instant::now();
                match post(&mut conn, &host, &body).await {
                    Ok(201) => {
                        ok += 1;
                        lat.add(t.elapsed());
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        // the connection is in an unknown state: start a new one
                        match TcpStream::connect(addr).await {
                            Ok(s) => conn = BufReader::new(s),
                            Err(_) => break,
                        }
                    }
                }
            }
            (ok, errors, lat)
        }));
    }
    collect(tasks, start).await
}

pub async fn run(conn: &Conn, server: &str, a: IntakeBenchArgs) -> anyhow::Result<()> {
    if a.concurrency == 0 || a.duration == 0 {
        bail!("--concurrency and --duration must be at least 1");
    }
    let authority = server
        .strip_prefix("http://")
        .context("bench-intake speaks plain HTTP/1.1: give an http:// server")?
        .trim_end_matches('/');
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .context("the server's address does not resolve")?;
    println!(
        "residents' reports placed by their point, closed loop, {} callers per path, {} s each",
        a.concurrency, a.duration
    );
    let mut g = grpc(conn, server, &a).await?;
    println!("{}", g.line("gRPC ReportEvent"));
    let mut o = open311(addr, &a).await?;
    println!("{}", o.line("Open311 POST"));
    println!(
        "Open311 / gRPC throughput: {:.2}",
        (o.ok as f64 / o.elapsed.as_secs_f64()) / (g.ok as f64 / g.elapsed.as_secs_f64()).max(1e-9)
    );
    if a.fail_on_errors && (g.errors > 0 || o.errors > 0 || g.ok == 0 || o.ok == 0) {
        bail!(
            "calls failed: gRPC {} errors, Open311 {} errors",
            g.errors,
            o.errors
        );
    }
    Ok(())
}
