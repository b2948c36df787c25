//! Per-principal limits: a rate of calls with a burst, and a number of streams open at once.
//!
//! One caller over its quota gets RESOURCE_EXHAUSTED; everybody else is untouched, because
//! each principal (role, unit and subject) has a bucket of its own. The access layer takes a
//! call from the bucket before any handler runs; streaming handlers hold a [`StreamPermit`]
//! for as long as their stream is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The limits, as configured. Zero turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLimits {
    /// Calls per second each principal may make on average (`GRIDD_RATE_PER_SEC`).
    pub per_sec: f64,
    /// Calls a principal may make at once after a quiet spell (`GRIDD_RATE_BURST`).
    pub burst: f64,
    /// Streams (`WatchQueue`, `WatchCases`, `StreamEvents`, `SyncReports`) a principal may
    /// hold open at once (`GRIDD_MAX_STREAMS`).
    pub max_streams: usize,
}

impl CallLimits {
    /// No limits: tests and benches where one principal stands for many callers.
    #[must_use]
    pub const fn unlimited() -> CallLimits {
        CallLimits {
            per_sec: 0.0,
            burst: 0.0,
            max_streams: 0,
        }
    }
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits::unlimited()
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets and stream counts of every principal seen lately.
pub struct Limiter {
    limits: CallLimits,
    buckets: Mutex<HashMap<String, Bucket>>,
    streams: Mutex<HashMap<String, usize>>,
}

impl Limiter {
    #[must_use]
    pub fn new(limits: CallLimits) -> Arc<Limiter> {
        Arc::new(Limiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one call from `key`'s bucket, or says how long until one is there.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let CallLimits { per_sec, burst, .. } = self.limits;
        if per_sec <= 0.0 {
            return Ok(());
        }
        let burst = burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // forget principals whose buckets have long been full again
        if buckets.len() > 10_000 {
            let idle = Duration::from_secs_f64(burst / per_sec) + Duration::from_secs(60);
            buckets.retain(|_, b| now.duration_since(b.at) < idle);
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }

    /// Opens a stream for `key`, or refuses when it holds its maximum already.
    pub fn open_stream(self: &Arc<Self>, key: &str) -> Result<StreamPermit, usize> {
        let max = self.limits.max_streams;
        if max > 0 {
            let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            let n = streams.entry(key.to_owned()).or_default();
            if *n >= max {
                return Err(max);
            }
            *n += 1;
        }
        Ok(StreamPermit {
            limiter: self.clone(),
            key: key.to_owned(),
        })
    }
}

/// An open stream of one principal; dropping it closes the stream's place.
pub struct StreamPermit {
    limiter: Arc<Limiter>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if self.limiter.limits.max_streams == 0 {
            return;
        }
        let mut streams = self
            .limiter
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = streams.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = Limiter::new(CallLimits {
            per_sec: 10.0,
            burst: 5.0,
            max_streams: 0,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            l.take("noisy", t0).unwrap();
        }
        let wait = l.take("noisy", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // another principal has its own bucket
        l.take("quiet", t0).unwrap();
        // 100 ms later one more call is allowed, and only one
        let t1 = t0 + Duration::from_millis(100);
        l.take("noisy", t1).unwrap();
        assert!(l.take("noisy", t1).is_err());
        // unlimited
        let off = Limiter::new(CallLimits::unlimited());
        for _ in 0..1000 {
            off.take("any", t0).unwrap();
        }
    }

    #[test]
    fn streams_are_counted_until_dropped() {
        let l = Limiter::new(CallLimits {
            per_sec: 0.0,
            burst: 0.0,
            max_streams: 2,
        });
        let a = l.open_stream("console").unwrap();
        let _b = l.open_stream("console").unwrap();
        assert_eq!(l.open_stream("console").err(), Some(2));
        let _other = l.open_stream("another console").unwrap();
        drop(a);
        let _c = l.open_stream("console").unwrap();
    }
}
