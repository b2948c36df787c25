//! The search for repeats (ADR 0044): the cases of one category in the geohash cells around a
//! point, reported since a time. One index probe per cell on `cases_spot`.

use chrono::{DateTime, Utc};
use domain::geo::LatLon;
use domain::policy::CategoryCode;
use domain::region::RegionCode;
use domain::repeat::Nearby;
use uuid::Uuid;

use crate::rows::corrupt;
use crate::{Result, Store};

impl Store {
    /// The cases of `category` in `county` whose cell is one of `cells`, reported at or after
    /// `since`, whatever their status: the domain picks the open one a report repeats and
    /// counts the spot's reports.
    pub async fn nearby(
        &self,
        county: &RegionCode,
        category: &CategoryCode,
        cells: &[String],
        since: DateTime<Utc>,
    ) -> Result<Vec<Nearby>> {
        let rows: Vec<(Uuid, f64, f64, DateTime<Utc>, String)> = sqlx::query_as(
            "SELECT case_id, lat, lon, reported_at, status FROM cases
              WHERE spot = ANY($1) AND category = $2 AND reported_at >= $3
                AND county_code = $4",
        )
        .bind(cells)
        .bind(category.as_str())
        .bind(since)
        .bind(county.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, lat, lon, reported_at, status)| {
                Ok(Nearby {
                    case_id: id.into(),
                    location: LatLon::new(lat, lon),
                    reported_at,
                    status: status.parse().map_err(|e| corrupt("status", e))?,
                })
            })
            .collect()
    }
}
