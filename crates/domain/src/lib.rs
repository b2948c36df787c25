//! The GridDispatch domain: everything that decides, nothing that does I/O.
//!
//! Region codes and units, categories and severities, the case state machine, routing
//! decisions and SLA arithmetic over a working-time calendar. Services call into this crate;
//! they never re-implement its rules.

pub mod area;
pub mod calendar;
pub mod case;
pub mod effects;
pub mod geo;
mod ids;
pub mod indicators;
pub mod pii;
pub mod policy;
pub mod record;
pub mod region;
pub mod repeat;
pub mod report;
pub mod roster;
pub mod seed;
pub mod source;
mod types;
pub mod unit;

pub use ids::CaseId;
pub use types::{CaseStatus, Severity, Tier, UnitKind, UnknownName};
