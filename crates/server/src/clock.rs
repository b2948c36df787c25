//! Injectable time: the server reads "now" from a [`Clock`], so tests can run SLA clocks of
//! hours in seconds.

use std::sync::Arc;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// How many of this clock's seconds pass in one real second (1 but in a demo).
    fn speed(&self) -> f64 {
        1.0
    }

    /// The real time to wait for `d` of this clock's time to pass.
    fn real(&self, d: std::time::Duration) -> std::time::Duration {
        d.div_f64(self.speed())
    }

    /// This clock's time that passes in `d` of real time.
    fn scaled(&self, d: std::time::Duration) -> std::time::Duration {
        d.mul_f64(self.speed())
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock shifted by an offset that tests move forward.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset: Mutex<Duration>,
}

impl OffsetClock {
    pub fn advance(&self, by: Duration) {
        let mut o = self
            .offset
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *o += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + *self
                .offset
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// A demo's accelerated clock (`GRIDD_DEMO_CLOCK_*`, loopback only): it reads `start` at the
/// real instant `anchor` and runs `speed` times faster than the wall clock, so that a county's
/// working day, its SLA clocks and escalations among them, passes in minutes.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    pub start: DateTime<Utc>,
    pub anchor: DateTime<Utc>,
    pub speed: f64,
}

impl ScaledClock {
    /// What the clock reads at the real instant `real`.
    #[must_use]
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        let elapsed = (real - self.anchor).num_microseconds().unwrap_or(0) as f64;
        self.start + Duration::microseconds((elapsed * self.speed) as i64)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    fn speed(&self) -> f64 {
        self.speed
    }
}
