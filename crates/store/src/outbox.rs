//! The outbox: queue entries written in the transaction that decided them, published to Redis
//! by the relay after the commit (ADR 0011). Published rows are pruned by age.

use chrono::{DateTime, Utc};
use queue::Message;
use sqlx::PgConnection;

use crate::writer::CaseTx;
use crate::{Result, Store};

/// Writes `messages` in one statement. Ids follow the order given: the relay publishes each
/// stream in id order.
pub(crate) async fn write<'m>(
    conn: &mut PgConnection,
    messages: impl Iterator<Item = &'m Message>,
    now: DateTime<Utc>,
) -> Result<()> {
    let (streams, payloads): (Vec<String>, Vec<serde_json::Value>) = messages
        // every message's stream is one the relay publishes to
        .map(|m| (m.stream().outbox_name().unwrap_or_default(), m.to_json()))
        .unzip();
    if streams.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO outbox (stream, payload, created_at)
         SELECT s, p, $3 FROM UNNEST($1::text[], $2::jsonb[]) WITH ORDINALITY AS x(s, p, n)
          ORDER BY n",
    )
    .bind(&streams)
    .bind(&payloads)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// An outbox row claimed for publishing: its message, or why it is not one.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub message: std::result::Result<Message, String>,
}

impl CaseTx {
    /// Claims the oldest unpublished outbox rows that no other relay holds.
    pub async fn claim_outbox(&mut self, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows: Vec<(i64, String, serde_json::Value)> = sqlx::query_as(
            "SELECT id, stream, payload FROM outbox WHERE published_at IS NULL
              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, stream, payload)| OutboxRow {
                id,
                message: Message::from_outbox(&stream, &payload),
            })
            .collect())
    }

    pub async fn mark_published(&mut self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET published_at = $2 WHERE id = ANY($1)")
            .bind(ids)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

impl Store {
    /// Drops published outbox rows older than `age`; the relay's housekeeping.
    pub async fn prune_outbox(&self, older_than: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM outbox WHERE published_at < $1")
            .bind(older_than)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
