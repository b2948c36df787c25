//! A plain HTTP/1.1 client of the facade, as a resident's app would be.

use std::net::SocketAddr;

use griddispatch_tests::{TestServer, open311_key};
use serde_json::Value;

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: String,
    pub(super) retry_after: Option<String>,
    pub(super) body: String,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub(super) fn xml(&self) -> &str {
        assert!(
            self.content_type.starts_with("text/xml"),
            "{}",
            self.content_type
        );
        assert!(self.body.starts_with("<?xml"), "{}", self.body);
        &self.body
    }

    /// The spec's JSON error list: one error whose code is the HTTP status.
    pub(super) fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v[0]["code"], status, "{v}");
        v[0]["description"].as_str().unwrap().to_owned()
    }
}

/// One HTTP/1.1 exchange over a fresh connection; `form` is sent as a urlencoded body.
pub(super) async fn http(addr: SocketAddr, method: &str, path: &str, form: Option<&str>) -> Reply {
    let headers: &[(&str, &str)] = if form.is_some() {
        &[("Content-Type", "application/x-www-form-urlencoded")]
    } else {
        &[]
    };
    let r = griddispatch_tests::plain_http::http(
        addr,
        method,
        path,
        headers,
        form.unwrap_or("").as_bytes(),
    )
    .await;
    Reply {
        status: r.status,
        content_type: r.header("content-type").unwrap_or_default().to_owned(),
        retry_after: r.header("retry-after").map(str::to_owned),
        body: r.text(),
    }
}

pub(super) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(super) fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) async fn key(s: &TestServer, name: &str, region: &str) -> String {
    open311_key(s, name, region).await
}

pub(super) async fn post(s: &TestServer, fmt: &str, fields: &[(&str, &str)]) -> Reply {
    http(
        s.addr,
        "POST",
        &format!("/open311/v2/requests.{fmt}"),
        Some(&form(fields)),
    )
    .await
}

pub(super) async fn get(s: &TestServer, path: &str) -> Reply {
    http(s.addr, "GET", &format!("/open311/v2/{path}"), None).await
}
