use super::Config;

#[test]
fn the_defaults_pass_and_each_bad_setting_is_named() {
    Config::default().check().unwrap();
    type Case = (fn(&mut Config), &'static str);
    let cases: [Case; 14] = [
        (
            |c| c.database_url = "mysql://x".into(),
            "GRIDD_DATABASE_URL",
        ),
        (|c| c.redis_url = "localhost:6379".into(), "GRIDD_REDIS_URL"),
        (
            |c| {
                c.insecure_dev = true;
                c.listen = "0.0.0.0:50051".parse().unwrap();
            },
            "GRIDD_INSECURE_DEV",
        ),
        (|c| c.jwt_secret = Some("short".into()), "GRIDD_JWT_SECRET"),
        (|c| c.log_format = "xml".into(), "GRIDD_LOG_FORMAT"),
        (|c| c.redis_prefix = "a b".into(), "GRIDD_REDIS_PREFIX"),
        (|c| c.locate_reach_m = -1.0, "GRIDD_LOCATE_REACH_M"),
        (
            |c| c.jwt_jwks_file = Some("/nonexistent/jwks.json".into()),
            "GRIDD_JWT_JWKS_FILE",
        ),
        (|c| c.cors_origins = "*".into(), "GRIDD_CORS_ORIGINS"),
        (
            |c| c.cors_origins = "https://board.example.gov.cn/page".into(),
            "GRIDD_CORS_ORIGINS",
        ),
        (|c| c.demo_clock_speed = 0.5, "GRIDD_DEMO_CLOCK_SPEED"),
        (
            |c| {
                c.demo_clock_speed = 480.0;
                c.listen = "0.0.0.0:50051".parse().unwrap();
            },
            "GRIDD_DEMO_CLOCK_SPEED",
        ),
        (
            |c| c.metrics_listen = Some(c.listen),
            "GRIDD_METRICS_LISTEN",
        ),
        (
            |c| {
                c.demo_clock_speed = 480.0;
                c.database_url = "postgres://gridd@db.internal:5432/griddispatch".into();
            },
            "GRIDD_DEMO_CLOCK_SPEED",
        ),
    ];
    for (set, name) in cases {
        let mut c = Config::default();
        set(&mut c);
        let e = c.check().unwrap_err();
        assert!(e.starts_with(name), "{name}: {e}");
    }
}

/// docs/configuration.md lists every setting.
#[test]
fn every_setting_is_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .unwrap();
    let source = include_str!("../config.rs");
    let start = source.find("pub struct Config {").unwrap();
    let end = start + source[start..].find("\n}").unwrap();
    for line in source[start..end].lines().skip(1) {
        let Some(field) = line
            .trim()
            .strip_prefix("pub ")
            .and_then(|l| l.split(':').next())
        else {
            continue;
        };
        let name = format!("`GRIDD_{}`", field.to_ascii_uppercase());
        assert!(doc.contains(&name), "docs/configuration.md lacks {name}");
    }
}
