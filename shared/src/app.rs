//! Assembling a keyledger HTTP function: its routes inside the shared HTTP plumbing and,
//! with `LOG_OWN_REQUESTS`, the request log of its own requests.
//!
//! This sits above both `http` and `request_log`, so that neither imports the other for
//! it: the request log's layer uses `http`'s request id and problems, and `http` knows
//! nothing of the request log.

use axum::Router;

use crate::{config::Config, http, request_log};

/// Adds what every keyledger HTTP function has: problem+json 404/405, a body limit (413),
/// `Cache-Control: no-store` on JSON answers, request ids and a span per request, a panic
/// turned into a 500 problem, and, with `LOG_OWN_REQUESTS`, the request log of its own
/// requests (inside the request-id layer, so that records carry the request id, and outside
/// the panic guard, so that 500s are logged).
pub fn finish(router: Router, config: &Config) -> Router {
    let router = http::plumbing(router, config);
    let router = if config.log_own_requests { router.layer(request_log::layer(config)) } else { router };
    http::with_request_context(router)
}
