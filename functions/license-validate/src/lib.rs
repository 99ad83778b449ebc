//! The `license-validate` function: the public license checks of DESIGN §6.6. No API key:
//! the license key in the body is the credential. Parsing and rendering only; the rules and
//! the codes live in `shared::licenses`.

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use shared::{
    Context,
    http::{ApiError, OpenJson, RequestId},
    licenses::{self, ActivateRequest, CheckoutRequest, DeactivateRequest, ValidateRequest},
    signing::{self, SigningKeys},
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
        .route("/v1/licenses/checkout", post(checkout))
        .route("/v1/licenses/signing-keys", get(signing_keys))
        .route_layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(ctx)
}

/// The complete `license-validate` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::app::finish(app, &config)
}

/// The signing ring, read before a check runs: a check that writes (activate, deactivate,
/// checkout) must not commit when its answer could not be signed, so a broken ring is a
/// plain 500 with nothing recorded.
async fn signing_keys_for_answer(ctx: &Context) -> Result<Arc<SigningKeys>, ApiError> {
    Ok(ctx.signing_keys().await.map_err(licenses::Error::SigningKeys)?)
}

/// Serialises the answer once and signs exactly the bytes it sends, so the signature covers
/// the body the product receives (DESIGN §6.15), negative codes and `NOT_FOUND` included.
fn render(keys: &SigningKeys, answer: &impl serde::Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(answer).map_err(ApiError::internal)?;
    let signature = HeaderValue::try_from(keys.signature_header(&body)).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::HeaderName::from_static(signing::SIGNATURE_HEADER), signature),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/licenses/signing-keys`: the public JWKS. An hour of caching lets products and
/// CDNs spare the call while a new key, added to the ring before it becomes current, reaches
/// every verifier well before it signs.
async fn signing_keys(State(ctx): State<Context>) -> Result<impl IntoResponse, ApiError> {
    let keys = signing_keys_for_answer(&ctx).await?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=3600")], axum::Json(keys.jwks())))
}

async fn validate(State(ctx): State<Context>, OpenJson(body): OpenJson<ValidateRequest>) -> Result<Response, ApiError> {
    let keys = signing_keys_for_answer(&ctx).await?;
    render(&keys, &licenses::validate(&ctx, body).await?)
}

async fn activate(
    State(ctx): State<Context>,
    RequestId(request_id): RequestId,
    OpenJson(body): OpenJson<ActivateRequest>,
) -> Result<Response, ApiError> {
    let keys = signing_keys_for_answer(&ctx).await?;
    render(&keys, &licenses::activate(&ctx, body, Some(request_id)).await?)
}

async fn deactivate(
    State(ctx): State<Context>,
    RequestId(request_id): RequestId,
    OpenJson(body): OpenJson<DeactivateRequest>,
) -> Result<Response, ApiError> {
    let keys = signing_keys_for_answer(&ctx).await?;
    render(&keys, &licenses::deactivate(&ctx, body, Some(request_id)).await?)
}

async fn checkout(
    State(ctx): State<Context>,
    RequestId(request_id): RequestId,
    OpenJson(body): OpenJson<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let keys = signing_keys_for_answer(&ctx).await?;
    render(&keys, &licenses::checkout(&ctx, &keys, body, Some(request_id)).await?)
}
