//! keyledger: an event-sourced, audit-first service that decides which apps may use an
//! event-management API, and proves every change ever made to that decision.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the code map.

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod bundle;
pub mod checkpoint;
pub mod cli;
pub mod console;
pub mod domain;
pub mod history;
pub mod http;
pub mod io_advice;
pub mod key_history;
pub mod ledger;
pub mod log;
pub mod merkle;
pub mod metrics;
pub mod provenance;
pub mod restore;
pub mod snapshot;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod wire;
