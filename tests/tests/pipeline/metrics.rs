//! Reading the test server's `/metrics` scrape.

use griddispatch_tests::TestServer;

/// The metric names a file of queries uses: ours (`gd_…`) and the RPC series.
pub(super) fn series_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["gd_", "grpc_server_"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(prefix) {
            let start = from + i;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| start + n);
            if boundary {
                out.insert(text[start..end].to_owned());
            }
            from = end;
        }
    }
    out
}

pub(super) fn service_of(method: &str) -> &'static str {
    match method {
        "ReportEvent" => "ReportingService",
        "SubmitResult" => "HandlingService",
        _ => "EscalationService",
    }
}

pub(super) struct Scrape {
    text: String,
}

impl Scrape {
    /// Whether the scrape declares `name`: a sample of it, or its family's TYPE line (a
    /// family with no labels set yet has no samples).
    pub(super) fn declares(&self, name: &str) -> bool {
        let base = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        self.text.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                || l.strip_prefix("# TYPE ")
                    .and_then(|r| r.split(' ').next())
                    .is_some_and(|n| n == base || n == name)
        })
    }

    /// The value of one series as the scrape printed it (labels in the order the server
    /// declares them).
    pub(super) fn value(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }
}

pub(super) async fn scrape(s: &TestServer) -> Scrape {
    let r = griddispatch_tests::plain_http::http(s.metrics_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape { text }
}
