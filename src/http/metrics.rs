//! `getMetrics`: Prometheus metrics in the text exposition format.
//!
//! Served on the main address unless `serve --metrics-listen ADDR` moves it to an address
//! of its own (then the main address answers 404 for it). It needs no key: it tells
//! counts, never keys, users or events. What is counted, and how, is `crate::metrics`.

use actix_web::{HttpResponse, get, web};

use super::Shared;
use super::problem::{ApiError, Problem};
use crate::metrics::{self, Gauges};

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// Prometheus metrics, in the text exposition format (0.0.4).
///
/// Needs no key. Key checks by endpoint and reason (`keyledger_checks_total`), commands by operation and outcome
/// (`keyledger_admin_commands_total`), write latency and group-commit batch sizes
/// (histograms), the log head, the latest checkpoint's size, throttled clients, and the
/// process's CPU, memory, file descriptors and start time. Served on the main address
/// unless the server was started with `--metrics-listen`, which serves it on that
/// address instead (and the main one answers 404).
#[utoipa::path(
    operation_id = "getMetrics",
    tag = "metrics",
    responses(
        (status = 200, description = "The metrics, in Prometheus's text exposition format", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8",
            example = "# HELP keyledger_log_head Records in the log (the sequence number of the newest).\n# TYPE keyledger_log_head gauge\nkeyledger_log_head 42\n"),
        (status = 503, description = "The service is shutting down", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn get_metrics(state: Shared) -> Result<HttpResponse, ApiError> {
    // Reading /proc is quick but is file I/O: keep it off the event loop. The blocking
    // pool is gone only when the server is stopping.
    let text = web::block(move || render(&state)).await.map_err(|_| ApiError::ShuttingDown)?;
    Ok(HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(text))
}

/// Every metric of the running service, as text.
pub fn render(state: &Shared) -> String {
    let log_head = state.ledger.view().head();
    let (throttled_clients, tracked_clients) = state.limiter.throttled_and_tracked();
    let gauges = Gauges { log_head, throttled_clients, tracked_clients };
    let mut text = metrics::render(&state.checks, state.ledger.metrics(), gauges);
    if let Some(node) = state.ledger.node() {
        let gauges = metrics::NodeGauges {
            applied_position: log_head,
            log_head: node.log_head().max(log_head),
            heartbeat_age_seconds: node.heartbeat_age().as_secs_f64(),
        };
        metrics::render_node(&mut text, gauges);
    }
    text
}

/// Registers the route, on the main address or the metrics address.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(get_metrics);
}
