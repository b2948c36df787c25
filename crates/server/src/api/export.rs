//! ExportService: the provincial platform's copy of every case event (數據一次採集、多方利用).
//!
//! A stream reads the numbered feed (ADR 0018) in pages after the caller's cursor and then
//! waits for the feed to grow. Each page is read and released before it is sent, and records
//! go out through a small bounded channel: a slow platform holds no connection, lock or
//! growing buffer here — it only slows its own reader down.

use domain::region::RegionCode;
use proto::{convert, v1};
use store::FeedRegion;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use tracing::{Instrument as _, debug};

use super::Ctx;
use super::streams::ServerStream;
use crate::auth::principal;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::feed::FEED_PAGE;

#[derive(Clone)]
pub struct Export {
    ctx: Ctx,
}

impl Export {
    #[must_use]
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

/// A feed cursor: the position of the last record received; empty for the beginning.
pub(crate) fn parse_cursor(s: &str, field: &str) -> ApiResult<i64> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ApiError::invalid(field, "not a cursor this service gave out"))
}

/// An optional region code.
pub(crate) fn parse_region(s: &str, field: &str) -> ApiResult<Option<RegionCode>> {
    if s.is_empty() {
        return Ok(None);
    }
    RegionCode::parse(s)
        .map(Some)
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn record(e: store::FeedEvent) -> v1::ExportRecord {
    let mut data = e.event.data;
    domain::pii::mask_json(&mut data);
    v1::ExportRecord {
        cursor: e.pos.to_string(),
        case_id: e.event.case_id.to_string(),
        version: e.event.version,
        event_type: e.event.event_type,
        recorded_at: Some(convert::timestamp(e.event.recorded_at)),
        region_code: e.grid,
        category: e.category,
        data_json: data.to_string(),
    }
}

#[tonic::async_trait]
impl v1::export_service_server::ExportService for Export {
    type StreamEventsStream = ServerStream<v1::ExportRecord>;

    async fn stream_events(
        &self,
        req: Request<v1::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let who = principal(&req)?;
        let permit = self.ctx.open_stream(&who)?;
        let r = req.get_ref();
        let mut cursor = parse_cursor(&r.after_cursor, "after_cursor")?;
        let region = parse_region(&r.region_code, "region_code")?;
        if let Some(region) = &region {
            who.require_region(region)?;
        }
        let store = self.ctx.store.clone();
        let mut head = self.ctx.feed.head();
        let shutdown = self.ctx.shutdown.clone();
        // a page and a little more in flight, never the backlog
        let (tx, rx) = mpsc::channel::<Result<v1::ExportRecord, Status>>(FEED_PAGE as usize);
        let span = tracing::info_span!("export stream", subject = %who.subject, from = cursor);
        tokio::spawn(
            async move {
                loop {
                    let scope = region.as_ref().map_or(FeedRegion::All, FeedRegion::Within);
                    // what the feed held, as far as this process knows, before this read
                    let known = *head.borrow_and_update();
                    let page = match store.feed_after(cursor, scope, FEED_PAGE).await {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Err(ApiError::from(e).into())).await;
                            return;
                        }
                    };
                    let full = page.len() == FEED_PAGE as usize;
                    for e in page {
                        cursor = e.pos;
                        if tx.send(Ok(record(e))).await.is_err() {
                            debug!(cursor, "export stream closed by the client");
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                    // caught up: wait until this process has seen the feed grow past what
                    // this read covered (the tail follows every replica's commits)
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tx.closed() => return,
                        changed = head.wait_for(|h| *h > cursor.max(known)) => {
                            if changed.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(super::streams::held(rx, permit)))
    }
}
