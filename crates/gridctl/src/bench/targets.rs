//! The pipeline's targets, each beside what this run measured.

/// What a run measured, for the targets it can speak to.
pub(super) struct Measured {
    /// Reports/s asked for; 0 for a closed loop.
    pub rate: u64,
    pub acknowledged_per_sec: f64,
    pub acked: u64,
    pub closed: u64,
    /// Consoles took cases through the whole lifecycle.
    pub lifecycle: bool,
    pub ack_p99_ms: f64,
    pub in_queue_p99_ms: Option<f64>,
    pub insert_ratio: f64,
    pub statements: Option<f64>,
    pub wal_flushes: f64,
    pub lateness_p99_ms: Option<f64>,
    pub armed: usize,
    pub rss_mib: Option<f64>,
    pub streams: usize,
}

fn row(target: &str, measured: &str, met: Option<bool>) {
    let verdict = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured by this run",
    };
    println!("  {target:<58} {measured:<26} {verdict}");
}

pub(super) fn print(m: &Measured) {
    println!("\n-- the pipeline's targets (docs/benchmarks.md)");
    let open_loop = m.rate > 0;
    let every_closed = m.lifecycle && m.closed >= m.acked;
    row(
        "every case closed, open loop at 2,000 cases/s",
        &format!(
            "{}/{} closed at {:.0}/s",
            m.closed, m.acked, m.acknowledged_per_sec
        ),
        (open_loop && m.lifecycle).then_some(every_closed && m.acknowledged_per_sec >= 1990.0),
    );
    row(
        "report->ack p99 <= 20 ms at 2,000/s",
        &format!("{:.1} ms at {:.0}/s", m.ack_p99_ms, m.acknowledged_per_sec),
        (open_loop && m.rate >= 2000).then_some(m.ack_p99_ms <= 20.0),
    );
    row(
        "report->in-queue p99 <= 20 ms at 2,000/s",
        &m.in_queue_p99_ms.map_or("n/a".into(), |v| {
            format!("{v:.1} ms at {:.0}/s", m.acknowledged_per_sec)
        }),
        (open_loop && m.rate >= 2000).then_some(m.in_queue_p99_ms.is_some_and(|v| v <= 20.0)),
    );
    row(
        "closed-loop reports/s >= 1.0 x the INSERT baseline",
        &format!("{:.2} x", m.insert_ratio),
        (!open_loop).then_some(m.insert_ratio >= 1.0),
    );
    row(
        "<= 12 statements per case over the lifecycle",
        &m.statements.map_or("n/a".into(), |s| format!("{s:.2}")),
        (m.lifecycle && m.statements.is_some()).then_some(m.statements.is_some_and(|s| s <= 12.0)),
    );
    row(
        "<= 3 WAL flushes per case over the lifecycle",
        &format!("{:.2}", m.wal_flushes),
        m.lifecycle.then_some(m.wal_flushes <= 3.0),
    );
    row(
        "deadline lateness p99 <= 50 ms with 100,000 armed",
        &m.lateness_p99_ms.map_or("n/a".into(), |v| {
            format!("{v:.1} ms with {} armed", m.armed)
        }),
        (m.armed >= 100_000).then_some(m.lateness_p99_ms.is_some_and(|v| v <= 50.0)),
    );
    row(
        "gridd RSS <= 128 MiB with 1,000 watch streams",
        &m.rss_mib.map_or("n/a".into(), |v| {
            format!("{v:.1} MiB with {} streams", m.streams)
        }),
        (m.streams >= 1000).then_some(m.rss_mib.is_some_and(|v| v <= 128.0)),
    );
}
