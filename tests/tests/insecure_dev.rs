//! Running without tokens: refused off loopback, and announced at every start.

use std::process::Command;

use griddispatch_tests::cluster::{GRIDD_MISSING, gridd_binary};

fn gridd(listen: &str) -> std::process::Output {
    let bin = gridd_binary();
    assert!(bin.exists(), "{GRIDD_MISSING}");
    Command::new(bin)
        .arg("serve")
        .env_clear()
        .env("GRIDD_INSECURE_DEV", "1")
        .env("GRIDD_LISTEN", listen)
        .env("GRIDD_LOG_FORMAT", "text")
        // nothing answers here: a gridd that gets past its checks stops at the database
        .env(
            "GRIDD_DATABASE_URL",
            "postgres://postgres:postgres@127.0.0.1:1/none",
        )
        .env("GRIDD_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .expect("gridd runs")
}

#[test]
fn insecure_dev_is_refused_off_loopback_and_announced_on_it() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.10:50051"] {
        let out = gridd(listen);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{listen}: gridd started");
        assert!(err.contains("loopback"), "{listen}: {err}");
    }
    let out = gridd("127.0.0.1:0");
    assert!(!out.status.success(), "no database: gridd stops");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("WITHOUT authentication"), "{log}");
}
