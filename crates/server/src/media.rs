//! Photos, videos and voice notes (ADR 0034): bytes in an object store under their SHA-256,
//! their type read from the bytes themselves, a size limit, and a row in `media` that says they
//! are there.

use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest as _, Sha256};

/// The types a case may carry: photos, short videos and voice notes as phones record them.
const ALLOWED: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heif",
    "video/mp4",
    "video/quicktime",
    "audio/amr",
    "audio/mpeg",
    "audio/x-m4a",
    "audio/aac",
];

/// The default largest file: a phone photo or a short clip.
pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;

/// Where media bytes live.
#[derive(Clone)]
pub struct MediaStore {
    objects: Arc<dyn ObjectStore>,
    pub max_bytes: usize,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MediaStore({}, max {} bytes)",
            self.objects, self.max_bytes
        )
    }
}

/// Why bytes were not taken.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("empty: no bytes were sent")]
    Empty,
    #[error("larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("not a photo, video or voice note this service takes ({0})")]
    Type(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
}

/// Lowercase hex SHA-256 of `bytes`.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The type of `bytes` from their first bytes, when it is one this service takes.
pub fn sniff(bytes: &[u8]) -> Result<&'static str, MediaError> {
    match infer::get(bytes) {
        Some(t) if ALLOWED.contains(&t.mime_type()) => Ok(t.mime_type()),
        Some(t) => Err(MediaError::Type(t.mime_type().to_owned())),
        None => Err(MediaError::Type("unrecognised bytes".to_owned())),
    }
}

impl MediaStore {
    /// Media in a local folder (made if missing).
    pub fn local(dir: &Path, max_bytes: usize) -> Result<MediaStore, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("making the media folder {}: {e}", dir.display()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("the media folder {}: {e}", dir.display()))?;
        Ok(MediaStore {
            objects: Arc::new(fs),
            max_bytes,
        })
    }

    /// Media in an S3-compatible bucket. Credentials are `credentials` (key id, secret) or
    /// else come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or the other `AWS_*`
    /// variables the builder reads); `endpoint` names a store other than AWS (MinIO, Ceph, a
    /// cloud's S3 service), path-style.
    pub fn s3(
        bucket: &str,
        endpoint: Option<&str>,
        region: &str,
        credentials: Option<(&str, &str)>,
        max_bytes: usize,
    ) -> Result<MediaStore, String> {
        // the S3 client speaks TLS with ring, gridd's one crypto provider (already the
        // default when the listener's TLS set it)
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(region);
        if let Some((id, secret)) = credentials {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        if let Some(e) = endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let s3 = b
            .build()
            .map_err(|e| format!("the S3 bucket {bucket}: {e}"))?;
        Ok(MediaStore {
            objects: Arc::new(s3),
            max_bytes,
        })
    }

    /// Media in any object store.
    #[must_use]
    pub fn new(objects: Arc<dyn ObjectStore>, max_bytes: usize) -> MediaStore {
        MediaStore { objects, max_bytes }
    }

    fn path(hash: &str) -> ObjectPath {
        ObjectPath::from(format!("media/{}/{hash}", &hash[..2]))
    }

    /// Checks and stores `bytes` under their hash; answers the hash and the type. Storing the
    /// same bytes twice writes the same object twice, which changes nothing.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<(String, &'static str), MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(MediaError::TooLarge(self.max_bytes));
        }
        let media_type = sniff(&bytes)?;
        let hash = content_hash(&bytes);
        self.objects.put(&Self::path(&hash), bytes.into()).await?;
        Ok((hash, media_type))
    }

    /// The bytes stored under `hash`.
    pub async fn get(&self, hash: &str) -> Result<bytes::Bytes, MediaError> {
        Ok(self.objects.get(&Self::path(hash)).await?.bytes().await?)
    }
}
