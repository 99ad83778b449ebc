//! The `admin` function's routes: API keys (DESIGN §6.8), OAuth clients (§6.1), provider
//! presets (§6.14), licenses
//! (§6.6) and the `/admin` web UI (§6.10, in [`ui`]). Parsing and rendering only; the rules
//! live in `shared`.

pub mod ui;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use shared::{
    Context, api_keys,
    auth::{Principal, Scope},
    clients,
    http::{ApiError, Json, Query},
    licenses, providers,
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
        .route("/v1/providers", get(list_providers))
        .route("/v1/providers/{id}", get(get_provider))
        .route("/v1/licenses", post(issue_license).get(list_licenses))
        .route("/v1/licenses/lookup", post(lookup_license))
        .route("/v1/licenses/{id}", get(show_license).patch(update_license).delete(revoke_license))
        .route("/v1/licenses/{id}/installations/{installation_id}", delete(remove_installation))
        .route("/admin", get(hub_page))
        .route("/admin/connections", get(connections_page))
        .route("/admin/licenses", get(licenses_page))
        .route("/admin/requests", get(requests_page))
        .route("/admin/assets/{file}", get(ui::asset))
        .with_state(ctx)
}

/// The complete `admin` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::app::finish(app, &config)
}

async fn hub_page(headers: HeaderMap) -> Response {
    ui::page(ui::Page::Hub, &headers)
}

async fn connections_page(headers: HeaderMap) -> Response {
    ui::page(ui::Page::Connections, &headers)
}

async fn licenses_page(headers: HeaderMap) -> Response {
    ui::page(ui::Page::Licenses, &headers)
}

async fn requests_page(headers: HeaderMap) -> Response {
    ui::page(ui::Page::Requests, &headers)
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

fn license_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("license_not_found", format!("no license '{id}'")))
}

async fn issue_license(
    State(ctx): State<Context>,
    principal: Principal,
    Json(body): Json<licenses::NewLicense>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::LicensesWrite)?;
    let license = licenses::issue(&ctx, body, &principal.metadata(FUNCTION)).await?;
    Ok((StatusCode::CREATED, [("cache-control", "no-store")], axum::Json(license)))
}

async fn list_licenses(
    State(ctx): State<Context>,
    principal: Principal,
    Query(filter): Query<licenses::ListFilter>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::LicensesRead)?;
    Ok(axum::Json(licenses::list(&ctx, filter).await?))
}

async fn show_license(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::LicensesRead)?;
    let license = licenses::show(&ctx, license_id(&id)?).await?;
    Ok(([("cache-control", "no-store")], axum::Json(license)))
}

async fn lookup_license(
    State(ctx): State<Context>,
    principal: Principal,
    Json(body): Json<licenses::Lookup>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::LicensesRead)?;
    Ok(axum::Json(licenses::lookup(&ctx, &body.license_key).await?))
}

async fn update_license(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
    Json(patch): Json<licenses::LicensePatch>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::LicensesWrite)?;
    let license = licenses::update(&ctx, license_id(&id)?, patch, &principal.metadata(FUNCTION)).await?;
    Ok(axum::Json(license))
}

async fn revoke_license(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::LicensesWrite)?;
    licenses::revoke(&ctx, license_id(&id)?, &principal.metadata(FUNCTION)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_installation(
    State(ctx): State<Context>,
    principal: Principal,
    Path((id, installation_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::LicensesWrite)?;
    licenses::remove_installation(&ctx, license_id(&id)?, &installation_id, &principal.metadata(FUNCTION)).await?;
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

/// `{"items": [...]}` of a list that is never paged.
#[derive(serde::Serialize)]
struct Items<T> {
    items: Vec<T>,
}

async fn list_providers(principal: Principal) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsRead)?;
    let items: Vec<providers::Summary> = providers::list().iter().map(providers::Preset::summary).collect();
    Ok(axum::Json(Items { items }))
}

async fn get_provider(principal: Principal, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsRead)?;
    Ok(axum::Json(providers::get(&id)?))
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
