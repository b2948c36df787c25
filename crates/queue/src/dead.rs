//! Dead letters: entries the router gave up on, kept with the reason, listed for an operator
//! and re-driven by one.

use redis::Value;

use crate::reply::{dead_letter_from, parse_entries};
use crate::{DATA_FIELD, DeadLetter, Entry, Queue, QueueError};

impl Queue {
    /// Moves an entry to the dead-letter stream of its county (fields: data, source_key,
    /// source_id, deliveries, reason), then acks it — one MULTI/EXEC, so the entry is never
    /// both lost and acknowledged. The dead-letter key and the entry's key share the county
    /// hash tag.
    pub async fn dead_letter(
        &self,
        entry: &Entry,
        group: &str,
        reason: &str,
    ) -> Result<(), QueueError> {
        let dead_key = self.key(
            &self
                .stream_of(&entry.key)
                .ok_or_else(|| {
                    QueueError::Malformed(format!("{} is not a stream of this queue", entry.key))
                })?
                .dead_letters(),
        );
        redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&dead_key)
            .arg("*")
            .arg(DATA_FIELD)
            .arg(&entry.payload)
            .arg("source_key")
            .arg(&entry.key)
            .arg("source_id")
            .arg(&entry.id)
            .arg("deliveries")
            .arg(entry.deliveries)
            .arg("reason")
            .arg(reason)
            .cmd("XACK")
            .arg(&entry.key)
            .arg(group)
            .arg(&entry.id)
            .cmd("XDEL")
            .arg(&entry.key)
            .arg(&entry.id)
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Dead letters of a county, oldest first (XRANGE).
    pub async fn list_dead(
        &self,
        dead_key: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let reply: Value = redis::cmd("XRANGE")
            .arg(dead_key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(parse_entries(reply)?
            .into_iter()
            .filter_map(|raw| raw.fields.map(|fields| dead_letter_from(raw.id, &fields)))
            .collect())
    }

    /// Re-drives a dead letter: XADD its payload back to its source key and XDEL it from the
    /// dead stream (MULTI/EXEC). `false` when no such dead letter exists.
    ///
    /// Two operators re-driving the same letter at once may both re-queue it; consumers are
    /// idempotent, so the copy is acknowledged and dropped.
    pub async fn redrive(&self, dead_key: &str, id: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let reply: Value = redis::cmd("XRANGE")
            .arg(dead_key)
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        let Some(fields) = parse_entries(reply)?
            .into_iter()
            .find(|raw| raw.id == id)
            .and_then(|raw| raw.fields)
        else {
            return Ok(false);
        };
        let letter = dead_letter_from(id.to_owned(), &fields);
        if letter.source_key.is_empty() {
            return Err(QueueError::Malformed(format!(
                "dead letter {id} in {dead_key} has no source_key"
            )));
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(crate::xadd_cmd(
                &letter.source_key,
                &letter.payload,
                self.cap_of(&letter.source_key),
            ))
            .cmd("XDEL")
            .arg(dead_key)
            .arg(id);
        pipe.exec_async(&mut conn).await?;
        Ok(true)
    }
}
