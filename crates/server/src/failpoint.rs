//! Named crash points for the fault suite, compiled in only with the `failpoints` feature.
//!
//! `FAILPOINTS="relay-after-publish=20*off->return"` lets the point pass twenty times, then kills
//! the process there, as a power cut or `kill -9` would at that instant. Points:
//!
//! - `report-after-commit`: reports are in Postgres, their replies not yet sent;
//! - `relay-before-publish`: outbox rows claimed, nothing published to Redis;
//! - `relay-after-publish`: entries in Redis, their outbox rows not yet marked published;
//! - `router-after-commit`: a case routed in Postgres, its intake entry not yet acknowledged.
//!
//! Fault points make a step fail as a fault of the moment would, without killing anything
//! (`FAILPOINTS="timer-directory-unavailable=2*return"`, or `fail::cfg` in a test):
//!
//! - `timer-directory-unavailable`: the timer worker cannot read the registry and policies.
//!
//! Defects, for showing that the fault checker sees each kind of breach
//! (`tests/tests/checker.rs`): `router-drop-entry`, `router-dead-letter`,
//! `relay-lose-inbox-entry`, `timer-fire-twice`, `timer-skip`.

/// Whether this build carries the crash points: only the fault suite's builds do. A release
/// build at the workspace root (whose default members leave the test package out) does not,
/// and `scripts/test` checks that it cannot.
pub const COMPILED_IN: bool = cfg!(feature = "failpoints");

/// Says at start-up what the build does with `FAILPOINTS`.
pub fn announce() {
    let asked = std::env::var_os("FAILPOINTS").is_some();
    if COMPILED_IN {
        tracing::warn!(
            armed = asked,
            "this gridd is a test build: it carries crash points (FAILPOINTS); never run it in production"
        );
    } else if asked {
        tracing::warn!("FAILPOINTS is set, but this build has no crash points: ignored");
    }
}

/// Reads `FAILPOINTS`; keep the answer alive for the life of the process.
#[cfg(feature = "failpoints")]
#[must_use]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Without the feature there is nothing to set up.
#[cfg(not(feature = "failpoints"))]
#[must_use]
pub fn setup() -> NoFailpoints {
    NoFailpoints
}

/// What [`setup`] answers in a build without crash points.
#[cfg(not(feature = "failpoints"))]
#[derive(Debug)]
pub struct NoFailpoints;

/// Whether the fault point `name` is armed to fail this time; always `false` in a build
/// without crash points.
#[inline]
#[must_use]
pub fn fault_point(name: &'static str) -> bool {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| true);
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    false
}

/// Kills the process at `name` when `FAILPOINTS` says so; nothing otherwise.
#[inline]
pub fn crash_point(name: &'static str) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(name, |_| -> () {
        eprintln!("failpoint {name}: aborting the process");
        std::process::abort()
    });
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
