//! The `keyledger` package: the operator CLI (`src/main.rs`) and the local all-in-one router.

use axum::{Router, routing::get};
use shared::Context;

/// Every HTTP function's routes on one router, as API Gateway would route them; `/health`
/// once. Used by `keyledger serve` (local development, benchmarks) and the contract tests.
pub fn local_router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = Router::new()
        .route("/health", get(shared::health::health).with_state(ctx.clone()))
        .merge(admin::routes(ctx.clone()))
        .merge(license_validate::routes(ctx.clone()))
        .merge(oauth::routes(ctx.clone()))
        .merge(token_fetch::routes(ctx.clone()))
        .merge(request_log::routes(ctx));
    shared::app::finish(app, &config)
}
