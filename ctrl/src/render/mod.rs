//! Rendering: the one place that knows every subsystem and turns what
//! they expose (plain snapshots: configuration, counters, sessions) into
//! what operators read: `pollux show`'s JSON ([`api`], the socket's
//! server and dispatch) and tables ([`show`]), and the Prometheus metrics
//! ([`metrics`], served by axum). The subsystems never import it.
//!
//! The JSON field names, the tables and the metric names and labels are
//! stable (`docs/api.md`, `docs/metrics.md`).

pub mod api;
mod bfd;
pub mod bgp;
mod config;
mod lb;
pub mod metrics;
mod ports;
pub mod show;
