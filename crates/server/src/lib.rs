//! The GridDispatch server: gRPC services, authentication, configuration, telemetry and the
//! lifecycle that ties them to Postgres and Redis.

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod batcher;
pub mod board;
pub mod clock;
pub mod commands;
pub mod config;
pub mod contacts;
pub mod deadline;
pub mod error;
pub mod failpoint;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod open311;
pub mod pipeline;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod web;

pub use app::{DEFAULT_MAX_MESSAGE_BYTES, RoleSet, Running, ServerOptions, WorkerOptions, start};
pub use config::Config;
pub use limits::CallLimits;
