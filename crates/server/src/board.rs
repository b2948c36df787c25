//! The command-centre board (ADR 0040): a page gridd serves itself under `/board/`, for wall
//! screens and dispatchers' desks inside a government network. Every asset is compiled into
//! the binary (no CDN, no build step, no node); the page calls the API over gRPC-Web with the
//! token its user signs in with, under the same access table as any other client. The only
//! thing generated is `schema.json`: the message and enum layouts of the contract, read from
//! the descriptor set the server was built with, so the page's codec can never drift from it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use prost::Message as _;
use serde::Serialize;

/// Where the board lives.
pub const PREFIX: &str = "/board";

/// The page's files: name, media type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("../board/index.html"),
    ),
    (
        "board.css",
        "text/css; charset=utf-8",
        include_str!("../board/board.css"),
    ),
    (
        "board.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/board.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/views.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/api.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../board/i18n.js"),
    ),
];

/// What the page may do: load its own scripts and styles, call its own origin, show photos it
/// fetched itself; nothing inline, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The board's routes, to be merged into gridd's listener. They are public: the page holds
/// no data, and every call it makes carries the token its user signs in with.
pub fn router() -> Router {
    let mut r = Router::new().route(PREFIX, get(|| async { Redirect::permanent("/board/") }));
    for (name, media_type, body) in ASSETS {
        let path = format!("{PREFIX}/{name}");
        r = r.route(
            &path,
            get(move || async move { asset(media_type, body.as_bytes()) }),
        );
    }
    r.route(
        &format!("{PREFIX}/schema.json"),
        get(|| async { asset("application/json", schema_json()) }),
    )
    // anything else under the board is not found, in HTTP's terms (not gRPC's)
    .route(
        &format!("{PREFIX}/{{*rest}}"),
        get(|| async { (StatusCode::NOT_FOUND, "not found").into_response() }),
    )
}

fn asset(media_type: &'static str, body: &'static [u8]) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // a new gridd may serve a new page: browsers check before reusing what they hold
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// One field of a message: `[name, number, type, repeated, type name]`, where type is
/// `FieldDescriptorProto.Type`'s number and the type name (messages and enums) is
/// fully qualified without its leading dot.
type Field = (String, i32, i32, bool, String);

#[derive(Serialize)]
struct Schema {
    messages: BTreeMap<String, Vec<Field>>,
    enums: BTreeMap<String, BTreeMap<String, i32>>,
}

/// The layouts of every message and enum of the contract and its imports, as JSON.
#[must_use]
pub fn schema_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| {
        let fds = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled into gridd decodes");
        let mut s = Schema {
            messages: BTreeMap::new(),
            enums: BTreeMap::new(),
        };
        for f in &fds.file {
            let package = f.package();
            for m in &f.message_type {
                add_message(&mut s, package, m);
            }
            for e in &f.enum_type {
                add_enum(&mut s, package, e);
            }
        }
        serde_json::to_vec(&s).expect("the schema serializes")
    })
}

fn add_message(s: &mut Schema, scope: &str, m: &prost_types::DescriptorProto) {
    let name = format!("{scope}.{}", m.name());
    let fields = m
        .field
        .iter()
        .map(|f| {
            (
                f.name().to_owned(),
                f.number(),
                f.r#type,
                f.label() == prost_types::field_descriptor_proto::Label::Repeated,
                f.type_name().trim_start_matches('.').to_owned(),
            )
        })
        .map(|(n, num, t, rep, tn)| (n, num, t.unwrap_or(0), rep, tn))
        .collect();
    for nested in &m.nested_type {
        add_message(s, &name, nested);
    }
    for e in &m.enum_type {
        add_enum(s, &name, e);
    }
    s.messages.insert(name, fields);
}

fn add_enum(s: &mut Schema, scope: &str, e: &prost_types::EnumDescriptorProto) {
    let values = e
        .value
        .iter()
        .map(|v| (v.name().to_owned(), v.number()))
        .collect();
    s.enums.insert(format!("{scope}.{}", e.name()), values);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_carries_the_contract_and_its_timestamps() {
        let v: serde_json::Value = serde_json::from_slice(schema_json()).unwrap();
        let case = v["messages"]["griddispatch.v1.Case"].as_array().unwrap();
        let status = case.iter().find(|f| f[0] == "status").unwrap();
        assert_eq!(status[1], 3);
        assert_eq!(status[2], 14); // an enum
        assert_eq!(status[4], "griddispatch.v1.CaseStatus");
        let assisting = case.iter().find(|f| f[0] == "assisting_units").unwrap();
        assert_eq!(assisting[3], true);
        assert!(v["messages"]["google.protobuf.Timestamp"].is_array());
        assert_eq!(v["enums"]["griddispatch.v1.CaseStatus"]["CLOSED"], 5);
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let page = ASSETS[0].2;
        for (name, _, body) in &ASSETS[1..] {
            assert!(!body.is_empty(), "{name} is empty");
        }
        for src in page
            .split("src=\"")
            .skip(1)
            .chain(page.split("href=\"").skip(1))
        {
            let file = src.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == file),
                "index.html names {file}, which the board does not serve"
            );
        }
    }
}
