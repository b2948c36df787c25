//! This machine's own baselines, measured in the same run before the load: a single-row
//! Postgres INSERT and a Redis stream round trip.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{BenchArgs, Samples};

pub(super) async fn postgres(args: &BenchArgs) -> anyhow::Result<f64> {
    let admin_url = match args.database_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/postgres"),
        None => bail!("database url has no database name"),
    };
    let db = "griddispatch_bench_baseline";
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await?;
    let url = format!("{}/{db}", admin_url.rsplit_once('/').map_or("", |x| x.0));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(args.baseline_concurrency).unwrap_or(32))
        .connect(&url)
        .await?;
    sqlx::query("CREATE TABLE reports (id uuid PRIMARY KEY, payload jsonb NOT NULL)")
        .execute(&pool)
        .await?;
    let payload = serde_json::json!({
        "grid_code": "360102001001001", "category": "0501", "title": "压测上报", "description": "bench",
        "location": {"lat": 28.68, "lon": 115.89, "crs": "WGS84"}, "occurred_at": "2026-11-27T00:00:00Z",
        "attachments": [{"content_hash": "ab".repeat(32), "media_type": "image/jpeg", "size": 120000, "url": "https://objects.invalid/photos/1.jpg"}]
    });
    let postmaster = super::observe::postmaster(&pool).await;
    let cpu0 = super::observe::CpuSplit::read(None, postmaster);
    let started = Instant::now();
    let window = Duration::from_secs(args.baseline_secs);
    let mut tasks = Vec::new();
    for _ in 0..args.baseline_concurrency {
        let pool = pool.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < window {
                if sqlx::query("INSERT INTO reports VALUES ($1, $2)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(&payload)
                    .execute(&pool)
                    .await
                    .is_ok()
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = total as f64 / secs;
    let cpu1 = super::observe::CpuSplit::read(None, postmaster);
    println!(
        "-- the INSERT baseline's CPU ({total} rows, concurrency {})",
        args.baseline_concurrency
    );
    cpu0.print(&cpu1, secs, total, "INSERT");
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    Ok(rate)
}

/// Producers XADD (one command per round trip, at the bench's concurrency); one consumer
/// reads with XREADGROUP COUNT 100 and XACKs. Answers messages/s and the p99 time from XADD
/// to XACK.
pub(super) async fn redis(args: &BenchArgs) -> anyhow::Result<(f64, f64)> {
    let client = redis::Client::open(args.redis_url.as_str())?;
    let key = format!("gd-bench-baseline:{}", uuid::Uuid::now_v7());
    let mut c = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await?;
    let started = Instant::now();
    let window = Duration::from_secs(args.baseline_secs);
    let payload = "x".repeat(480);
    let mut producers = Vec::new();
    for _ in 0..args.baseline_concurrency {
        let mut c = client.get_multiplexed_async_connection().await?;
        let key = key.clone();
        let payload = payload.clone();
        producers.push(tokio::spawn(async move {
            while started.elapsed() < window {
                let t = started.elapsed().as_micros().to_string();
                let _: Result<String, _> = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("t")
                    .arg(&t)
                    .arg("d")
                    .arg(&payload)
                    .query_async(&mut c)
                    .await;
            }
        }));
    }
    let mut consumer = client.get_multiplexed_async_connection().await?;
    let mut lat = Samples::default();
    let mut n = 0u64;
    while started.elapsed() < window + Duration::from_millis(500) {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut consumer)
            .await
            .unwrap_or_default();
        let mut ids = Vec::new();
        for k in reply.keys {
            for e in k.ids {
                if let Some(redis::Value::BulkString(t)) = e.map.get("t")
                    && let Ok(us) = String::from_utf8_lossy(t).parse::<u64>()
                {
                    lat.add(started.elapsed().saturating_sub(Duration::from_micros(us)));
                }
                ids.push(e.id);
            }
        }
        if !ids.is_empty() {
            n += ids.len() as u64;
            let _: Result<i64, _> = redis::cmd("XACK")
                .arg(&key)
                .arg("g")
                .arg(&ids)
                .query_async(&mut consumer)
                .await;
        }
    }
    for p in producers {
        let _ = p.await;
    }
    let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut consumer).await;
    Ok((n as f64 / window.as_secs_f64(), lat.p(0.99)))
}
