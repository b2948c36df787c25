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

/// `gridd check-config` and `gridd serve` name a bad setting the same way, and neither starts.
#[test]
fn a_bad_setting_is_named_by_check_config_and_refused_by_serve() {
    let bin = gridd_binary();
    assert!(bin.exists(), "{GRIDD_MISSING}");
    let run = |cmd: &str, name: &str, value: &str| {
        Command::new(&bin)
            .arg(cmd)
            .env_clear()
            .env("GRIDD_JWT_SECRET", "a-development-secret-of-some-length")
            .env(name, value)
            .output()
            .expect("gridd runs")
    };
    for (name, value) in [
        ("GRIDD_REDIS_URL", "localhost:6379"),
        ("GRIDD_LOG_FORMAT", "xml"),
        ("GRIDD_LOCATE_REACH_M", "-5"),
        ("GRIDD_CONTACT_KEYS_FILE", "/nonexistent/keys"),
        ("GRIDD_RATE_PER_SEC", "fast"),
    ] {
        for cmd in ["check-config", "serve"] {
            let out = run(cmd, name, value);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{cmd} with {name}={value} started");
            assert!(
                err.contains(name) || err.contains(&name["GRIDD_".len()..].to_ascii_lowercase()),
                "{cmd} with {name}={value}: {err}"
            );
        }
    }
    let ok = run("check-config", "GRIDD_LOG_FORMAT", "text");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("configuration OK"));
}
