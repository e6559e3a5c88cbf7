//! Black-box tests: each starts the real `keyledger` binary on a random port over a
//! temporary data directory and talks to it over HTTP, as a user would.
//!
//! Set `TEST_LOG=1` to see the servers' logs.

mod admin_recovery;
mod audit;
mod auth;
mod authority;
mod backup;
mod cli_formats;
mod cluster;
mod concurrency;
mod config;
mod console;
mod console_review;
mod crash;
mod credentials;
mod errors;
mod event_scope;
mod first_run;
mod health;
mod helpers;
mod hygiene;
mod idempotency;
mod import;
mod justification;
mod key_state;
mod limits;
mod lookup;
mod methods;
mod metrics;
mod names;
mod nodes;
mod openapi;
mod policy;
mod postgres;
mod proofs;
mod recovery;
mod refusals;
mod review;
mod snapshots;
mod storage;
mod throttle;
mod tls;
mod unused;
mod upgrade;
mod usage;
mod walkthrough;
mod watch;
mod whoami;
