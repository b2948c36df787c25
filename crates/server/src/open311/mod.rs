//! The Open311 GeoReport v2 facade (ADR 0033): residents' apps, the hotline's web forms and any
//! civic-tech client file and follow requests over plain HTTP, on gridd's own listener.
//!
//! Every endpoint answers in JSON or XML by its suffix (`requests.json`, `requests.xml`), with
//! the spec's field names, its `open`/`closed` statuses and its error list. A request is a
//! case: `service_code` is a category, the point places it in a grid (ADR 0032) and the case
//! runs the same pipeline as a grid worker's. Clients carry an `api_key` issued with
//! `gridctl open311-key`; each key files and reads in its own region, at the per-caller rate.
//! Answers never carry a reporter's name, phone or address, and descriptions are masked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use domain::policy::{Category, CategoryCode};
use domain::region::UnitCode;
use proto::v1;
use serde::{Deserialize, Serialize};
use store::Open311Client;

use crate::api::Ctx;
use crate::auth::{Principal, Role};

mod format;
mod media;
mod requests;

use requests::{list_requests, one_request, token, visible};

use format::{Error, Format, answer, split};

/// Where the facade lives on gridd's listener.
pub const PREFIX: &str = "/open311/v2";
/// The spec this facade follows, as discovery names it.
const SPEC: &str = "http://wiki.open311.org/GeoReport_v2";
/// How long a key's lookup is trusted before the database is asked again (a revocation
/// takes effect within it).
const KEY_TTL: Duration = Duration::from_secs(10);
/// Most requests one `GET requests` answers, and most ids it may name.
const MAX_LIST: u32 = 200;
/// Without dates, `GET requests` covers the last 90 days, as the spec suggests.
const DEFAULT_DAYS: i64 = 90;

/// A fresh client key: 256 random bits, shown once by `gridctl open311-key issue`.
#[must_use]
pub fn new_key() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    format!("o311_{}", hex::encode(bytes))
}

#[derive(Clone)]
struct Facade {
    ctx: Ctx,
    tls: bool,
    keys: Arc<Mutex<KeyCache>>,
}

/// Clients by their key's digest, with when each was looked up (`None`: no live key).
type KeyCache = HashMap<Vec<u8>, (Instant, Option<Open311Client>)>;

/// The facade's routes, to be merged into gridd's listener.
pub fn router(ctx: Ctx, tls: bool) -> Router {
    let state = Facade {
        ctx,
        tls,
        keys: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route(
            &format!("{PREFIX}/{{file}}"),
            get(top_get).post(post_request),
        )
        // a photo may be as large as a file may be; its key is checked before its bytes are
        // read
        .route(
            &format!("{PREFIX}/media.json"),
            post(|s, q, h, b| media_post(Format::Json, s, q, h, b)),
        )
        .route(
            &format!("{PREFIX}/media.xml"),
            post(|s, q, h, b| media_post(Format::Xml, s, q, h, b)),
        )
        .route(&format!("{PREFIX}/media/{{hash}}"), get(media_download))
        .route(
            &format!("{PREFIX}/services/{{file}}"),
            get(service_definition),
        )
        .route(&format!("{PREFIX}/requests/{{file}}"), get(one_request))
        .route(&format!("{PREFIX}/tokens/{{file}}"), get(token))
        .with_state(state)
}

// ---- keys -----------------------------------------------------------------------------------

impl Facade {
    /// The live client holding `key`, looked up at most once per [`KEY_TTL`].
    async fn client(&self, key: Option<&str>) -> Result<Open311Client, Error> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::new(
                    StatusCode::BAD_REQUEST,
                    "api_key: required (ask the operator for one)",
                )
            })?;
        let hash = store::open311_key_hash(key);
        let cached = self
            .keys
            .lock()
            .map_err(|_| Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
            .get(&hash)
            .filter(|(at, _)| at.elapsed() < KEY_TTL)
            .map(|(_, c)| c.clone());
        let found = match cached {
            Some(c) => c,
            None => {
                let c = self
                    .ctx
                    .store
                    .open311_client(key)
                    .await
                    .map_err(Error::from)?;
                if let Ok(mut keys) = self.keys.lock() {
                    keys.retain(|_, (at, _)| at.elapsed() < KEY_TTL);
                    keys.insert(hash, (Instant::now(), c.clone()));
                }
                c
            }
        };
        let client = found.ok_or_else(|| {
            Error::new(
                StatusCode::FORBIDDEN,
                "api_key: not a key this server issued, or revoked",
            )
        })?;
        // each client has its own bucket at the per-caller rate
        self.ctx
            .limiter
            .take(&format!("open311:{}", client.id), Instant::now())
            .map_err(|wait| Error {
                status: StatusCode::TOO_MANY_REQUESTS,
                description: format!(
                    "this api_key is over its rate of calls; retry in {} ms",
                    wait.as_millis().max(1)
                ),
                retry_after: Some(wait),
            })?;
        Ok(client)
    }

    fn base_url(&self, headers: &HeaderMap) -> String {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}{PREFIX}")
    }
}

// ---- discovery and services -----------------------------------------------------------------

#[derive(Serialize)]
struct Endpoint<F> {
    specification: &'static str,
    url: String,
    changeset: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    formats: F,
}

#[derive(Serialize)]
struct Discovery<F> {
    changeset: &'static str,
    contact: &'static str,
    key_service: &'static str,
    endpoints: F,
}

#[derive(Serialize)]
struct FormatsXml {
    format: [&'static str; 2],
}

#[derive(Serialize)]
struct EndpointsXml {
    endpoint: [Endpoint<FormatsXml>; 1],
}

#[derive(Serialize)]
#[serde(rename = "discovery")]
struct DiscoveryXml(Discovery<EndpointsXml>);

fn endpoint<F>(url: &str, formats: F) -> Endpoint<F> {
    Endpoint {
        specification: SPEC,
        url: url.to_owned(),
        changeset: CHANGESET,
        kind: "production",
        formats,
    }
}

fn discovery<E>(endpoints: E) -> Discovery<E> {
    Discovery {
        changeset: CHANGESET,
        contact: "the operator of this GridDispatch installation",
        key_service: "api keys are issued by the operator (gridctl open311-key issue)",
        endpoints,
    }
}

/// When this facade's contract last changed.
const CHANGESET: &str = "2026-12-03T00:00:00Z";
const FORMATS: [&str; 2] = ["application/json", "text/xml"];

#[derive(Debug, Clone, Serialize)]
struct Service {
    service_code: String,
    service_name: String,
    description: String,
    metadata: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    keywords: String,
    group: String,
}

#[derive(Serialize)]
#[serde(rename = "services")]
struct ServicesXml<'a> {
    service: &'a [Service],
}

/// The categories one can report: those with no sub-categories of their own.
async fn services(ctx: &Ctx) -> Result<Vec<Service>, Error> {
    let all: Vec<Category> = ctx.store.list_categories().await.map_err(Error::from)?;
    let names: HashMap<&str, &str> = all
        .iter()
        .map(|c| (c.code.as_str(), c.name.as_str()))
        .collect();
    let parents: std::collections::HashSet<&str> = all
        .iter()
        .filter_map(|c| c.parent_code.as_ref().map(CategoryCode::as_str))
        .collect();
    Ok(all
        .iter()
        .filter(|c| !parents.contains(c.code.as_str()))
        .map(|c| {
            let group = c
                .parent_code
                .as_ref()
                .and_then(|p| names.get(p.as_str()))
                .copied()
                .unwrap_or_default();
            Service {
                service_code: c.code.to_string(),
                service_name: c.name.clone(),
                description: format!("{group}：{}", c.name),
                metadata: false,
                kind: "realtime",
                keywords: String::new(),
                group: group.to_owned(),
            }
        })
        .collect())
}

async fn top_get(
    State(f): State<Facade>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (stem, fmt) = match split(&file) {
        Ok(s) => s,
        Err(e) => return e.in_format(Format::Json),
    };
    match stem {
        "discovery" => {
            let url = f.base_url(&headers);
            answer(
                fmt,
                StatusCode::OK,
                &discovery(vec![endpoint(&url, FORMATS.to_vec())]),
                &DiscoveryXml(discovery(EndpointsXml {
                    endpoint: [endpoint(&url, FormatsXml { format: FORMATS })],
                })),
            )
        }
        "services" => match services(&f.ctx).await {
            Ok(s) => answer(fmt, StatusCode::OK, &s, &ServicesXml { service: &s }),
            Err(e) => e.in_format(fmt),
        },
        "requests" => list_requests(&f, fmt, &q, &headers).await,
        _ => Error::new(StatusCode::NOT_FOUND, "no such endpoint").in_format(fmt),
    }
}

#[derive(Serialize)]
struct Definition {
    service_code: String,
    attributes: Vec<()>,
}

#[derive(Serialize)]
#[serde(rename = "service_definition")]
struct DefinitionXml<'a>(&'a Definition);

async fn service_definition(State(f): State<Facade>, Path(file): Path<String>) -> Response {
    let (code, fmt) = match split(&file) {
        Ok(s) => s,
        Err(e) => return e.in_format(Format::Json),
    };
    match services(&f.ctx).await {
        Ok(s) if s.iter().any(|s| s.service_code == code) => {
            // no extra attributes: every service takes the spec's standard fields only
            let d = Definition {
                service_code: code.to_owned(),
                attributes: Vec::new(),
            };
            answer(fmt, StatusCode::OK, &d, &DefinitionXml(&d))
        }
        Ok(_) => Error::new(
            StatusCode::NOT_FOUND,
            format!("service_code {code}: no such service"),
        )
        .in_format(fmt),
        Err(e) => e.in_format(fmt),
    }
}

// ---- filing a request ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PostForm {
    api_key: String,
    service_code: String,
    lat: String,
    long: String,
    address_string: String,
    address_id: String,
    email: String,
    first_name: String,
    last_name: String,
    phone: String,
    description: String,
    media_url: String,
}

#[derive(Serialize)]
struct Filed {
    service_request_id: String,
    token: String,
    service_notice: String,
    account_id: String,
}

#[derive(Serialize)]
#[serde(rename = "service_requests")]
struct FiledXml<'a> {
    request: [&'a Filed; 1],
}

/// The largest form `POST requests` takes.
const FORM_MAX: usize = 64 * 1024;

/// Most characters of a description the facade turns into a case's title.
const TITLE_CHARS: usize = 40;

async fn post_request(
    State(f): State<Facade>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let fmt = match split(&file) {
        Ok(("requests", fmt)) => fmt,
        Ok((_, fmt)) => {
            return Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "only requests and media take a POST",
            )
            .in_format(fmt);
        }
        Err(e) => return e.in_format(Format::Json),
    };
    if body.len() > FORM_MAX {
        return Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request's form is at most {FORM_MAX} bytes (photos go to POST media)"),
        )
        .in_format(fmt);
    }
    let form: PostForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            return Error::new(StatusCode::BAD_REQUEST, format!("not a form: {e}")).in_format(fmt);
        }
    };
    let key = Some(form.api_key.as_str())
        .filter(|k| !k.is_empty())
        .or(q.get("api_key").map(String::as_str));
    let client = match f.client(key).await {
        Ok(c) => c,
        Err(e) => return e.in_format(fmt),
    };
    match file_request(&f.ctx, &client, form).await {
        Ok(filed) => answer(
            fmt,
            StatusCode::CREATED,
            &[&filed],
            &FiledXml { request: [&filed] },
        ),
        Err(e) => e.in_format(fmt),
    }
}

fn coordinate(s: &str, field: &str) -> Result<f64, Error> {
    s.trim().parse::<f64>().map_err(|_| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("{field}: required, a WGS-84 coordinate in decimal degrees"),
        )
    })
}

async fn file_request(ctx: &Ctx, client: &Open311Client, form: PostForm) -> Result<Filed, Error> {
    if form.lat.trim().is_empty() && form.long.trim().is_empty() {
        let hint = if form.address_string.trim().is_empty() && form.address_id.trim().is_empty() {
            ""
        } else {
            " (addresses are not geocoded here: send the point)"
        };
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("lat/long: required{hint}"),
        ));
    }
    let lat = coordinate(&form.lat, "lat")?;
    let lon = coordinate(&form.long, "long")?;
    if form.service_code.trim().is_empty() {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "service_code: required",
        ));
    }
    // a photo the client uploaded here first (POST media); a URL elsewhere is not fetched
    let attachments = if form.media_url.trim().is_empty() {
        Vec::new()
    } else {
        vec![media::uploaded(ctx, client, &form.media_url).await?]
    };
    let description = form.description.trim().to_owned();
    let title: String = if description.is_empty() {
        let code = CategoryCode::parse(form.service_code.trim())
            .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("service_code: {e}")))?;
        ctx.directory
            .category(&code)
            .await
            .map(|c| c.name)
            .map_err(|_| Error::new(StatusCode::BAD_REQUEST, "service_code: no such service"))?
    } else {
        description.chars().take(TITLE_CHARS).collect()
    };
    let name = format!("{}{}", form.last_name.trim(), form.first_name.trim());
    let reporter = (!name.is_empty()
        || !form.phone.trim().is_empty()
        || !form.email.trim().is_empty())
    .then(|| v1::Reporter {
        name,
        phone: form.phone.trim().to_owned(),
        email: form.email.trim().to_owned(),
        ..Default::default()
    });
    let token = uuid::Uuid::now_v7();
    let now = ctx.clock.now();
    let req = v1::ReportEventRequest {
        idempotency_key: token.to_string(),
        grid_code: String::new(),
        category: form.service_code.trim().to_owned(),
        title,
        description,
        location: Some(v1::Location {
            lat,
            lon,
            crs: v1::Crs::Wgs84.into(),
        }),
        occurred_at: Some(proto::convert::timestamp(now)),
        source: v1::ReportSource::Resident.into(),
        reporter,
        attachments,
        ..Default::default()
    };
    let who = Principal {
        subject: format!("open311:{}", client.name),
        role: Role::Intake,
        unit: Some(UnitCode::from(client.region.clone())),
    };
    let filed = ctx.report(&who, req).await?;
    let case = filed
        .case
        .ok_or_else(|| Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    Ok(Filed {
        service_request_id: case.case_id,
        token: token.to_string(),
        service_notice: format!("已受理，编号 {}", case.case_number),
        account_id: String::new(),
    })
}

async fn media_post(
    fmt: Format,
    State(f): State<Facade>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let key = q.get("api_key").map(String::as_str);
    media::upload(&f, fmt, &headers, key, body).await
}

async fn media_download(
    State(f): State<Facade>,
    Path(hash): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    media::download(&f, &hash, &q).await
}
