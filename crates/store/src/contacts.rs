//! Reporters' contacts: sealed by the server before they get here (the store never holds the
//! key), one row per case beside it, with the masked form that anyone who may see the case
//! is shown. Purged after the retention period; resealed under the current key by the server's
//! sweep when keys rotate.

use chrono::{DateTime, Utc};
use domain::CaseId;
use domain::source::Contact;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Result, Store};

/// A contact as the server sealed it: the key's id, the nonce and ciphertext (with its tag) in
/// one byte string, and the masked form in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedContact {
    pub key_id: String,
    pub sealed: Vec<u8>,
    pub masked: Contact,
}

/// A stored contact and its case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContact {
    pub case_id: CaseId,
    pub contact: SealedContact,
}

pub(crate) async fn insert(
    conn: &mut PgConnection,
    rows: &[(CaseId, &SealedContact)],
    now: DateTime<Utc>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO case_contacts (case_id, key_id, sealed, masked, stored_at)
         SELECT c, k, s, m, $5 FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[])
             AS x(c, k, s, m)",
    )
    .bind(rows.iter().map(|(c, _)| c.uuid()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|(_, s)| s.key_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|(_, s)| s.sealed.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|(_, s)| serde_json::to_value(&s.masked).expect("a contact serialises"))
            .collect::<Vec<_>>(),
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

type ContactRow = (Uuid, String, Vec<u8>, serde_json::Value);

fn stored((case_id, key_id, sealed, masked): ContactRow) -> Result<StoredContact> {
    Ok(StoredContact {
        case_id: case_id.into(),
        contact: SealedContact {
            key_id,
            sealed,
            masked: serde_json::from_value(masked)
                .map_err(|e| crate::rows::corrupt("case_contacts.masked", e))?,
        },
    })
}

impl Store {
    /// The reporter's contact of a case, if one was given and not yet purged.
    pub async fn contact(&self, case: CaseId) -> Result<Option<StoredContact>> {
        let row: Option<ContactRow> = sqlx::query_as(
            "SELECT case_id, key_id, sealed, masked FROM case_contacts
              WHERE case_id = $1",
        )
        .bind(case.uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored).transpose()
    }

    /// Deletes the contacts of cases closed and untouched since before `cutoff`: the
    /// retention rule (PIPL: keep personal data the shortest time). Returns how many went.
    pub async fn purge_contacts(&self, cutoff: DateTime<Utc>, limit: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM case_contacts WHERE case_id IN (
                 SELECT k.case_id FROM case_contacts k JOIN cases c USING (case_id)
                  WHERE c.status = 'CLOSED' AND c.updated_at < $1
                  LIMIT $2)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` contacts sealed under a key other than `current`, for resealing.
    pub async fn contacts_not_under(
        &self,
        current: &str,
        limit: i64,
    ) -> Result<Vec<StoredContact>> {
        let rows: Vec<ContactRow> = sqlx::query_as(
            "SELECT case_id, key_id, sealed, masked FROM case_contacts
              WHERE key_id <> $1 ORDER BY case_id LIMIT $2",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored).collect()
    }

    /// Replaces a contact's sealed bytes, if it is still sealed under `old_key` (a concurrent
    /// sweep may have got there first). Returns whether it was replaced.
    pub async fn reseal_contact(
        &self,
        case: CaseId,
        old_key: &str,
        new: &SealedContact,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE case_contacts SET key_id = $3, sealed = $4
              WHERE case_id = $1 AND key_id = $2",
        )
        .bind(case.uuid())
        .bind(old_key)
        .bind(&new.key_id)
        .bind(&new.sealed)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
