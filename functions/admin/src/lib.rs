//! The `admin` function's routes: API keys (DESIGN §6.8), OAuth clients (§6.1); licenses and
//! the web UI join here as they are built. Parsing and rendering only; the rules live in `shared`.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get, post},
};
use serde::Deserialize;
use shared::{
    Context, api_keys,
    auth::{Principal, Scope},
    clients,
    http::{ApiError, Json, Query},
};
use uuid::Uuid;

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "admin";

/// The admin routes without `/health`, for merging into a combined local server.
pub fn routes(ctx: Context) -> Router {
    Router::new()
        .route("/v1/api-keys", post(create_api_key).get(list_api_keys))
        .route("/v1/api-keys/{id}", delete(revoke_api_key))
        .route("/v1/clients", post(create_client).get(list_clients))
        .route("/v1/clients/{id}", get(get_client).patch(update_client).delete(delete_client))
        .with_state(ctx)
}

/// The complete `admin` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::http::finish(app, &config)
}

async fn create_api_key(
    State(ctx): State<Context>,
    principal: Principal,
    Json(body): Json<api_keys::NewApiKey>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let created = api_keys::create(&ctx, body, &principal.metadata(FUNCTION)).await?;
    Ok((StatusCode::CREATED, [("cache-control", "no-store")], axum::Json(created)))
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list_api_keys(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(api_keys::list(&ctx, params.limit, params.cursor.as_deref()).await?))
}

async fn revoke_api_key(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::not_found("api_key_not_found", format!("no API key '{id}'")))?;
    api_keys::revoke(&ctx, id, &principal.metadata(FUNCTION)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_client(
    State(ctx): State<Context>,
    principal: Principal,
    Json(body): Json<clients::NewClient>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let client = clients::create(&ctx, body, &principal.metadata(FUNCTION)).await?;
    Ok((StatusCode::CREATED, axum::Json(client)))
}

async fn list_clients(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(clients::list(&ctx, params.limit, params.cursor.as_deref()).await?))
}

async fn get_client(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    Ok(axum::Json(clients::get(&ctx, clients::parse_id(&id)?).await?))
}

async fn update_client(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<clients::ClientPatch>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::Admin)?;
    let id = clients::parse_id(&id)?;
    Ok(axum::Json(clients::update(&ctx, id, body, &principal.metadata(FUNCTION)).await?))
}

async fn delete_client(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::Admin)?;
    clients::delete(&ctx, clients::parse_id(&id)?, &principal.metadata(FUNCTION)).await?;
    Ok(StatusCode::NO_CONTENT)
}
