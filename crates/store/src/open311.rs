//! The Open311 facade's client keys: issued, listed, revoked, and found by the key's hash.

use chrono::{DateTime, Utc};
use domain::region::RegionCode;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::cases::Actor;
use crate::registry::audit;
use crate::rows::corrupt;
use crate::{Result, Store};

/// A client of the facade, as gridd acts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open311Client {
    pub id: Uuid,
    pub name: String,
    pub region: RegionCode,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

type Row = (Uuid, String, String, DateTime<Utc>, Option<DateTime<Utc>>);

fn client(r: Row) -> Result<Open311Client> {
    Ok(Open311Client {
        id: r.0,
        name: r.1,
        region: RegionCode::parse(&r.2).map_err(|e| corrupt("open311_keys.region", e))?,
        created_at: r.3,
        revoked_at: r.4,
    })
}

/// The digest a key is found by.
#[must_use]
pub fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl Store {
    /// Records a new client whose key is `key` (made by the caller, shown once), with its
    /// audit row.
    pub async fn issue_open311_key(
        &self,
        name: &str,
        region: &RegionCode,
        key: &str,
        actor: &Actor,
    ) -> Result<Open311Client> {
        let mut tx = self.pool.begin().await?;
        let row: Row = sqlx::query_as(
            "INSERT INTO open311_keys (id, name, region, secret_hash) VALUES ($1, $2, $3, $4)
             RETURNING id, name, region, created_at, revoked_at",
        )
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(region.as_str())
        .bind(key_hash(key))
        .fetch_one(&mut *tx)
        .await?;
        let c = client(row)?;
        audit(
            &mut tx,
            actor,
            "open311_key_issued",
            &format!("open311:{}", c.id),
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Revokes a client's key; answers false when no such client holds a live key.
    pub async fn revoke_open311_key(&self, id: Uuid, actor: &Actor) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE open311_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit(
            &mut tx,
            actor,
            "open311_key_revoked",
            &format!("open311:{id}"),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn list_open311_keys(&self) -> Result<Vec<Open311Client>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, region, created_at, revoked_at FROM open311_keys ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(client).collect()
    }

    /// The live client holding `key`, if any.
    pub async fn open311_client(&self, key: &str) -> Result<Option<Open311Client>> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, name, region, created_at, revoked_at FROM open311_keys
              WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash(key))
        .fetch_optional(&self.pool)
        .await?;
        row.map(client).transpose()
    }

    /// The case a report's idempotency key made (the facade's `token`).
    pub async fn case_by_idempotency_key(&self, key: Uuid) -> Result<Option<domain::CaseId>> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT case_id FROM idempotency_keys WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(domain::CaseId::from))
    }
}
