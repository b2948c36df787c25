//! Media in an S3-compatible store: the same upload, report and download against a real
//! S3-compatible server (moto's server mode, which `./scripts/test` installs from PyPI when it
//! is missing), the bytes landing in the bucket under their hash.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use griddispatch_tests::*;
use server::auth::Role;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A moto server on a port of its own, stopped when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server runs: ./scripts/test installs it (pip install 'moto[server]')");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let m = Moto { child, addr };
    let until = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            Instant::now() < until,
            "moto_server did not answer within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m
}

/// One plain HTTP/1.1 request to the S3 server (moto takes unsigned requests).
async fn s3_http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    (status, text)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn photos_go_to_an_s3_compatible_bucket_and_come_back(pool: PgPool) {
    let m = moto().await;
    let bucket = format!("gd-media-{}", uuid::Uuid::now_v7().simple());
    let (status, body) = s3_http(m.addr, "PUT", &format!("/{bucket}")).await;
    assert_eq!(status, 200, "creating the bucket: {body}");
    let endpoint = format!("http://{}", m.addr);
    let store = server::media::MediaStore::s3(
        &bucket,
        Some(&endpoint),
        "us-east-1",
        Some(("test-key", "test-secret")),
        1024 * 1024,
    )
    .unwrap();
    let s = TestServer::start_with_media(pool, store).await;

    let photo = jpeg(77, 300 * 1024);
    let a = s
        .upload(TestServer::bearer(Role::GridWorker, GRID), &photo)
        .await
        .unwrap();
    // in the bucket, under its hash
    let (status, listing) = s3_http(m.addr, "GET", &format!("/{bucket}?list-type=2")).await;
    assert_eq!(status, 200, "{listing}");
    let key = format!("media/{}/{}", &a.content_hash[..2], a.content_hash);
    assert!(listing.contains(&key), "{key} not in {listing}");
    assert!(!s.media_dir.exists(), "nothing went to a local folder");

    let mut r = report(GRID, "0501", "照片存于对象存储");
    r.attachments = vec![a.clone()];
    let case = s
        .worker(GRID)
        .report_event(r)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let (media_type, size, back) = s
        .download(TestServer::staff(COMMUNITY), &case.case_id, &a.content_hash)
        .await
        .unwrap();
    assert_eq!(
        (media_type.as_str(), size),
        ("image/jpeg", photo.len() as u64)
    );
    assert_eq!(back, photo);
    s.stop().await;
}
