//! Redis Streams: the queues between tiers. Fed only by the outbox relay.
//!
//! Postgres is the record; these streams only carry work between tiers. Redis may lose
//! everything (it keeps nothing on disk here), so every queue can be rebuilt from Postgres,
//! and [`Queue::marker_present`] tells the service when that is needed.
//!
//! The streams, their keys and their messages are types ([`Stream`], [`Message`]): see
//! [`streams`]. Besides them the queue keeps one marker key, `{prefix}:rebuilt`, set once the
//! queues have been rebuilt from Postgres.

mod dead;
mod reply;
mod streams;

use reply::{field, malformed, parse_entries, parse_pending_deliveries, parse_read_reply, text};
pub use streams::{INBOX_MAXLEN, InboxMsg, IntakeMsg, Message, Stream};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, ServerErrorKind, Value};

/// Response timeout of the shared connection. redis-rs 1.x defaults to 500 ms, which short
/// commands exceed under a burst on two shared cores; a few seconds still fails fast when
/// Redis is really gone.
const SHARED_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a TCP connection before reporting Redis as unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest BLOCK a read may ask for; longer requests are clamped so that the blocking
/// connection's response timeout below always outlasts the server-side wait.
pub const MAX_BLOCK: Duration = Duration::from_secs(30);
/// Redis checks blocking-call timeouts only `hz` times a second and the reply still has to
/// travel back, so the client-side timeout keeps a generous margin over [`MAX_BLOCK`].
const BLOCKING_RESPONSE_TIMEOUT: Duration = Duration::from_secs(45);
/// Reconnection attempts before a command fails with `Unavailable`; see [`manager_config`].
const RECONNECT_RETRIES: usize = 3;
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Field that carries the payload of every entry we write.
const DATA_FIELD: &str = "data";
const NIL_ID: &str = "0-0";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("redis error: {0}")]
    Redis(String),
    #[error("malformed stream reply: {0}")]
    Malformed(String),
}

impl From<RedisError> for QueueError {
    fn from(err: RedisError) -> Self {
        // Callers retry `Unavailable` later (and rebuild if Redis came back empty), while a
        // `Redis` error points at a bug or bad data, so the split follows "is the server
        // reachable and serving", not the error's wording.
        let unavailable = err.is_io_error()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_connection_dropped()
            || matches!(
                err.kind(),
                ErrorKind::Server(ServerErrorKind::BusyLoading)
                    | ErrorKind::Server(ServerErrorKind::MasterDown)
                    | ErrorKind::Server(ServerErrorKind::ClusterDown)
            );
        if unavailable {
            QueueError::Unavailable(err.to_string())
        } else {
            QueueError::Redis(err.to_string())
        }
    }
}

/// One stream entry handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub id: String,
    pub payload: String,
    /// Times delivered to a group consumer (1 for a first read; 0 for plain XREAD).
    pub deliveries: u64,
}

impl Entry {
    /// The entry as an intake message.
    pub fn intake(&self) -> Result<IntakeMsg, QueueError> {
        serde_json::from_str(&self.payload)
            .map_err(|e| QueueError::Malformed(format!("intake entry {}: {e}", self.id)))
    }

    /// The entry as an inbox item.
    pub fn inbox(&self) -> Result<InboxMsg, QueueError> {
        serde_json::from_str(&self.payload)
            .map_err(|e| QueueError::Malformed(format!("inbox entry {}: {e}", self.id)))
    }
}

/// A dead letter, as listed for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    pub payload: String,
    pub source_key: String,
    pub reason: String,
    pub deliveries: u64,
}

/// Handle on the queues of one key prefix. Cheap to clone: clones share one connection,
/// which is only ever used for short commands.
#[derive(Clone)]
pub struct Queue {
    prefix: String,
    client: Client,
    conn: ConnectionManager,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A connection of its own for blocking reads. A BLOCK occupies the whole socket on the
/// server side, so it must never share one with short commands. Deliberately not `Clone`.
///
/// Dropping a read future half-way leaves the socket busy until the server-side BLOCK
/// elapses; only this connection's next read waits for it.
pub struct BlockingConn {
    conn: ConnectionManager,
}

/// Dedicated blocking connections open in this process (the metrics' Redis pool use).
static BLOCKING_OPEN: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// How many dedicated blocking connections this process holds open: one per worker loop and
/// per open queue watch, beside the one shared multiplexed connection.
#[must_use]
pub fn blocking_connections() -> i64 {
    BLOCKING_OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for BlockingConn {
    fn drop(&mut self) {
        BLOCKING_OPEN.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for BlockingConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConn").finish_non_exhaustive()
    }
}

impl Queue {
    /// Connects; the shared ConnectionManager gets a response timeout of a few seconds (the
    /// 500 ms default is too short under load).
    pub async fn connect(url: &str, prefix: &str) -> Result<Queue, QueueError> {
        let client = Client::open(url)?;
        let conn = ConnectionManager::new_with_config(
            client.clone(),
            manager_config(SHARED_RESPONSE_TIMEOUT),
        )
        .await?;
        Ok(Queue {
            prefix: prefix.to_owned(),
            client,
            conn,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of `stream`, e.g. `gd:intake:{360102}`.
    pub fn key(&self, stream: &Stream) -> String {
        stream.key(&self.prefix)
    }

    /// The stream a key of this queue names.
    pub fn stream_of(&self, key: &str) -> Option<Stream> {
        Stream::from_key(&self.prefix, key)
    }

    /// `{prefix}:rebuilt`.
    pub fn marker_key(&self) -> String {
        format!("{}:rebuilt", self.prefix)
    }

    /// Publishes each message to its stream (pipelined XADD, one round trip); answers the
    /// new ids in order.
    pub async fn publish(&self, messages: &[Message]) -> Result<Vec<String>, QueueError> {
        let entries: Vec<(String, String)> = messages
            .iter()
            .map(|m| (self.key(&m.stream()), m.to_json().to_string()))
            .collect();
        self.publish_raw(&entries).await
    }

    /// Pipelined XADD of `(key, payload)` entries (field `data` = payload); one round trip.
    /// The queue's own tests and its re-drive use it; the pipeline publishes [`Message`]s.
    /// A capped stream's key gets `MAXLEN ~` (inboxes are live fan-out only; the snapshot
    /// comes from Postgres); intake keys are never trimmed, because Redis 7.0 trimming would
    /// also drop entries still pending in the router's group. Returns the new ids in order.
    pub async fn publish_raw(
        &self,
        entries: &[(String, String)],
    ) -> Result<Vec<String>, QueueError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (key, payload) in entries {
            pipe.add_command(xadd_cmd(key, payload, self.cap_of(key)));
        }
        let ids: Vec<Value> = pipe.query_async(&mut self.conn.clone()).await?;
        if ids.len() != entries.len() {
            return Err(QueueError::Malformed(format!(
                "XADD pipeline answered {} ids for {} entries",
                ids.len(),
                entries.len()
            )));
        }
        ids.iter()
            .map(|v| text(v).ok_or_else(|| malformed("XADD id", v)))
            .collect()
    }

    /// The `MAXLEN ~` of a key's stream, if it is capped.
    pub(crate) fn cap_of(&self, key: &str) -> Option<usize> {
        self.stream_of(key).and_then(|s| s.cap())
    }

    /// XGROUP CREATE key group 0 MKSTREAM; an existing group (BUSYGROUP) is fine.
    ///
    /// The group starts at `0`, not `$`: when a stream is recreated after Redis lost its
    /// data, the relay may already have written entries that the router must not skip.
    pub async fn ensure_group(&self, key: &str, group: &str) -> Result<(), QueueError> {
        let res: Result<Value, RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A dedicated connection for blocking reads (its own socket, response timeout longer
    /// than any BLOCK we use), so a blocking XREAD never holds up the shared connection.
    ///
    /// A ConnectionManager rather than a bare multiplexed connection, so that a long-lived
    /// reader loop survives a Redis restart without rebuilding its connection by hand.
    pub async fn blocking_conn(&self) -> Result<BlockingConn, QueueError> {
        let config = manager_config(BLOCKING_RESPONSE_TIMEOUT);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        BLOCKING_OPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(BlockingConn { conn })
    }

    /// XREADGROUP GROUP group consumer COUNT count BLOCK block_ms STREAMS keys... > > ...;
    /// on NOGROUP for any key, ensure_group for all keys and retry once. deliveries = 1.
    ///
    /// A zero `block` polls without blocking; a `block` above [`MAX_BLOCK`] is clamped.
    /// All `keys` must share a hash tag if this ever runs against Redis Cluster.
    pub async fn read_group(
        &self,
        conn: &mut BlockingConn,
        keys: &[String],
        group: &str,
        consumer: &str,
        count: usize,
        block: std::time::Duration,
    ) -> Result<Vec<Entry>, QueueError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1));
        if let Some(ms) = block_millis(block) {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(keys);
        for _ in keys {
            cmd.arg(">");
        }

        let reply = match cmd.query_async::<Value>(&mut conn.conn).await {
            Ok(v) => v,
            // NOGROUP: the stream or its group is missing, typically because Redis restarted
            // empty. UNBLOCKED: the stream was deleted while we were blocked on it. Either
            // way, recreating the groups and reading again is the whole recovery.
            Err(e) if matches!(e.code(), Some("NOGROUP") | Some("UNBLOCKED")) => {
                tracing::info!(group, ?keys, error = %e, "recreating consumer groups");
                for key in keys {
                    self.ensure_group(key, group).await?;
                }
                cmd.query_async::<Value>(&mut conn.conn).await?
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for (key, entries) in parse_read_reply(reply)? {
            for raw in parse_entries(entries)? {
                if let Some(fields) = raw.fields {
                    out.push(Entry {
                        key: key.clone(),
                        id: raw.id,
                        payload: field(&fields, DATA_FIELD).unwrap_or_default(),
                        deliveries: 1,
                    });
                }
            }
        }
        Ok(out)
    }

    /// XAUTOCLAIM key group consumer min_idle_ms 0-0 COUNT count, parsed by hand (Redis 7
    /// replies with a third element, the deleted ids, which must be tolerated; entries whose
    /// fields are nil/deleted are skipped), then XPENDING to fill in each claimed entry's
    /// delivery count (after the claim, which increments it). Loops the cursor until it
    /// returns to 0-0 or `count` entries are collected. NOGROUP → ensure_group and return
    /// empty.
    pub async fn autoclaim(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        min_idle: std::time::Duration,
        count: usize,
    ) -> Result<Vec<Entry>, QueueError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let min_idle_ms = u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.conn.clone();
        let mut cursor = NIL_ID.to_owned();
        let mut claimed: Vec<Entry> = Vec::new();
        let mut vanished: Vec<String> = Vec::new();
        loop {
            let res: Result<Value, RedisError> = redis::cmd("XAUTOCLAIM")
                .arg(key)
                .arg(group)
                .arg(consumer)
                .arg(min_idle_ms)
                .arg(&cursor)
                .arg("COUNT")
                .arg(count - claimed.len())
                .query_async(&mut conn)
                .await;
            let reply = match res {
                Ok(v) => v,
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.ensure_group(key, group).await?;
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e.into()),
            };
            let Value::Array(mut parts) = reply else {
                return Err(malformed("XAUTOCLAIM reply", &reply));
            };
            // [cursor, entries] before Redis 7, [cursor, entries, deleted ids] since. The
            // deleted ids were already dropped from the pending list by the server.
            if parts.len() < 2 {
                return Err(QueueError::Malformed(format!(
                    "XAUTOCLAIM reply with {} elements",
                    parts.len()
                )));
            }
            let entries = parts.swap_remove(1);
            let next = text(&parts[0]).ok_or_else(|| malformed("XAUTOCLAIM cursor", &parts[0]))?;
            for raw in parse_entries(entries)? {
                match raw.fields {
                    Some(fields) => claimed.push(Entry {
                        key: key.to_owned(),
                        id: raw.id,
                        payload: field(&fields, DATA_FIELD).unwrap_or_default(),
                        deliveries: 0,
                    }),
                    // Redis 6.2 hands back deleted entries with nil fields and keeps them
                    // pending forever; acknowledging them is the only way to stop that.
                    None => vanished.push(raw.id),
                }
            }
            if next == NIL_ID || claimed.len() >= count {
                break;
            }
            cursor = next;
        }

        if !vanished.is_empty() {
            redis::cmd("XACK")
                .arg(key)
                .arg(group)
                .arg(&vanished)
                .exec_async(&mut conn)
                .await?;
        }
        if claimed.is_empty() {
            return Ok(claimed);
        }

        // One exact-range XPENDING per claimed id, pipelined: a single `- + count` range
        // would start at the oldest pending entry, which need not be one we just claimed.
        let mut pipe = redis::pipe();
        for entry in &claimed {
            pipe.cmd("XPENDING")
                .arg(key)
                .arg(group)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1);
        }
        let pending: Vec<Value> = pipe.query_async(&mut conn).await?;
        if pending.len() != claimed.len() {
            return Err(QueueError::Malformed(format!(
                "XPENDING pipeline answered {} replies for {} ids",
                pending.len(),
                claimed.len()
            )));
        }
        let mut out = Vec::with_capacity(claimed.len());
        for (mut entry, reply) in claimed.into_iter().zip(pending) {
            // No longer pending: acknowledged by its previous owner between our claim and
            // this look-up, so the work is done and handing it out again would only repeat it.
            if let Some(n) = parse_pending_deliveries(&reply)? {
                entry.deliveries = n;
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// XACK then XDEL (so an acknowledged intake stream does not grow forever without
    /// trimming, which on Redis 7.0 could also cut away entries still pending). This assumes
    /// one consumer group per stream, which holds for intake.
    pub async fn ack(&self, key: &str, group: &str, ids: &[String]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(key)
            .arg(group)
            .arg(ids)
            .cmd("XDEL")
            .arg(key)
            .arg(ids)
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// The id of the newest entry of a stream, "0-0" when the stream is empty or missing.
    pub async fn last_id(&self, key: &str) -> Result<String, QueueError> {
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(parse_entries(reply)?
            .into_iter()
            .next()
            .map_or_else(|| NIL_ID.to_owned(), |raw| raw.id))
    }

    /// Plain XREAD COUNT count BLOCK block_ms STREAMS key after_id (deliveries = 0). Empty
    /// vec on timeout. A zero `block` polls; a `block` above [`MAX_BLOCK`] is clamped.
    pub async fn read_after(
        &self,
        conn: &mut BlockingConn,
        key: &str,
        after_id: &str,
        count: usize,
        block: std::time::Duration,
    ) -> Result<Vec<Entry>, QueueError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(count.max(1));
        if let Some(ms) = block_millis(block) {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(key).arg(after_id);
        let reply: Value = cmd.query_async(&mut conn.conn).await?;
        let mut out = Vec::new();
        for (stream, entries) in parse_read_reply(reply)? {
            for raw in parse_entries(entries)? {
                if let Some(fields) = raw.fields {
                    out.push(Entry {
                        key: stream.clone(),
                        id: raw.id,
                        payload: field(&fields, DATA_FIELD).unwrap_or_default(),
                        deliveries: 0,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Marker meaning "this Redis has been rebuilt from Postgres since it last started":
    /// `{prefix}:rebuilt`. A missing marker means Redis lost its data (or is new).
    pub async fn marker_present(&self) -> Result<bool, QueueError> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.marker_key())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n > 0)
    }

    /// Sets the marker; its value is the Unix time in seconds, only to help a human reading
    /// the key.
    pub async fn set_marker(&self) -> Result<(), QueueError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        redis::cmd("SET")
            .arg(self.marker_key())
            .arg(now)
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// XLEN.
    pub async fn len(&self, key: &str) -> Result<u64, QueueError> {
        Ok(redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// PING.
    pub async fn ping(&self) -> Result<(), QueueError> {
        redis::cmd("PING")
            .exec_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// Connection settings shared by both kinds of connection. Reconnection gives up after a
/// few quick attempts (about a second in all): a command issued while Redis is down waits
/// for those attempts, and callers would rather get `Unavailable` promptly (health checks,
/// the relay's retry loop) than hang for the library's default of six attempts.
fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(RECONNECT_RETRIES)
        .set_max_delay(RECONNECT_MAX_DELAY)
}

/// XADD with the payload in `data`, capped with `MAXLEN ~ cap` when given.
fn xadd_cmd(key: &str, payload: &str, cap: Option<usize>) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key);
    if let Some(cap) = cap {
        cmd.arg("MAXLEN").arg("~").arg(cap);
    }
    cmd.arg("*").arg(DATA_FIELD).arg(payload);
    cmd
}

/// BLOCK argument in milliseconds; `None` means "do not block" (BLOCK 0 would wait forever,
/// and would outlast any response timeout).
fn block_millis(block: Duration) -> Option<u64> {
    if block.is_zero() {
        return None;
    }
    let ms = block.min(MAX_BLOCK).as_millis();
    Some(u64::try_from(ms).unwrap_or(u64::MAX).max(1))
}

#[cfg(test)]
mod tests;
