//! What the Redis queue tests share: a queue under a fresh random key prefix that deletes
//! every key under it when dropped, even after a panic, so tests can run in parallel against
//! one server.
#![allow(dead_code)] // each test file uses its own share of these

use domain::region::{RegionCode, UnitCode};
use gd_queue::{Queue, Stream};
use redis::Value;

pub const COUNTY: &str = "360102";
pub const GROUP: &str = "router";

pub fn intake(county: &str) -> Stream {
    Stream::Intake(RegionCode::parse(county).unwrap())
}

pub fn inbox(unit: &str) -> Stream {
    Stream::Inbox(UnitCode::parse(unit).unwrap())
}

pub fn dead(county: &str) -> Stream {
    Stream::Dead(RegionCode::parse(county).unwrap())
}

pub fn redis_url() -> String {
    std::env::var("GD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A queue under its own prefix; dropping it deletes the prefix's keys.
pub struct Ctx {
    pub q: Queue,
    pub url: String,
}

impl Ctx {
    pub async fn new() -> Ctx {
        let url = redis_url();
        let prefix = format!("gdtest-{}", uuid::Uuid::new_v4().simple());
        let q = Queue::connect(&url, &prefix)
            .await
            .expect("Redis must answer for these tests (deploy/local-services.sh starts it)");
        Ctx { q, url }
    }

    /// SCAN prefix:* + DEL. Synchronous so that `Drop` can run it after a panic too.
    pub fn purge(&self) -> usize {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let pattern = format!("{}:*", self.q.prefix());
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
                .expect("SCAN");
            if !keys.is_empty() {
                let n: usize = redis::cmd("DEL").arg(&keys).query(&mut conn).expect("DEL");
                deleted += n;
            }
            if next == 0 {
                return deleted;
            }
            cursor = next;
        }
    }

    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Number of entries pending in `group` (XPENDING summary form).
    pub async fn pending(&self, key: &str, group: &str) -> i64 {
        let reply: Value = redis::cmd("XPENDING")
            .arg(key)
            .arg(group)
            .query_async(&mut self.raw().await)
            .await
            .unwrap();
        match reply {
            Value::Array(parts) => match parts.first() {
                Some(Value::Int(n)) => *n,
                other => panic!("XPENDING count: {other:?}"),
            },
            other => panic!("XPENDING: {other:?}"),
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.purge();
    }
}

pub fn batch(key: &str, payloads: &[&str]) -> Vec<(String, String)> {
    payloads
        .iter()
        .map(|p| (key.to_owned(), (*p).to_owned()))
        .collect()
}
