//! ConsoleService.WatchCases: every change to the cases of a region, live, whichever replica
//! made it, resumable with the last cursor.
//!
//! A watch first reads what it missed from the numbered feed in Postgres, then takes the
//! process's shared live batches ([`FeedTail`](crate::pipeline::feed::FeedTail)), skipping
//! what it already sent. A watch that falls too far behind the live batches goes back to
//! Postgres from its last position, so no watch ever holds more than one page.

use std::sync::Arc;

use domain::region::RegionCode;
use proto::{convert, v1};
use store::FeedRegion;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;
use tracing::{Instrument as _, debug};

use super::Ctx;
use super::export::{parse_cursor, parse_region};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::pipeline::feed::{Change, FEED_PAGE, changes};

pub(crate) type Sink = mpsc::Sender<Result<v1::CaseChange, Status>>;

/// Why a watch stops.
enum Stop {
    /// The client went away or the server is stopping.
    Gone,
    Failed(ApiError),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Failed(e)
    }
}

impl From<store::StoreError> for Stop {
    fn from(e: store::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

struct Watch {
    ctx: Ctx,
    who: Principal,
    region: Option<RegionCode>,
    sink: Sink,
    /// The last position sent (or skipped as not this watch's).
    sent: i64,
}

impl Watch {
    fn wants(&self, c: &Change) -> bool {
        self.region.as_ref().is_none_or(|r| c.within(r.as_str())) && self.who.can_see(&c.case)
    }

    async fn send(&mut self, c: &Change) -> Result<(), Stop> {
        if c.pos <= self.sent {
            return Ok(());
        }
        self.sent = c.pos;
        if !self.wants(c) {
            return Ok(());
        }
        let msg = v1::CaseChange {
            cursor: c.pos.to_string(),
            event: Some(convert::event_to_wire(&c.event)),
            case: Some(convert::case_to_wire(&c.case)),
        };
        self.sink.send(Ok(msg)).await.map_err(|_| Stop::Gone)
    }

    /// Sends everything in Postgres after the last position, page by page.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let scope = self
                .region
                .as_ref()
                .map_or(FeedRegion::All, FeedRegion::Within);
            let page = self
                .ctx
                .store
                .feed_after(self.sent, scope, FEED_PAGE)
                .await
                .map_err(ApiError::from)?;
            let full = page.len() == FEED_PAGE as usize;
            let last = page.last().map(|e| e.pos);
            for c in changes(&self.ctx.store, page).await? {
                self.send(&c).await?;
            }
            // a page's events whose case vanished still move the position on
            if let Some(last) = last {
                self.sent = self.sent.max(last);
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn run(mut self, mut live: broadcast::Receiver<Arc<Vec<Change>>>) -> Result<(), Stop> {
        self.catch_up().await?;
        loop {
            let batch = tokio::select! {
                () = self.ctx.shutdown.cancelled() => return Err(Stop::Gone),
                () = self.sink.closed() => return Err(Stop::Gone),
                b = live.recv() => b,
            };
            match batch {
                Ok(batch) => {
                    for c in batch.iter() {
                        self.send(c).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(
                        missed = n,
                        "watch fell behind the live feed; reading Postgres"
                    );
                    self.catch_up().await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Stop::Gone),
            }
        }
    }
}

impl Ctx {
    /// Starts a watch; answers the receiving end of its stream.
    pub(crate) async fn watch_cases(
        &self,
        who: Principal,
        req: &v1::WatchCasesRequest,
    ) -> ApiResult<mpsc::Receiver<Result<v1::CaseChange, Status>>> {
        let region = parse_region(&req.region_code, "region_code")?;
        if let Some(r) = &region {
            who.require_region(r)?;
        }
        // no region named: the caller's own area (a department's is the cases it takes
        // part in, which `can_see` keeps to)
        let region = region.or_else(|| who.department().map_or_else(|| who.area(), |_| None));
        let from = parse_cursor(&req.after_cursor, "after_cursor")?;
        // subscribe before reading where "now" is, so nothing falls between the two
        let live = self.feed.subscribe();
        let sent = if req.after_cursor.is_empty() {
            self.store.feed_head().await?
        } else {
            from
        };
        let (sink, rx) = mpsc::channel(FEED_PAGE as usize);
        let span = tracing::info_span!("watch cases", subject = %who.subject, from = sent);
        let watch = Watch {
            ctx: self.clone(),
            who,
            region,
            sink: sink.clone(),
            sent,
        };
        tokio::spawn(
            async move {
                if let Err(Stop::Failed(e)) = watch.run(live).await {
                    let _ = sink.send(Err(e.into())).await;
                }
            }
            .instrument(span),
        );
        Ok(rx)
    }
}
