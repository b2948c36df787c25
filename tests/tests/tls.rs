//! TLS on the listener: the four-stage case over TLS, the platform feed refused without a
//! client certificate, and a certificate replaced on disk taken up without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use server::tls::{Tls, TlsOptions};
use sqlx::PgPool;
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name.pem`, `name.key`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf (`name.pem`, `name.key`) signed by `ca`, for a server (`localhost`) or a client.
fn leaf(dir: &Path, name: &str, ca: &str, server: bool) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    let ext = if server {
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    } else {
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n"
    };
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap()
}

/// Server CA and certificate, client CA, a platform client certificate, and a stranger's.
fn pki() -> Dir {
    let dir = Dir(std::env::temp_dir().join(format!("gd-tls-{}", uuid::Uuid::now_v7())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.as_path();
    ca(d, "server-ca");
    leaf(d, "server", "server-ca", true);
    ca(d, "client-ca");
    leaf(d, "platform", "client-ca", false);
    ca(d, "stranger-ca");
    leaf(d, "stranger", "stranger-ca", false);
    ca(d, "next-ca");
    leaf(d, "next", "next-ca", true);
    dir
}

fn tls(dir: &Path) -> Arc<Tls> {
    Tls::load(TlsOptions {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: Some(dir.join("client-ca.pem")),
        client_cert_roles: vec![Role::Platform],
        reload_every: std::time::Duration::from_secs(3600),
    })
    .unwrap()
}

fn trusting(dir: &Path, ca: &str) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(dir, &format!("{ca}.pem"))))
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_four_stages_run_over_tls(pool: PgPool) {
    let dir = pki();
    let s = TestServer::start_tls(pool, tls(&dir.0), trusting(&dir.0, "server-ca")).await;
    // 網格發現 → 社區呼叫 (accepted here) → 協同處置 (the result) → checked and closed
    let id = awaiting_check(&s).await;
    let closed = s
        .worker(GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(closed.status(), v1::CaseStatus::Closed);
    // gridctl speaks TLS too
    let gridctl = griddispatch_tests::cluster::gridd_binary()
        .parent()
        .unwrap()
        .join("gridctl");
    // async: the server runs on this test's one thread
    let out = tokio::process::Command::new(gridctl)
        .args([
            "--server",
            &format!("https://127.0.0.1:{}", s.addr.port()),
            "report",
            "--grid",
            GRID,
            "--category",
            "0501",
            "--title",
            "经加密通道上报",
        ])
        .env("GRIDD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("GRIDD_TLS_CA_FILE", dir.0.join("server-ca.pem"))
        .env("GRIDD_TLS_DOMAIN", "localhost")
        .output()
        .await
        .expect("gridctl runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.count("cases").await, 2);
    // plain HTTP/2 to the TLS port gets nowhere
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(2))
        .connect()
        .await;
    if let Ok(ch) = plain {
        let r = v1::reporting_service_client::ReportingServiceClient::new(ch)
            .list_categories(v1::ListCategoriesRequest::default())
            .await;
        assert!(r.is_err(), "plain text answered");
    }
    // a client that trusts another CA does not connect
    assert!(
        TestServer::tls_channel(s.addr, trusting(&dir.0, "stranger-ca"))
            .await
            .is_err()
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_platform_feed_needs_a_client_certificate(pool: PgPool) {
    let dir = pki();
    let s = TestServer::start_tls(pool, tls(&dir.0), trusting(&dir.0, "server-ca")).await;
    s.routed_case(GRID, "0501").await;
    let feed = |ch: tonic::transport::Channel| async move {
        v1::export_service_client::ExportServiceClient::with_interceptor(
            ch,
            TestServer::bearer(Role::Platform, ""),
        )
        .stream_events(v1::StreamEventsRequest::default())
        .await
        .map(|r| r.into_inner())
    };
    // a platform token without a client certificate
    let err = feed(s.channel.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert!(err.message().contains("client certificate"), "{err}");
    // with the platform's certificate
    let with_cert = trusting(&dir.0, "server-ca").identity(Identity::from_pem(
        read(&dir.0, "platform.pem"),
        read(&dir.0, "platform.key"),
    ));
    let ch = TestServer::tls_channel(s.addr, with_cert).await.unwrap();
    let mut stream = feed(ch).await.unwrap();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.event_type, "reported");
    // a certificate from a CA the server does not know: refused in the handshake
    let stranger = trusting(&dir.0, "server-ca").identity(Identity::from_pem(
        read(&dir.0, "stranger.pem"),
        read(&dir.0, "stranger.key"),
    ));
    match TestServer::tls_channel(s.addr, stranger).await {
        Err(_) => {}
        Ok(ch) => assert!(
            feed(ch).await.is_err(),
            "a stranger's certificate was taken"
        ),
    }
    // other roles need none
    s.worker(GRID)
        .list_categories(v1::ListCategoriesRequest::default())
        .await
        .unwrap();
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart(pool: PgPool) {
    let dir = pki();
    let t = tls(&dir.0);
    let s = TestServer::start_tls(pool, t.clone(), trusting(&dir.0, "server-ca")).await;
    assert!(
        TestServer::tls_channel(s.addr, trusting(&dir.0, "next-ca"))
            .await
            .is_err()
    );
    std::fs::copy(dir.0.join("next.pem"), dir.0.join("server.pem")).unwrap();
    std::fs::copy(dir.0.join("next.key"), dir.0.join("server.key")).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    for f in ["server.pem", "server.key"] {
        std::fs::File::options()
            .write(true)
            .open(dir.0.join(f))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    assert!(t.reload_if_changed().unwrap());
    let ch = TestServer::tls_channel(s.addr, trusting(&dir.0, "next-ca"))
        .await
        .unwrap();
    v1::reporting_service_client::ReportingServiceClient::with_interceptor(
        ch,
        TestServer::bearer(Role::GridWorker, GRID),
    )
    .list_categories(v1::ListCategoriesRequest::default())
    .await
    .unwrap();
    s.stop().await;
}
