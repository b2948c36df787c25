//! Services the fault suite owns and may break: a PostgreSQL cluster and a Redis server of its
//! own on free ports (so killing them never touches the machine's shared services or other
//! tests), and `gridd` as real operating-system processes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local address").port()
}

/// A scratch directory that goes away with its owner.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("gd-{what}-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // a failed test keeps its logs for a look
        if std::thread::panicking() || std::env::var_os("GD_KEEP_LOGS").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn pg_bindir() -> PathBuf {
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return dir;
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        if let Some(bin) = versions
            .into_iter()
            .rev()
            .find(|b| b.join("pg_ctl").exists())
        {
            return bin;
        }
    }
    PathBuf::from("/usr/bin")
}

/// A PostgreSQL cluster of the test's own: `initdb` into a scratch directory, trust
/// authentication on 127.0.0.1 only. PostgreSQL refuses to run as root, so as root it runs as
/// the `postgres` system user.
pub struct PrivatePg {
    pub port: u16,
    dir: Scratch,
    bindir: PathBuf,
    as_postgres: bool,
}

impl PrivatePg {
    pub async fn start() -> PrivatePg {
        let dir = Scratch::new("pg");
        let as_postgres = is_root();
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the cluster directory to postgres");
        }
        let pg = PrivatePg {
            port: free_port(),
            dir,
            bindir: pg_bindir(),
            as_postgres,
        };
        let data = pg.data();
        let status = pg
            .command("initdb")
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("running initdb");
        assert!(status.success(), "initdb failed");
        pg.start_again().await;
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Starts the cluster (after [`PrivatePg::stop_immediate`]) and waits until it answers.
    pub async fn start_again(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=400 -c shared_buffers=128MB",
            self.port,
            self.dir.0.display()
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.0.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("running pg_ctl start");
        assert!(status.success(), "pg_ctl start failed: {}", self.log_tail());
    }

    /// `pg_ctl -m immediate stop`: every backend killed, no checkpoint; the next start
    /// recovers from the WAL as after a crash.
    pub async fn stop_immediate(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("running pg_ctl stop");
        assert!(status.success(), "pg_ctl stop failed");
    }

    /// A URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.0.join("postgres.log")).unwrap_or_default();
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let exe = self.bindir.join("pg_ctl");
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        let _ = c
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis server of the test's own, keeping nothing on disk (as the machine's does).
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: Scratch,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            port: free_port(),
            child: None,
            dir: Scratch::new("redis"),
        };
        r.start_again().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts an empty server on the same port and waits until it answers.
    pub async fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (deploy/local-services.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ping = async {
                let c = redis::Client::open(self.url()).ok()?;
                let mut c = c.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            };
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(2), ping).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// SIGKILL: every stream and consumer group is gone.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// What a test says when `gridd` cannot be started.
pub const GRIDD_MISSING: &str = "target/debug/gridd: ./scripts/test builds it first \
    (cargo build --workspace --bins; cargo test alone does not build another package's binaries)";

/// The `gridd` binary the test command builds next to the tests.
pub fn gridd_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        Into::into,
    );
    target.join("debug/gridd")
}

/// How a gridd process is started.
#[derive(Clone)]
pub struct GriddSpec {
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    /// `--roles`; empty: every role.
    pub roles: Vec<&'static str>,
    pub db_max_connections: u32,
    /// `FAILPOINTS` (see `server::failpoint`).
    pub failpoints: Option<String>,
    /// `GRIDD_ROUTE_AT_REPORT`: route new cases in their report's transaction (with the
    /// router role), or send them all through the intake stream.
    pub route_at_report: bool,
}

/// One gridd process, restartable on the same port.
pub struct Gridd {
    pub spec: GriddSpec,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    pub starts: u32,
}

impl Gridd {
    pub async fn start(spec: GriddSpec, logs: &Path) -> Gridd {
        let port = free_port();
        let mut g = Gridd {
            spec,
            port,
            child: None,
            log: logs.join(format!("gridd-{port}.log")),
            starts: 0,
        };
        g.start_again().await;
        g
    }

    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the process (again) and waits until it serves gRPC health.
    pub async fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the gridd log");
        let mut cmd = Command::new(gridd_binary());
        cmd.arg("serve");
        if !self.spec.roles.is_empty() {
            cmd.arg("--roles").arg(self.spec.roles.join(","));
        }
        cmd.env("GRIDD_DATABASE_URL", &self.spec.database_url)
            .env("GRIDD_REDIS_URL", &self.spec.redis_url)
            .env("GRIDD_REDIS_PREFIX", &self.spec.prefix)
            .env("GRIDD_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "GRIDD_JWT_SECRET",
                std::str::from_utf8(crate::SECRET).unwrap(),
            )
            .env(
                "GRIDD_DB_MAX_CONNECTIONS",
                self.spec.db_max_connections.to_string(),
            )
            .env("GRIDD_ROUTER_MIN_IDLE_MS", "2000")
            .env("GRIDD_RECONCILE_INTERVAL_MS", "500")
            // production's delivery limit (config.rs): a scenario that needs more to stay
            // clean has found a router that loses or repeats work
            .env_remove("GRIDD_MAX_DELIVERIES")
            .env("GRIDD_SHUTDOWN_GRACE_SECS", "2")
            // the load generator's few principals stand for many phones and consoles
            .env("GRIDD_RATE_PER_SEC", "0")
            .env("GRIDD_MAX_STREAMS", "0")
            .env(
                "GRIDD_ROUTE_AT_REPORT",
                if self.spec.route_at_report {
                    "true"
                } else {
                    "false"
                },
            )
            .env("RUST_LOG", "warn")
            .env_remove("FAILPOINTS")
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .kill_on_drop(true);
        if let Some(f) = &self.spec.failpoints {
            cmd.env("FAILPOINTS", f);
        }
        self.child = Some(cmd.spawn().expect(GRIDD_MISSING));
        self.starts += 1;
        self.wait_serving(Duration::from_secs(30)).await;
    }

    /// Waits until gridd answers gRPC health with SERVING.
    pub async fn wait_serving(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let endpoint = tonic::transport::Endpoint::from_shared(self.addr())
            .unwrap()
            .connect_timeout(Duration::from_millis(500));
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("gridd exited at start ({status}): {}", self.log_tail());
            }
            if let Ok(ch) = endpoint.connect().await {
                let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
                let check = h.check(tonic_health::pb::HealthCheckRequest::default());
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), check).await {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gridd did not serve within {limit:?}: {}", self.log_tail());
    }

    /// `kill -9`.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Whether the process has exited by itself (a crash point fired); reaps it.
    pub fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(c) => match c.try_wait() {
                Ok(Some(_)) => {
                    self.child = None;
                    true
                }
                _ => false,
            },
            None => true,
        }
    }

    /// Open file descriptors of the process (Linux), for leak checks.
    pub fn open_fds(&self) -> Option<usize> {
        let pid = self.pid()?;
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(Iterator::count)
    }

    /// Everything the process (and its earlier runs) logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the process's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}
