//! gridd's HTTP endpoints for staff clients that cannot stream gRPC: browsers and field apps
//! upload a photo with one `POST /media` and fetch a case's file with
//! `GET /media/{case_id}/{content_hash}` (ADR 0035). Each is a method of the access table
//! under another name ([`crate::access::http_rule`]): the same bearer tokens, roles, scopes
//! and per-caller limits as `MediaService.Upload` and `Download`, and the same checks, shared
//! on [`Ctx`]. Errors are JSON, `{"code": "PERMISSION_DENIED", "message": "…"}`, with the
//! HTTP status that fits the gRPC code.

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::access::Refused;
use crate::api::Ctx;
use crate::api::media::content_hash_arg;
use crate::auth::Principal;
use crate::error::ApiError;

/// Where media are uploaded (POST) and, below it, downloaded (GET).
pub const MEDIA: &str = "/media";

/// The HTTP routes, to be merged into gridd's listener.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route(MEDIA, post(upload))
        .route(&format!("{MEDIA}/{{case_id}}/{{hash}}"), get(download))
        .with_state(ctx)
}

/// The caller the access layer admitted; an endpoint that takes one cannot run for anyone
/// else.
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Response> {
        if let Some(who) = parts.extensions.get::<Principal>() {
            return Ok(Caller(who.clone()));
        }
        let status = parts.extensions.get::<Refused>().map_or_else(
            || tonic::Status::unauthenticated("no caller: this endpoint needs a bearer token"),
            |r| r.0.clone(),
        );
        Err(status_response(&status))
    }
}

/// The HTTP status that fits a gRPC code.
pub(crate) fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    code: String,
    message: &'a str,
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            b,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn status_response(s: &tonic::Status) -> Response {
    let mut r = json(
        http_status(s.code()),
        &ErrorOut {
            code: crate::metrics::code_name(s.code()),
            message: s.message(),
        },
    );
    if s.code() == tonic::Code::Unauthenticated {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

fn error(e: ApiError) -> Response {
    status_response(&tonic::Status::from(e))
}

#[derive(Serialize)]
struct Point {
    lat: f64,
    lon: f64,
}

#[derive(Serialize)]
struct Uploaded {
    content_hash: String,
    media_type: String,
    size: u64,
    existed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_location: Option<Point>,
}

/// `POST /media`: the body is the file, whatever its name or declared type; the answer is
/// the attachment to name in a report or a result (201, or 200 when the bytes were there).
/// The caller is admitted and holds one of its streams before a byte is read.
async fn upload(State(ctx): State<Ctx>, Caller(who): Caller, body: axum::body::Body) -> Response {
    let _permit = match ctx.open_stream(&who) {
        Ok(p) => p,
        Err(e) => return error(e),
    };
    let max = ctx.media.max_bytes;
    let Ok(body) = axum::body::to_bytes(body, max).await else {
        let mut r = status_response(&tonic::Status::invalid_argument(format!(
            "larger than the limit of {max} bytes"
        )));
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        return r;
    };
    match ctx.take_media(&who.subject, body.to_vec()).await {
        Ok((a, existed)) => json(
            if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &Uploaded {
                content_hash: a.content_hash,
                media_type: a.media_type,
                size: a.size,
                existed,
                taken_at: a.taken_at.and_then(|t| {
                    chrono::DateTime::from_timestamp(t.seconds, 0)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }),
                taken_location: a.taken_location.map(|p| Point {
                    lat: p.lat,
                    lon: p.lon,
                }),
            },
        ),
        Err(e) => error(e),
    }
}

/// `GET /media/{case_id}/{content_hash}`: a file the case refers to, for a caller who may see
/// the case (404 otherwise, as for the case itself).
async fn download(
    State(ctx): State<Ctx>,
    Caller(who): Caller,
    Path((case_id, hash)): Path<(String, String)>,
) -> Response {
    let found = async {
        let hash = content_hash_arg(&hash)?;
        let case = ctx.visible_case(&who, &case_id).await?;
        ctx.media_of_case(&case, &hash, true)
            .await
            .map(|f| (hash, f))
    }
    .await;
    match found {
        Ok((hash, f)) => file_response(&hash, &f.media_type, f.bytes),
        Err(e) => error(e),
    }
}

/// A stored file as an HTTP answer: its own type, never sniffed by the browser, never run as
/// a page, cached only by the caller (its name is its hash: it never changes).
pub(crate) fn file_response(hash: &str, media_type: &str, bytes: bytes::Bytes) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    r
}

/// gRPC-Web for browsers (ADR 0039), and only for them: `tonic-web` answers every other
/// HTTP/1.1 request with 400, which would shut out the Open311 facade and the media endpoints
/// on the same listener. This layer hands a request to `tonic-web` when it is gRPC-Web and
/// straight to the services otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWebLayer;

impl<S: Clone> tower_layer::Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;

    fn layer(&self, inner: S) -> GrpcWeb<S> {
        GrpcWeb { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcWeb<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Whether a request's content type starts with `prefix`: `application/grpc` for gRPC (and
/// gRPC-Web, once translated), `application/grpc-web` for a browser's call.
pub(crate) fn content_type_starts(headers: &axum::http::HeaderMap, prefix: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(prefix))
}

impl<S, ReqBody, ResBody> tonic::codegen::Service<axum::http::Request<ReqBody>> for GrpcWeb<S>
where
    S: tonic::codegen::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<ResBody>,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError> + std::fmt::Display,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError> + std::fmt::Display,
{
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<ReqBody>) -> Self::Future {
        use tower_layer::Layer as _;
        // the service that was made ready answers this request; a clone waits for the next
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        if content_type_starts(req.headers(), "application/grpc-web") {
            let mut web = tonic_web::GrpcWebLayer::new().layer(ready);
            Box::pin(web.call(req))
        } else {
            let mut plain = ready;
            let fut = plain.call(req.map(tonic::body::Body::new));
            Box::pin(async move { fut.await.map(|r| r.map(tonic::body::Body::new)) })
        }
    }
}
