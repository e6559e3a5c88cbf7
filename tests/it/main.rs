//! Black-box tests: each starts the real `keyledger` binary on a random port over a
//! temporary data directory and talks to it over HTTP, as a user would.
//!
//! Set `TEST_LOG=1` to see the servers' logs.

mod helpers;
mod walkthrough;
mod auth;
mod errors;
mod idempotency;
mod recovery;
mod audit;
mod concurrency;
mod openapi;
mod snapshots;
