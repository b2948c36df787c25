//! The duty notifier (ADR 0043): when a case reaches a unit's queue, whoever is on duty there
//! (by its roster, ADR 0042) is called, one person at a time in call order and then the unit's
//! head, until the unit accepts the case. Each call goes through a [`Notifier`]: a signed
//! webhook first, with SMS and app push as later implementations of the same trait. A call is
//! retried with back-off and dead-lettered after its last attempt; every delivery of one call
//! carries the same delivery id, so the receiver can keep it once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::case::Event;
use domain::region::UnitCode;
use ring::hmac;
use serde::Serialize;
use store::{FeedRegion, NewNotice, Notice, Store};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::SharedClock;
use crate::pipeline::Directory;

/// What a receiver is told.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// The same for every delivery attempt of one call: the receiver keeps it once.
    pub delivery_id: String,
    pub case_id: String,
    /// The case event that put it in the unit's queue.
    pub case_version: i64,
    pub unit_code: String,
    /// The place in the call order: 0 is the first person on duty; the head comes last.
    pub step: i32,
    pub person_id: String,
    pub person_name: String,
}

/// A way to reach a person.
#[tonic::async_trait]
pub trait Notifier: Send + Sync {
    /// Delivers one call; an error is retried later.
    async fn deliver(&self, call: &Call) -> Result<(), String>;
}

/// POSTs each call as JSON, signed with HMAC-SHA256 over `"{timestamp}.{body}"`:
/// `X-GridDispatch-Timestamp` (Unix seconds), `X-GridDispatch-Signature: sha256=<hex>`,
/// `X-GridDispatch-Delivery: <delivery id>`. Any 2xx is delivered.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    key: hmac::Key,
}

impl Webhook {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(url: &str, secret: &[u8]) -> Result<Webhook, String> {
        // https webhooks use rustls with the ring provider, as the rest of gridd does
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Webhook {
            client,
            url: url.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The signature a receiver recomputes to check a call.
    #[must_use]
    pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        sign(&key, timestamp, body)
    }
}

fn sign(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

#[tonic::async_trait]
impl Notifier for Webhook {
    async fn deliver(&self, call: &Call) -> Result<(), String> {
        let body = serde_json::to_vec(call).map_err(|e| e.to_string())?;
        let ts = Utc::now().timestamp();
        let r = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-griddispatch-delivery", &call.delivery_id)
            .header("x-griddispatch-timestamp", ts.to_string())
            .header("x-griddispatch-signature", sign(&self.key, ts, &body))
            .body(body)
            .send()
            .await
            // the error without the URL: a webhook's URL may carry its own token
            .map_err(|e| format!("the webhook did not answer: {}", e.without_url()))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered HTTP {}", r.status().as_u16()))
        }
    }
}

/// How calls are made.
#[derive(Clone)]
pub struct NotifierOptions {
    pub notifier: Arc<dyn Notifier>,
    /// A delivered call unanswered this long (the unit has not accepted) calls the next person.
    pub answer_within: Duration,
    /// Deliveries of one call before it is dead-lettered.
    pub max_attempts: i32,
    /// The first retry's wait; each later one doubles, up to five minutes.
    pub retry_base: Duration,
    pub poll: Duration,
}

impl NotifierOptions {
    /// The webhook notifier the settings describe, if any.
    ///
    /// # Errors
    /// A URL without its secret file, an unreadable or empty secret, or a URL that is not
    /// http(s).
    pub fn from_config(cfg: &crate::config::Config) -> Result<Option<NotifierOptions>, String> {
        let Some(url) = cfg.notify_webhook_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "GRIDD_NOTIFY_WEBHOOK_URL: {url:?} is not an http(s) URL"
            ));
        }
        let file = cfg
            .notify_webhook_secret_file
            .as_ref()
            .ok_or("GRIDD_NOTIFY_WEBHOOK_URL needs GRIDD_NOTIFY_WEBHOOK_SECRET_FILE")?;
        let secret = std::fs::read(file)
            .map_err(|e| format!("GRIDD_NOTIFY_WEBHOOK_SECRET_FILE {}: {e}", file.display()))?;
        let secret = secret.trim_ascii();
        if secret.len() < 16 {
            return Err("GRIDD_NOTIFY_WEBHOOK_SECRET_FILE: at least 16 bytes of secret".into());
        }
        Ok(Some(NotifierOptions {
            notifier: Arc::new(Webhook::new(url, secret)?),
            answer_within: Duration::from_secs(cfg.notify_answer_secs.max(1)),
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
            poll: Duration::from_secs(1),
        }))
    }
}

/// The worker: turns the event feed into calls, delivers them, and calls the next person when
/// a call goes unanswered. Safe to run in several processes (the feed window and each call
/// are claimed in Postgres).
pub struct DutyNotifier {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub clock: SharedClock,
    pub options: NotifierOptions,
}

/// Calls claimed at a time.
const BATCH: i64 = 20;

/// The units an event puts the case in the queue of.
fn queued_at(e: &Event) -> Vec<&UnitCode> {
    match e {
        Event::Routed { unit, .. } => vec![unit],
        Event::CalledUp { to_unit, .. } | Event::Escalated { to_unit, .. } => vec![to_unit],
        Event::Returned {
            to_unit: Some(u), ..
        } => vec![u],
        Event::Dispatched {
            lead, assisting, ..
        } => std::iter::once(lead).chain(assisting).collect(),
        _ => Vec::new(),
    }
}

impl DutyNotifier {
    pub async fn run(self, shutdown: CancellationToken) {
        info!("duty notifier started");
        loop {
            if let Err(e) = self.step().await {
                warn!(error = %e, "the duty notifier's step failed; retrying");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.options.poll) => {}
            }
        }
        info!("duty notifier stopped");
    }

    /// Each stage on its own: one that fails does not hold up the others.
    async fn step(&self) -> Result<(), store::StoreError> {
        if let Err(e) = self.record_calls().await {
            warn!(error = %e, "reading the feed for duty calls failed");
        }
        if let Err(e) = self.deliver_due().await {
            warn!(error = %e, "delivering duty calls failed");
        }
        for n in self.store.settle_unanswered(self.clock.now(), 100).await? {
            info!(case_id = %n.case_id, unit = %n.unit_code, step = n.step, "call unanswered; calling the next person");
        }
        Ok(())
    }

    /// The calls of the feed's next window, recorded with the cursor.
    async fn record_calls(&self) -> Result<(), store::StoreError> {
        let from = self.store.notifier_cursor().await?;
        let events = self.store.feed_after(from, FeedRegion::All, 500).await?;
        let Some(to) = events.last().map(|e| e.pos) else {
            return Ok(());
        };
        let mut calls = Vec::new();
        for fe in &events {
            let Ok(event) = serde_json::from_value::<Event>(fe.event.data.clone()) else {
                continue;
            };
            for unit in queued_at(&event) {
                // a unit whose roster or calendar cannot be read is skipped, not the window
                let roster = match self.store.get_roster(unit).await {
                    Ok(Some((r, _, _))) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!(%unit, error = %e, "a roster cannot be read; its unit is not called");
                        continue;
                    }
                };
                let cal = match unit.county() {
                    None => Ok(domain::calendar::WorkCalendar::default()),
                    Some(c) => self.directory.calendar(&c).await,
                };
                let cal = match cal {
                    Ok(cal) => cal,
                    Err(e) => {
                        warn!(%unit, error = %e, "no calendar; the unit is not called");
                        continue;
                    }
                };
                let order = roster.call_order(&cal, fe.event.recorded_at);
                for (step, p) in order.into_iter().enumerate() {
                    calls.push(NewNotice {
                        case_id: fe.event.case_id,
                        version: fe.event.version,
                        unit: unit.to_string(),
                        step: i32::try_from(step).unwrap_or(i32::MAX),
                        person_id: p.id,
                        person_name: p.name,
                    });
                }
            }
        }
        self.store
            .add_notices(from, to, &calls, self.clock.now())
            .await?;
        Ok(())
    }

    async fn deliver_due(&self) -> Result<(), store::StoreError> {
        let now = self.clock.now();
        // a batch is sent one call at a time: its lease covers every call's timeout
        let lease = now + chrono::Duration::seconds(BATCH * 15);
        for n in self.store.claim_notices(now, lease, BATCH).await? {
            let call = call_of(&n);
            match self.options.notifier.deliver(&call).await {
                Ok(()) => {
                    let by = self.clock.now()
                        + chrono::Duration::from_std(self.options.answer_within)
                            .unwrap_or_default();
                    self.store.notice_delivered(&n, by).await?;
                }
                Err(e) => {
                    let retry = (n.attempts + 1 < self.options.max_attempts)
                        .then(|| self.clock.now() + backoff(self.options.retry_base, n.attempts));
                    if retry.is_none() {
                        warn!(case_id = %n.case_id, unit = %n.unit_code, error = %e, "call dead-lettered; calling the next person");
                    }
                    self.store
                        .notice_failed(&n, retry, &e, self.clock.now())
                        .await?;
                }
            }
        }
        Ok(())
    }
}

fn call_of(n: &Notice) -> Call {
    Call {
        delivery_id: n.notice_id.to_string(),
        case_id: n.case_id.to_string(),
        case_version: n.version,
        unit_code: n.unit_code.clone(),
        step: n.step,
        person_id: n.person_id.clone(),
        person_name: n.person_name.clone(),
    }
}

/// `base`, doubled per attempt already made, at most five minutes.
fn backoff(base: Duration, attempts: i32) -> chrono::Duration {
    let wait = base
        .saturating_mul(1 << attempts.clamp(0, 16))
        .min(Duration::from_secs(300));
    chrono::Duration::from_std(wait).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_minutes() {
        let b = Duration::from_secs(1);
        assert_eq!(backoff(b, 0), chrono::Duration::seconds(1));
        assert_eq!(backoff(b, 3), chrono::Duration::seconds(8));
        assert_eq!(backoff(b, 30), chrono::Duration::seconds(300));
    }

    #[test]
    fn the_signature_covers_the_time_and_the_body() {
        let a = Webhook::signature(b"k", 1, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, Webhook::signature(b"k", 2, b"{}"));
        assert_ne!(a, Webhook::signature(b"k", 1, b"{ }"));
        assert_ne!(a, Webhook::signature(b"j", 1, b"{}"));
    }
}
