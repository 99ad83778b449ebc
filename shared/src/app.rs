//! Assembling a keyledger HTTP function: its routes inside the shared HTTP plumbing and,
//! with `LOG_OWN_REQUESTS`, the request log of its own requests.
//!
//! The request log's layer is tower middleware writing HTTP answers, so it lives in the HTTP
//! layer (`http::request_log_layer`) and calls down into `request_log`; `request_log`
//! never imports `http`.

use axum::Router;

use crate::{config::Config, http};

/// Adds what every keyledger HTTP function has: problem+json 404/405, a body limit (413),
/// `Cache-Control: no-store` on JSON answers, request ids and a span per request, a panic
/// turned into a 500 problem, and, with `LOG_OWN_REQUESTS`, the request log of its own
/// requests (inside the request-id layer, so that records carry the request id, and outside
/// the panic guard, so that 500s are logged).
pub fn finish(router: Router, config: &Config) -> Router {
    let router = http::plumbing(router, config);
    let router = if config.log_own_requests { router.layer(http::request_log_layer::layer(config)) } else { router };
    http::with_request_context(router)
}
