//! MediaService: photos, videos and voice notes uploaded by grid workers, residents' apps and
//! units, downloaded by those who may see a case that refers to them (ADR 0034).

use futures::StreamExt as _;
use proto::v1;
use tonic::{Request, Response, Status, Streaming};

use super::Ctx;
use super::streams::ServerStream;
use crate::auth::principal;
use crate::error::ApiError;
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

fn media_error(e: MediaError) -> ApiError {
    match e {
        MediaError::Store(e) => ApiError::Unavailable(format!("object store: {e}")),
        other => ApiError::invalid("chunk", other.to_string()),
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
        let media = &self.ctx.media;
        let mut stream = req.into_inner();
        let mut bytes = Vec::new();
        while let Some(part) = stream.next().await {
            let part = part?;
            if bytes.len() + part.chunk.len() > media.max_bytes {
                return Err(media_error(MediaError::TooLarge(media.max_bytes)).into());
            }
            bytes.extend_from_slice(&part.chunk);
        }
        let size = bytes.len() as u64;
        let (hash, media_type) = media.put(bytes).await.map_err(media_error)?;
        let existed = self
            .ctx
            .store
            .record_media(&hash, media_type, size, &who.subject)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(content_hash = %hash, media_type, size, existed, "media uploaded");
        Ok(Response::new(v1::UploadResponse {
            attachment: Some(v1::Attachment {
                content_hash: hash,
                media_type: media_type.to_owned(),
                size,
                url: String::new(),
            }),
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
        let missing = || ApiError::NotFound("no such case, or no such file on it".into());
        let case_id: domain::CaseId = r
            .case_id
            .parse()
            .map_err(|_| ApiError::invalid("case_id", "not a case id"))?;
        let hash = r.content_hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid("content_hash", "64 hex digits (SHA-256)").into());
        }
        let case = self
            .ctx
            .store
            .get_case(case_id)
            .await
            .map_err(ApiError::from)?
            .filter(|c| who.can_see(c))
            .ok_or_else(missing)?;
        // the report's own files, or any a unit attached to a result or a check
        let on_report = case.attachments.iter().any(|a| a.content_hash == hash);
        let on_events = on_report
            || self
                .ctx
                .store
                .case_events(case_id)
                .await
                .map_err(ApiError::from)?
                .iter()
                .any(|e| e.data.to_string().contains(&hash));
        if !on_events {
            return Err(missing().into());
        }
        let known = self
            .ctx
            .store
            .media(std::slice::from_ref(&hash))
            .await
            .map_err(ApiError::from)?;
        let Some((media_type, size)) = known.get(&hash).cloned() else {
            return Err(missing().into());
        };
        let bytes = self.ctx.media.get(&hash).await.map_err(media_error)?;
        let chunks: Vec<v1::DownloadResponse> = bytes
            .chunks(DOWNLOAD_CHUNK)
            .enumerate()
            .map(|(i, c)| v1::DownloadResponse {
                media_type: if i == 0 {
                    media_type.clone()
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
