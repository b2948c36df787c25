//! The `media` table: which uploaded files exist, what they are and who sent them first.

use crate::{Result, Store};

impl Store {
    /// Records an uploaded file; answers true when it was recorded before (the same bytes).
    pub async fn record_media(
        &self,
        hash: &str,
        media_type: &str,
        size: u64,
        uploaded_by: &str,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO media (content_hash, media_type, size, uploaded_by)
             VALUES ($1, $2, $3, $4) ON CONFLICT (content_hash) DO NOTHING",
        )
        .bind(hash)
        .bind(media_type)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(uploaded_by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 0)
    }

    /// The type and size of each of `hashes` that was uploaded, by hash.
    pub async fn media(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, (String, u64)>> {
        if hashes.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT content_hash, media_type, size FROM media WHERE content_hash = ANY($1)",
        )
        .bind(hashes)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(h, t, s)| (h, (t, u64::try_from(s).unwrap_or(0))))
            .collect())
    }
}
