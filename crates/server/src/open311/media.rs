//! Photos through the facade (ADR 0035). A client uploads the file itself with
//! `POST media.json?api_key=…` (the body is the file) and names the `media_url` it is given in
//! `POST requests`; `GET requests` answers a request's photo as a `media_url` the client
//! fetches with its key. A `media_url` of any other server is refused, never fetched: gridd
//! does not reach out to addresses a client names.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::format::{Error, Format, answer};
use super::{Facade, PREFIX, visible};
use crate::api::media::content_hash_arg;
use domain::record::CaseRecord;
use proto::v1;
use store::Open311Client;

/// Where a photo lives on the facade, below its prefix.
const MEDIA: &str = "media";

#[derive(Serialize)]
struct MediaOut {
    media_url: String,
    content_hash: String,
    media_type: String,
    size: u64,
}

#[derive(Serialize)]
#[serde(rename = "media")]
struct MediaXml<'a> {
    file: [&'a MediaOut; 1],
}

/// `POST media.{fmt}`: stores the body as a photo the client may then name in a request.
pub(super) async fn upload(
    f: &Facade,
    fmt: Format,
    headers: &HeaderMap,
    key: Option<&str>,
    body: axum::body::Body,
) -> Response {
    let client = match f.client(key).await {
        Ok(c) => c,
        Err(e) => return e.in_format(fmt),
    };
    let max = f.ctx.media.max_bytes;
    let Ok(body) = axum::body::to_bytes(body, max).await else {
        return Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("media: larger than the limit of {max} bytes"),
        )
        .in_format(fmt);
    };
    let by = uploader(&client);
    match f.ctx.take_media(&by, body.to_vec()).await {
        Ok((a, existed)) => {
            let out = MediaOut {
                media_url: format!("{}/{MEDIA}/{}", f.base_url(headers), a.content_hash),
                content_hash: a.content_hash,
                media_type: a.media_type,
                size: a.size,
            };
            let status = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            answer(fmt, status, &[&out], &MediaXml { file: [&out] })
        }
        Err(e) => {
            let e = Error::from(e);
            Error::new(e.status, format!("media: {}", e.description)).in_format(fmt)
        }
    }
}

/// The hash a `media_url` of this facade names (any host: a proxy may front it), or the
/// error that says why it is not taken.
pub(super) fn hash_of(media_url: &str) -> Result<String, Error> {
    let refuse = || {
        Error::new(
            StatusCode::BAD_REQUEST,
            "media_url: only a media_url this service answered to POST media is taken (upload \
             the photo there first); files on other servers are not fetched",
        )
    };
    let url = media_url.trim();
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let tail = path
        .rsplit_once(&format!("{PREFIX}/{MEDIA}/"))
        .map(|(_, t)| t)
        .ok_or_else(refuse)?;
    content_hash_arg(tail).map_err(|_| refuse())
}

/// Who a client uploads as.
pub(super) fn uploader(client: &Open311Client) -> String {
    format!("open311:{}", client.name)
}

/// The photo a `media_url` names, as the report refers to it: one this client uploaded (a
/// hash alone names no file of anyone else's: hashes travel in logs and the export feed).
pub(super) async fn uploaded(
    ctx: &crate::api::Ctx,
    client: &Open311Client,
    media_url: &str,
) -> Result<v1::Attachment, Error> {
    let hash = hash_of(media_url)?;
    let known = ctx.store.media(std::slice::from_ref(&hash)).await?;
    let mine = uploader(client);
    let m = known
        .get(&hash)
        .filter(|m| m.uploaded_by == mine)
        .ok_or_else(|| {
            Error::new(
                StatusCode::BAD_REQUEST,
                "media_url: no such photo of yours here: upload it with POST media first",
            )
        })?;
    Ok(v1::Attachment {
        content_hash: hash,
        media_type: m.media_type.clone(),
        size: m.size,
        ..Default::default()
    })
}

/// A request's photo as the client fetches it, or "" when it has none.
pub(super) fn media_url(base: &str, c: &CaseRecord) -> String {
    c.attachments
        .iter()
        .find(|a| a.media_type.starts_with("image/"))
        .map(|a| {
            format!(
                "{base}/{MEDIA}/{}?service_request_id={}",
                a.content_hash, c.case_id
            )
        })
        .unwrap_or_default()
}

/// `GET media/{hash}?service_request_id=…&api_key=…`: a photo of a request the client may
/// see. Errors are JSON (the path names no format).
pub(super) async fn download(f: &Facade, hash: &str, q: &HashMap<String, String>) -> Response {
    let fmt = Format::Json;
    let client = match f.client(q.get("api_key").map(String::as_str)).await {
        Ok(c) => c,
        Err(e) => return e.in_format(fmt),
    };
    let missing = || Error::new(StatusCode::NOT_FOUND, "no such photo on a request of yours");
    let Ok(hash) = content_hash_arg(hash) else {
        return missing().in_format(fmt);
    };
    let Some(id) = q
        .get("service_request_id")
        .and_then(|s| s.trim().parse::<domain::CaseId>().ok())
    else {
        return Error::new(
            StatusCode::BAD_REQUEST,
            "service_request_id: required, the request the photo is on",
        )
        .in_format(fmt);
    };
    let case = match f.ctx.store.get_case(id).await {
        Ok(Some(c)) if visible(&client, &c) => c,
        Ok(_) => return missing().in_format(fmt),
        Err(e) => return Error::from(e).in_format(fmt),
    };
    // the request's own photos, not the units' working files
    match f.ctx.media_of_case(&case, &hash, false).await {
        Ok(found) => crate::web::file_response(&hash, &found.media_type, found.bytes),
        Err(e) => Error::from(e).in_format(fmt),
    }
}
