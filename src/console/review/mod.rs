//! The reviewer screens (Engineer 7's; this stub only mounts nothing until they land).

use actix_web::web;

/// Registers the reviewer screens' routes inside the `/console` scope.
pub fn configure(_config: &mut web::ServiceConfig) {}
