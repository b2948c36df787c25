//! A TCP fault proxy for the test harness: put it between gridd and PostgreSQL or Redis, then
//! add latency, reset every connection, or swallow all traffic (a blackhole), and heal it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Bytes flow as they come.
    Pass,
    /// Every chunk is held this long in each direction.
    Latency(Duration),
    /// Every connection, open or new, is reset (RST).
    Reset,
    /// Nothing moves: open connections stall, new ones are accepted and never answered.
    Blackhole,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    live: Arc<AtomicUsize>,
    hits: Arc<Hits>,
    task: JoinHandle<()>,
}

/// What the faults did, so a scenario can show that they hit something.
#[derive(Debug, Default)]
pub struct Hits {
    /// Chunks delivered late by a latency fault.
    pub delayed: AtomicUsize,
    /// Connections reset by a reset fault.
    pub reset: AtomicUsize,
    /// Connections or chunks held by a blackhole.
    pub stalled: AtomicUsize,
}

/// A copy of [`Hits`] at one moment: (delayed, reset, stalled).
pub type HitCounts = (usize, usize, usize);

impl FaultProxy {
    /// A proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, rx) = watch::channel(Fault::Pass);
        let live = Arc::new(AtomicUsize::new(0));
        let live2 = live.clone();
        let hits = Arc::new(Hits::default());
        let hits2 = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let rx = rx.clone();
                let live = live2.clone();
                let hits = hits2.clone();
                tokio::spawn(async move {
                    live.fetch_add(1, Ordering::Relaxed);
                    serve(client, upstream, rx, &hits).await;
                    live.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        FaultProxy {
            addr,
            fault,
            live,
            hits,
            task,
        }
    }

    pub fn set(&self, f: Fault) {
        self.fault.send_replace(f);
    }

    /// What the faults have done so far.
    pub fn hits(&self) -> HitCounts {
        (
            self.hits.delayed.load(Ordering::Relaxed),
            self.hits.reset.load(Ordering::Relaxed),
            self.hits.stalled.load(Ordering::Relaxed),
        )
    }

    /// Connections open through the proxy now.
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// Waits while the fault is a blackhole; answers the fault that ended it.
async fn past_blackhole(rx: &mut watch::Receiver<Fault>, hits: &Hits) -> Fault {
    let mut held = false;
    loop {
        let f = *rx.borrow_and_update();
        if f != Fault::Blackhole {
            return f;
        }
        if !held {
            held = true;
            hits.stalled.fetch_add(1, Ordering::Relaxed);
        }
        if rx.changed().await.is_err() {
            return Fault::Reset;
        }
    }
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    mut rx: watch::Receiver<Fault>,
    hits: &Hits,
) {
    let _ = client.set_nodelay(true);
    // a new connection during a blackhole is accepted and left hanging, as a dead route does
    if past_blackhole(&mut rx, hits).await == Fault::Reset {
        hits.reset.fetch_add(1, Ordering::Relaxed);
        reset(&client);
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, rx.clone(), hits);
    let down = pump(sr, cw, rx, hits);
    // either direction ending (EOF, error or a reset fault) closes both sockets
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rx: watch::Receiver<Fault>,
    hits: &Hits,
) {
    // a reader stamps each chunk with when it may be delivered; a writer delivers it then, so
    // latency delays every chunk by the same time without limiting throughput
    let (tx, mut chunks) =
        tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let mut reader_rx = rx.clone();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if past_blackhole(&mut reader_rx, hits).await == Fault::Reset {
                break;
            }
            let n = tokio::select! {
                r = from.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = reader_rx.changed() => continue,
            };
            let delay = match *reader_rx.borrow() {
                Fault::Latency(d) => {
                    hits.delayed.fetch_add(1, Ordering::Relaxed);
                    d
                }
                _ => Duration::ZERO,
            };
            if tx
                .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                break;
            }
        }
        if *reader_rx.borrow() == Fault::Reset {
            hits.reset.fetch_add(1, Ordering::Relaxed);
            reset(from.as_ref());
        }
    };
    let mut writer_rx = rx;
    let writer = async move {
        while let Some((due, bytes)) = chunks.recv().await {
            tokio::time::sleep_until(due).await;
            // the fault in force at delivery decides the bytes' fate
            if past_blackhole(&mut writer_rx, hits).await == Fault::Reset {
                break;
            }
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        if *writer_rx.borrow() == Fault::Reset {
            // a zero linger turns the coming close into a reset
            reset(to.as_ref());
        }
    };
    tokio::join!(reader, writer);
}
