//! The `license-validate` function: the public license checks of DESIGN §6.6. No API key:
//! the license key in the body is the credential. Parsing and rendering only; the rules and
//! the codes live in `shared::licenses`.

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::header,
    response::IntoResponse,
    routing::{get, post},
};
use shared::{
    Context,
    http::{ApiError, Json, RequestId},
    licenses::{self, CheckRequest},
};

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "license-validate";

/// A check's body is a key, an id, a name and a nonce: a few hundred bytes.
const BODY_LIMIT: usize = 16 * 1024;

/// The public license routes without `/health`, for merging into a combined local server.
pub fn routes(ctx: Context) -> Router {
    Router::new()
        .route("/v1/licenses/validate", post(validate))
        .route("/v1/licenses/activate", post(activate))
        .route("/v1/licenses/deactivate", post(deactivate))
        .route_layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ctx)
}

/// The complete `license-validate` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::http::finish(app, &config)
}

fn render(answer: licenses::CheckAnswer) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer))
}

async fn validate(State(ctx): State<Context>, Json(body): Json<CheckRequest>) -> Result<impl IntoResponse, ApiError> {
    Ok(render(licenses::validate(&ctx, body).await?))
}

async fn activate(
    State(ctx): State<Context>,
    RequestId(request_id): RequestId,
    Json(body): Json<CheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(render(licenses::activate(&ctx, body, Some(request_id)).await?))
}

async fn deactivate(
    State(ctx): State<Context>,
    RequestId(request_id): RequestId,
    Json(body): Json<CheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(render(licenses::deactivate(&ctx, body, Some(request_id)).await?))
}
