//! Duty rosters (365天服務不打烊): one per unit, versioned, each change audited.

use chrono::{DateTime, Utc};
use domain::region::UnitCode;
use domain::roster::Roster;

use crate::cases::Actor;
use crate::registry::{audit, put_versioned};
use crate::rows::corrupt;
use crate::{Result, Store, StoreError};

impl Store {
    /// Stores `roster` for its unit (which must be in the registry) with the next version and
    /// an audit row; the same roster again changes nothing. Answers its version and time.
    pub async fn put_roster(&self, roster: &Roster, actor: &Actor) -> Result<(u64, DateTime<Utc>)> {
        roster.validate().map_err(|e| StoreError::Invalid {
            field: format!("roster.{}", e.field),
            reason: e.reason,
        })?;
        if self.get_unit(roster.unit.as_str()).await?.is_none() {
            return Err(StoreError::Invalid {
                field: "roster.unit_code".into(),
                reason: "not a unit in the registry".into(),
            });
        }
        let body = serde_json::to_value(roster).expect("a roster serialises");
        let mut tx = self.pool.begin().await?;
        let (version, at) =
            put_versioned(&mut tx, "rosters", "unit_code", roster.unit.as_str(), &body).await?;
        audit(
            &mut tx,
            actor,
            "put_roster",
            &format!("roster:{}", roster.unit),
        )
        .await?;
        tx.commit().await?;
        Ok((u64::try_from(version).unwrap_or_default(), at))
    }

    /// A unit's roster with its version and time, if it has one.
    pub async fn get_roster(
        &self,
        unit: &UnitCode,
    ) -> Result<Option<(Roster, u64, DateTime<Utc>)>> {
        let row: Option<(serde_json::Value, i64, DateTime<Utc>)> =
            sqlx::query_as("SELECT body, version, updated_at FROM rosters WHERE unit_code = $1")
                .bind(unit.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b, v, at)| {
            let r = serde_json::from_value(b).map_err(|e| corrupt("rosters.body", e))?;
            Ok((r, u64::try_from(v).unwrap_or_default(), at))
        })
        .transpose()
    }
}
