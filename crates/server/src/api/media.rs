//! MediaService: photos, videos and voice notes uploaded by grid workers, residents' apps and
//! units, downloaded by those who may see a case that refers to them (ADR 0034). The checks
//! live on [`Ctx`], shared with the HTTP upload and download (`crate::web`) and the Open311
//! facade.

use domain::record::CaseRecord;
use futures::StreamExt as _;
use proto::v1;
use tonic::{Request, Response, Status, Streaming};

use super::Ctx;
use super::streams::ServerStream;
use crate::auth::{Principal, principal};
use crate::error::{ApiError, ApiResult};
use crate::media::MediaError;

/// Bytes per download message: well under any message limit.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

#[derive(Clone)]
pub struct Media {
    ctx: Ctx,
}

impl Media {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

pub(crate) fn media_error(e: MediaError) -> ApiError {
    match e {
        MediaError::Store(e) => ApiError::Unavailable(format!("object store: {e}")),
        other => ApiError::invalid("chunk", other.to_string()),
    }
}

/// A content hash as a request names it: 64 hex digits, answered in lowercase.
pub(crate) fn content_hash_arg(s: &str) -> ApiResult<String> {
    let hash = s.trim().to_ascii_lowercase();
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash)
    } else {
        Err(ApiError::invalid("content_hash", "64 hex digits (SHA-256)"))
    }
}

/// A file found for a download.
pub(crate) struct Found {
    pub media_type: String,
    pub bytes: bytes::Bytes,
}

impl Ctx {
    /// Takes an uploaded file: its type read from its bytes, its size checked, stored under its
    /// hash, what its EXIF says kept beside it. Answers the attachment as recorded, and whether
    /// the same bytes had been uploaded before.
    pub(crate) async fn take_media(
        &self,
        uploaded_by: &str,
        bytes: Vec<u8>,
    ) -> ApiResult<(v1::Attachment, bool)> {
        let stored = self.media.put(bytes).await.map_err(media_error)?;
        let info = store::MediaInfo {
            media_type: stored.media_type.to_owned(),
            size: stored.size,
            taken_at: stored.taken.at,
            taken_location: stored.taken.location,
            uploaded_by: uploaded_by.to_owned(),
        };
        let existed = self
            .store
            .record_media(&stored.hash, &info, uploaded_by)
            .await?;
        // where and when a photo was taken is personal: never in the log
        tracing::info!(
            content_hash = %stored.hash,
            media_type = stored.media_type,
            size = stored.size,
            existed,
            exif_time = info.taken_at.is_some(),
            exif_gps = info.taken_location.is_some(),
            "media uploaded"
        );
        Ok((
            v1::Attachment {
                content_hash: stored.hash,
                media_type: info.media_type,
                size: info.size,
                url: String::new(),
                taken_at: info.taken_at.map(proto::convert::timestamp),
                taken_location: info.taken_location.map(|p| v1::Location {
                    lat: p.lat,
                    lon: p.lon,
                    crs: v1::Crs::Wgs84.into(),
                }),
            },
            existed,
        ))
    }

    /// The case `case_id` names, for a caller who may see it; NOT_FOUND otherwise, as for the
    /// case itself.
    pub(crate) async fn visible_case(
        &self,
        who: &Principal,
        case_id: &str,
    ) -> ApiResult<CaseRecord> {
        let case_id: domain::CaseId = case_id
            .trim()
            .parse()
            .map_err(|_| ApiError::invalid("case_id", "not a case id"))?;
        self.store
            .get_case(case_id)
            .await?
            .filter(|c| who.can_see(c))
            .ok_or_else(|| ApiError::NotFound("no such case, or no such file on it".into()))
    }

    /// A file `case` refers to: one of its report's own, or (with `results`) one a unit
    /// attached to a result or a check. NOT_FOUND for any other.
    pub(crate) async fn media_of_case(
        &self,
        case: &CaseRecord,
        hash: &str,
        results: bool,
    ) -> ApiResult<Found> {
        let missing = || ApiError::NotFound("no such case, or no such file on it".into());
        let on_report = case.attachments.iter().any(|a| a.content_hash == hash);
        let referred = on_report
            || (results
                && self
                    .store
                    .case_events(case.case_id)
                    .await?
                    .iter()
                    .any(|e| e.data.to_string().contains(hash)));
        if !referred {
            return Err(missing());
        }
        let known = self.store.media(&[hash.to_owned()]).await?;
        let info = known.get(hash).ok_or_else(missing)?;
        let bytes = self.media.get(hash).await.map_err(media_error)?;
        Ok(Found {
            media_type: info.media_type.clone(),
            bytes,
        })
    }
}

#[tonic::async_trait]
impl v1::media_service_server::MediaService for Media {
    async fn upload(
        &self,
        req: Request<Streaming<v1::UploadRequest>>,
    ) -> Result<Response<v1::UploadResponse>, Status> {
        let who = principal(&req)?;
        let _permit = self.ctx.open_stream(&who)?;
        let max = self.ctx.media.max_bytes;
        let mut stream = req.into_inner();
        let mut bytes = Vec::new();
        while let Some(part) = stream.next().await {
            let part = part?;
            if bytes.len() + part.chunk.len() > max {
                return Err(media_error(MediaError::TooLarge(max)).into());
            }
            bytes.extend_from_slice(&part.chunk);
        }
        let (attachment, existed) = self.ctx.take_media(&who.subject, bytes).await?;
        Ok(Response::new(v1::UploadResponse {
            attachment: Some(attachment),
            existed,
        }))
    }

    type DownloadStream = ServerStream<v1::DownloadResponse>;

    async fn download(
        &self,
        req: Request<v1::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let hash = content_hash_arg(&r.content_hash)?;
        let case = self.ctx.visible_case(&who, &r.case_id).await?;
        let found = self.ctx.media_of_case(&case, &hash, true).await?;
        let size = found.bytes.len() as u64;
        let chunks: Vec<v1::DownloadResponse> = found
            .bytes
            .chunks(DOWNLOAD_CHUNK)
            .enumerate()
            .map(|(i, c)| v1::DownloadResponse {
                media_type: if i == 0 {
                    found.media_type.clone()
                } else {
                    String::new()
                },
                size: if i == 0 { size } else { 0 },
                chunk: c.to_vec(),
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }
}
