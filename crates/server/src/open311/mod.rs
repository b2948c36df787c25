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
use chrono::{DateTime, SecondsFormat, Utc};
use domain::CaseStatus;
use domain::Tier;
use domain::policy::{Category, CategoryCode};
use domain::record::CaseRecord;
use domain::region::UnitCode;
use domain::source::SourceKind;
use proto::v1;
use serde::{Deserialize, Serialize};
use store::{CaseFilter, Open311Client};

use crate::api::Ctx;
use crate::auth::{Principal, Role};

mod follow;
mod format;
mod media;

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

// ---- following requests --------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct RequestOut {
    service_request_id: String,
    status: &'static str,
    status_notes: String,
    service_name: String,
    service_code: String,
    description: String,
    agency_responsible: String,
    service_notice: String,
    requested_datetime: String,
    updated_datetime: String,
    expected_datetime: String,
    address: String,
    address_id: String,
    zipcode: String,
    lat: f64,
    long: f64,
    media_url: String,
}

#[derive(Serialize)]
#[serde(rename = "service_requests")]
struct RequestsXml<'a> {
    request: &'a [RequestOut],
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Grid => "网格",
        Tier::Community => "社区",
        Tier::Township => "乡镇（街道）",
        Tier::County => "县（区）",
        Tier::City => "市",
    }
}

/// What a resident reads about the case's progress (一键回应).
fn status_notes(c: &CaseRecord) -> String {
    let s = &c.state;
    match s.status {
        CaseStatus::Reported => "已收到，正在分派".into(),
        CaseStatus::PendingAccept => format!("已转{}，等待受理", tier_name(s.tier)),
        CaseStatus::InProgress if s.rework_count > 0 => {
            format!("{}正在重新处理", tier_name(s.tier))
        }
        CaseStatus::InProgress => format!("{}已受理，正在处理", tier_name(s.tier)),
        CaseStatus::PendingVerification => "已处理完毕，网格员正在现场核查".into(),
        CaseStatus::Closed => match s.rating {
            Some(r) => format!("已办结，评价 {r} 分"),
            None => "已办结".into(),
        },
        CaseStatus::Rejected => "不予受理".into(),
        CaseStatus::Merged => "已并入同一事项一并处理".into(),
    }
}

fn request_out(c: &CaseRecord, names: &HashMap<String, String>, base: &str) -> RequestOut {
    let s = &c.state;
    let closed = s.status.is_terminal();
    RequestOut {
        service_request_id: c.case_id.to_string(),
        status: if closed { "closed" } else { "open" },
        status_notes: status_notes(c),
        service_name: names.get(c.category.as_str()).cloned().unwrap_or_default(),
        service_code: c.category.to_string(),
        description: domain::pii::mask(&c.description).into_owned(),
        agency_responsible: s
            .lead
            .as_ref()
            .or(s.holder.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default(),
        service_notice: format!("编号 {}", c.case_number),
        requested_datetime: time(c.reported_at),
        updated_datetime: time(c.updated_at),
        // when the case is due to be handled, by the county's SLA; while it waits to be
        // accepted, when that is due
        expected_datetime: if closed {
            String::new()
        } else {
            s.handle_due_at
                .or(s.accept_due_at)
                .map(time)
                .unwrap_or_default()
        },
        address: String::new(),
        address_id: String::new(),
        zipcode: String::new(),
        lat: c.location.lat,
        long: c.location.lon,
        media_url: media::media_url(base, c),
    }
}

async fn category_names(ctx: &Ctx) -> Result<HashMap<String, String>, Error> {
    Ok(ctx
        .store
        .list_categories()
        .await
        .map_err(Error::from)?
        .into_iter()
        .map(|c| (c.code.to_string(), c.name))
        .collect())
}

/// A client sees the residents' requests of its own region.
fn visible(client: &Open311Client, c: &CaseRecord) -> bool {
    c.source.kind == SourceKind::Resident && c.grid.is_within(&client.region)
}

fn date(q: &HashMap<String, String>, field: &str) -> Result<Option<DateTime<Utc>>, Error> {
    q.get(field)
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    Error::new(
                        StatusCode::BAD_REQUEST,
                        format!("{field}: not a W3C date-time such as 2026-12-03T08:00:00+08:00"),
                    )
                })
        })
        .transpose()
}

async fn list_requests(
    f: &Facade,
    fmt: Format,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let client = match f.client(q.get("api_key").map(String::as_str)).await {
        Ok(c) => c,
        Err(e) => return e.in_format(fmt),
    };
    match list(f, &client, q, &f.base_url(headers)).await {
        Ok(out) => answer(fmt, StatusCode::OK, &out, &RequestsXml { request: &out }),
        Err(e) => e.in_format(fmt),
    }
}

async fn list(
    f: &Facade,
    client: &Open311Client,
    q: &HashMap<String, String>,
    base: &str,
) -> Result<Vec<RequestOut>, Error> {
    let names = category_names(&f.ctx).await?;
    // ids, when given, answer alone (the spec: other filters are then ignored)
    if let Some(ids) = q.get("service_request_id").filter(|s| !s.is_empty()) {
        let ids = ids
            .split(',')
            .map(|s| {
                s.trim().parse::<domain::CaseId>().map_err(|_| {
                    Error::new(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "service_request_id: {} is not an id this server gave",
                            s.trim()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if ids.len() > MAX_LIST as usize {
            return Err(Error::new(
                StatusCode::BAD_REQUEST,
                format!("service_request_id: at most {MAX_LIST} ids"),
            ));
        }
        let found = f.ctx.store.get_cases(&ids).await.map_err(Error::from)?;
        let shown: Vec<&CaseRecord> = ids
            .iter()
            .filter_map(|id| found.get(id))
            .filter(|c| visible(client, c))
            .collect();
        let originals = follow::originals(&f.ctx, shown.iter().copied()).await?;
        return Ok(shown
            .into_iter()
            .map(|c| follow::request(c, &originals, &names, base))
            .collect());
    }
    let now = f.ctx.clock.now();
    let end = date(q, "end_date")?;
    let start = date(q, "start_date")?
        .or_else(|| Some(end.unwrap_or(now) - chrono::Duration::days(DEFAULT_DAYS)));
    let category = match q.get("service_code").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            CategoryCode::parse(s)
                .map_err(|e| Error::new(StatusCode::BAD_REQUEST, format!("service_code: {e}")))?
                .to_string(),
        ),
    };
    let mut statuses = Vec::new();
    if let Some(s) = q.get("status").filter(|s| !s.is_empty()) {
        for one in s.split(',') {
            match one.trim() {
                "open" => statuses.extend(CaseStatus::ALL.iter().filter(|s| !s.is_terminal())),
                "closed" => statuses.extend(CaseStatus::ALL.iter().filter(|s| s.is_terminal())),
                other => {
                    return Err(Error::new(
                        StatusCode::BAD_REQUEST,
                        format!("status: {other} is neither open nor closed"),
                    ));
                }
            }
        }
    }
    let filter = CaseFilter {
        region: Some(client.region.clone()),
        statuses,
        category,
        reported_after: start,
        reported_before: end,
        source: Some(SourceKind::Resident),
        ..CaseFilter::default()
    };
    let cases = f
        .ctx
        .store
        .list_cases(&filter, None, MAX_LIST)
        .await
        .map_err(Error::from)?;
    let originals = follow::originals(&f.ctx, &cases).await?;
    Ok(cases
        .iter()
        .map(|c| follow::request(c, &originals, &names, base))
        .collect())
}

/// A keyed GET of one object: the object's name and format from the path, the client from
/// `api_key`; or the refusal, already in the asked format.
async fn keyed<'a>(
    f: &Facade,
    file: &'a str,
    q: &HashMap<String, String>,
) -> Result<(&'a str, Format, Open311Client), Response> {
    let (name, fmt) = split(file).map_err(|e| e.in_format(Format::Json))?;
    let client = f
        .client(q.get("api_key").map(String::as_str))
        .await
        .map_err(|e| e.in_format(fmt))?;
    Ok((name, fmt, client))
}

async fn one_request(
    State(f): State<Facade>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (id, fmt, client) = match keyed(&f, &file, &q).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let missing = || {
        Error::new(
            StatusCode::NOT_FOUND,
            format!("service_request_id {id}: no such request"),
        )
    };
    let Ok(case_id) = id.parse::<domain::CaseId>() else {
        return missing().in_format(fmt);
    };
    let found = match f.ctx.store.get_case(case_id).await {
        Ok(c) => c,
        Err(e) => return Error::from(e).in_format(fmt),
    };
    let Some(case) = found.filter(|c| visible(&client, c)) else {
        return missing().in_format(fmt);
    };
    let names = match category_names(&f.ctx).await {
        Ok(names) => names,
        Err(e) => return e.in_format(fmt),
    };
    let originals = match follow::originals(&f.ctx, [&case]).await {
        Ok(o) => o,
        Err(e) => return e.in_format(fmt),
    };
    let out = [follow::request(
        &case,
        &originals,
        &names,
        &f.base_url(&headers),
    )];
    answer(fmt, StatusCode::OK, &out, &RequestsXml { request: &out })
}

#[derive(Serialize)]
struct TokenOut {
    service_request_id: String,
    token: String,
}

#[derive(Serialize)]
#[serde(rename = "service_requests")]
struct TokensXml<'a> {
    request: [&'a TokenOut; 1],
}

async fn token(
    State(f): State<Facade>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (token, fmt, client) = match keyed(&f, &file, &q).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let missing = || {
        Error::new(
            StatusCode::NOT_FOUND,
            format!("token {token}: no such token"),
        )
    };
    let Ok(key) = token.parse::<uuid::Uuid>() else {
        return missing().in_format(fmt);
    };
    let case = match f.ctx.store.case_by_idempotency_key(key).await {
        Ok(Some(id)) => f.ctx.store.get_case(id).await,
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match case {
        Ok(Some(c)) if visible(&client, &c) => {
            let out = TokenOut {
                service_request_id: c.case_id.to_string(),
                token: token.to_owned(),
            };
            answer(fmt, StatusCode::OK, &[&out], &TokensXml { request: [&out] })
        }
        Ok(_) => missing().in_format(fmt),
        Err(e) => Error::from(e).in_format(fmt),
    }
}
