//! Following requests (GET `requests`, `requests/{id}`, `tokens/{token}`): what a resident
//! reads about the progress of what they reported. A request linked to another as a repeat
//! (ADR 0044) follows the case it repeats: it keeps its own id and answers that case's status,
//! responsible unit and expected time, with a note naming it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::policy::CategoryCode;
use domain::record::CaseRecord;
use domain::source::SourceKind;
use domain::{CaseId, CaseStatus, Tier};
use serde::Serialize;
use store::{CaseFilter, Open311Client};

use super::format::{Error, Format, answer, split};
use super::{DEFAULT_DAYS, Facade, MAX_LIST, media};
use crate::api::Ctx;

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

pub(super) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn tier_name(t: Tier) -> &'static str {
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

pub(super) async fn category_names(ctx: &Ctx) -> Result<HashMap<String, String>, Error> {
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
pub(super) fn visible(client: &Open311Client, c: &CaseRecord) -> bool {
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

pub(super) async fn list_requests(
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
        let originals = originals(&f.ctx, client, shown.iter().copied()).await?;
        return Ok(shown
            .into_iter()
            .map(|c| following(c, &originals, &names, base))
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
    let originals = originals(&f.ctx, client, &cases).await?;
    Ok(cases
        .iter()
        .map(|c| following(c, &originals, &names, base))
        .collect())
}

/// A keyed GET of one object: the object's name and format from the path, the client from
/// `api_key`; or the refusal, already in the asked format.
pub(super) async fn keyed<'a>(
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

pub(super) async fn one_request(
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
    let originals = match originals(&f.ctx, &client, [&case]).await {
        Ok(o) => o,
        Err(e) => return e.in_format(fmt),
    };
    let out = [following(&case, &originals, &names, &f.base_url(&headers))];
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

pub(super) async fn token(
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

/// How many links a request follows: a repeat's case may itself have been merged into another.
const FOLLOW_HOPS: usize = 4;

/// The cases that `cases` were linked into, and the cases those were merged into in turn, by
/// id, those in the client's region; one read per hop.
async fn originals<'a>(
    ctx: &Ctx,
    client: &Open311Client,
    cases: impl IntoIterator<Item = &'a CaseRecord>,
) -> Result<HashMap<CaseId, CaseRecord>, Error> {
    let ids: Vec<CaseId> = cases
        .into_iter()
        .filter_map(|c| c.state.merged_into)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut found = ctx.store.get_cases(&ids).await.map_err(Error::from)?;
    for _ in 1..FOLLOW_HOPS {
        let next: Vec<CaseId> = found
            .values()
            .filter_map(|o| o.state.merged_into)
            .filter(|id| !found.contains_key(id))
            .collect();
        if next.is_empty() {
            break;
        }
        found.extend(ctx.store.get_cases(&next).await.map_err(Error::from)?);
    }
    found.retain(|_, o| o.grid.is_within(&client.region));
    Ok(found)
}

/// A request as its resident reads it: its own, or the case it follows.
fn following(
    c: &CaseRecord,
    originals: &HashMap<CaseId, CaseRecord>,
    names: &HashMap<String, String>,
    base: &str,
) -> RequestOut {
    let mut out = request_out(c, names, base);
    // the last case of the chain the client may see
    let mut last = None;
    let mut at = c;
    for _ in 0..FOLLOW_HOPS {
        match at.state.merged_into.and_then(|id| originals.get(&id)) {
            Some(o) => {
                last = Some(o);
                at = o;
            }
            None => break,
        }
    }
    if let Some(o) = last {
        let followed = request_out(o, names, base);
        out.status = followed.status;
        out.status_notes = format!(
            "与编号 {} 为同一事项，随其一并办理：{}",
            o.case_number,
            status_notes(o)
        );
        out.agency_responsible = followed.agency_responsible;
        out.expected_datetime = followed.expected_datetime;
    }
    out
}
