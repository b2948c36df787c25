//! The `media` table: which uploaded files exist, what they are, what a photo's EXIF says of
//! when and where it was taken, and who sent them first.

use chrono::{DateTime, Utc};
use domain::geo::LatLon;

use crate::{Result, Store};

/// One uploaded file, as gridd recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub media_type: String,
    pub size: u64,
    /// When the photo's EXIF says it was taken.
    pub taken_at: Option<DateTime<Utc>>,
    /// Where its EXIF GPS says, WGS-84.
    pub taken_location: Option<LatLon>,
    /// Who sent these bytes first (answered by [`Store::media`]; ignored when recording).
    pub uploaded_by: String,
}

impl Store {
    /// Records an uploaded file; answers true when it was recorded before (the same bytes).
    pub async fn record_media(
        &self,
        hash: &str,
        info: &MediaInfo,
        uploaded_by: &str,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO media (content_hash, media_type, size, uploaded_by, taken_at, taken_lat, \
             taken_lon) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (content_hash) DO NOTHING",
        )
        .bind(hash)
        .bind(&info.media_type)
        .bind(i64::try_from(info.size).unwrap_or(i64::MAX))
        .bind(uploaded_by)
        .bind(info.taken_at)
        .bind(info.taken_location.map(|p| p.lat))
        .bind(info.taken_location.map(|p| p.lon))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 0)
    }

    /// Each of `hashes` that was uploaded, by hash.
    pub async fn media(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, MediaInfo>> {
        if hashes.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        type Row = (
            String,
            String,
            i64,
            Option<DateTime<Utc>>,
            Option<f64>,
            Option<f64>,
            String,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT content_hash, media_type, size, taken_at, taken_lat, taken_lon, uploaded_by \
             FROM media WHERE content_hash = ANY($1)",
        )
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(h, media_type, size, taken_at, lat, lon, uploaded_by)| {
                let info = MediaInfo {
                    media_type,
                    size: u64::try_from(size).unwrap_or(0),
                    taken_at,
                    taken_location: lat.zip(lon).map(|(lat, lon)| LatLon::new(lat, lon)),
                    uploaded_by,
                };
                (h, info)
            })
            .collect())
    }
}
