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

/// What a photo says of itself: when and where it was taken, from its EXIF (ADR 0035).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Taken {
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    pub location: Option<domain::geo::LatLon>,
}

/// The offset a camera's local time is read in when the photo does not say its own
/// (`OffsetTimeOriginal`): China Standard Time, the whole province's clock.
const LOCAL_OFFSET_SECS: i32 = 8 * 3600;

/// When and where a photo was taken, as far as its EXIF says. Anything missing, unreadable or
/// implausible (a date before 2000, a point off the globe or at 0°N 0°E) is left out: these
/// are evidence beside the report, never a reason to refuse it.
#[must_use]
pub fn taken(bytes: &[u8]) -> Taken {
    use exif::{In, Tag, Value};
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) else {
        return Taken::default();
    };
    let ascii = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(v)) => v.first().cloned(),
        _ => None,
    };
    let at = ascii(Tag::DateTimeOriginal)
        .or_else(|| ascii(Tag::DateTime))
        .and_then(|raw| {
            let mut t = exif::DateTime::from_ascii(&raw).ok()?;
            if let Some(off) = ascii(Tag::OffsetTimeOriginal) {
                // an unreadable offset leaves the local clock's
                let _ = t.parse_offset(&off);
            }
            let offset = chrono::FixedOffset::east_opt(
                t.offset.map_or(LOCAL_OFFSET_SECS, |m| i32::from(m) * 60),
            )?;
            let local = chrono::NaiveDate::from_ymd_opt(
                i32::from(t.year),
                u32::from(t.month),
                u32::from(t.day),
            )?
            .and_hms_opt(
                u32::from(t.hour),
                u32::from(t.minute),
                u32::from(t.second),
            )?;
            let at = local.and_local_timezone(offset).single()?;
            (t.year >= 2000).then(|| at.with_timezone(&chrono::Utc))
        });
    let degrees = |tag, reference, negative: u8| {
        let Some(Value::Rational(v)) = exif.get_field(tag, In::PRIMARY).map(|f| &f.value) else {
            return None;
        };
        if v.len() < 3 || v.iter().take(3).any(|r| r.denom == 0) {
            return None;
        }
        let d = v[0].to_f64() + v[1].to_f64() / 60.0 + v[2].to_f64() / 3600.0;
        let sign = match ascii(reference) {
            Some(r) if r.first() == Some(&negative) => -1.0,
            _ => 1.0,
        };
        Some(sign * d)
    };
    let location = degrees(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')
        .zip(degrees(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W'))
        .filter(|&(lat, lon)| {
            lat.abs() <= 90.0 && lon.abs() <= 180.0 && (lat.abs() > 1e-9 || lon.abs() > 1e-9)
        })
        // to 1e-7° (about a centimetre), finer than any phone's GPS: the point then reads
        // back from JSON as the same number
        .map(|(lat, lon)| domain::geo::LatLon::new(round7(lat), round7(lon)));
    Taken { at, location }
}

fn round7(d: f64) -> f64 {
    (d * 1e7).round() / 1e7
}

/// Bytes as they were stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub hash: String,
    pub media_type: &'static str,
    pub size: u64,
    pub taken: Taken,
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

    /// Checks and stores `bytes` under their hash; answers the hash, the type and what a
    /// photo's EXIF says. Storing the same bytes twice writes the same object twice, which
    /// changes nothing.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<Stored, MediaError> {
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(MediaError::TooLarge(self.max_bytes));
        }
        let media_type = sniff(&bytes)?;
        let hash = content_hash(&bytes);
        let taken = if media_type.starts_with("image/") {
            taken(&bytes)
        } else {
            Taken::default()
        };
        let size = bytes.len() as u64;
        self.objects.put(&Self::path(&hash), bytes.into()).await?;
        Ok(Stored {
            hash,
            media_type,
            size,
            taken,
        })
    }

    /// The bytes stored under `hash`.
    pub async fn get(&self, hash: &str) -> Result<bytes::Bytes, MediaError> {
        Ok(self.objects.get(&Self::path(hash)).await?.bytes().await?)
    }
}
