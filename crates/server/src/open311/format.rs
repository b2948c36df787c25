//! The facade's two formats and the spec's error list.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Xml,
}

/// `requests.json` → (`requests`, JSON). An unknown suffix is answered in JSON.
pub(super) fn split(file: &str) -> Result<(&str, Format), Error> {
    match file.rsplit_once('.') {
        Some((stem, "json")) => Ok((stem, Format::Json)),
        Some((stem, "xml")) => Ok((stem, Format::Xml)),
        _ => Err(Error::new(
            StatusCode::NOT_FOUND,
            "name a format: .json or .xml",
        )),
    }
}

/// One answer in either format: `json` as it is, `xml` wrapped in the spec's root element.
pub(super) fn answer<J: Serialize, X: Serialize>(
    f: Format,
    status: StatusCode,
    json: &J,
    xml: &X,
) -> Response {
    match f {
        Format::Json => match serde_json::to_vec(json) {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(e) => internal(&e),
        },
        Format::Xml => match quick_xml::se::to_string(xml) {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
                format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{body}"),
            )
                .into_response(),
            Err(e) => internal(&e),
        },
    }
}

pub(super) fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "open311 answer could not be written");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The spec's error: an HTTP status and a list of `{code, description}`.
#[derive(Debug)]
pub(super) struct Error {
    pub(super) status: StatusCode,
    pub(super) description: String,
    pub(super) retry_after: Option<Duration>,
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    code: u16,
    description: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "errors")]
struct ErrorsXml<'a> {
    error: [ErrorItem<'a>; 1],
}

impl Error {
    pub(super) fn new(status: StatusCode, description: impl Into<String>) -> Error {
        Error {
            status,
            description: description.into(),
            retry_after: None,
        }
    }

    pub(super) fn in_format(self, f: Format) -> Response {
        let item = || ErrorItem {
            code: self.status.as_u16(),
            description: &self.description,
        };
        let mut r = answer(f, self.status, &[item()], &ErrorsXml { error: [item()] });
        if let Some(wait) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// gridd's errors in the spec's terms; a request's own fields are named as the spec names
/// them.
impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        match e {
            ApiError::Invalid(v) => Error::new(
                StatusCode::BAD_REQUEST,
                v.iter()
                    .map(|f| format!("{}: {}", spec_field(&f.field), f.description))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::NotFound(m) => Error::new(StatusCode::NOT_FOUND, m),
            ApiError::FailedPrecondition(m) | ApiError::AlreadyExists(m) | ApiError::Aborted(m) => {
                Error::new(StatusCode::BAD_REQUEST, m)
            }
            ApiError::Unauthenticated(m) | ApiError::PermissionDenied(m) => {
                Error::new(StatusCode::FORBIDDEN, m)
            }
            ApiError::ResourceExhausted(m) => Error::new(StatusCode::TOO_MANY_REQUESTS, m),
            ApiError::Unavailable(_) => {
                Error::new(StatusCode::SERVICE_UNAVAILABLE, "try again shortly")
            }
            ApiError::Internal(_) => {
                Error::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<store::StoreError> for Error {
    fn from(e: store::StoreError) -> Error {
        Error::from(ApiError::from(e))
    }
}

pub(super) fn spec_field(ours: &str) -> &str {
    match ours {
        "category" => "service_code",
        "location" | "location.lat" | "location.lon" | "location.crs" | "grid_code" => "lat/long",
        "title" | "description" => "description",
        "reporter.phone" => "phone",
        "reporter.email" => "email",
        "reporter.name" => "first_name/last_name",
        f if f.starts_with("attachments") => "media_url",
        other => other,
    }
}
