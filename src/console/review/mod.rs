//! The reviewer screens of the console: the audit trail, integrity, the permission view at
//! a point in time and its diff, and the access review with its charts.

pub mod access;
pub mod charts;
pub mod trail;

use actix_web::web;

/// Registers the reviewer screens' routes inside the `/console` scope (none yet).
pub fn configure(_config: &mut web::ServiceConfig) {}
