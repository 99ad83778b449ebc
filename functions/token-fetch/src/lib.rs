//! The `token-fetch` function's routes (DESIGN §6.2, §6.4, §6.14): valid access tokens,
//! forced refreshes, starting authorizations, client-credentials connections, connection
//! status, tags, history and revocation.
//! Parsing and rendering only; the rules live in `shared::connections`.

use axum::{
    Router,
    body::Body,
    extract::{FromRef, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use shared::{
    Context,
    auth::{Principal, Scope},
    connections::{self, Refresher, Token},
    http::{ApiError, Json, Query, RequestId, parse_query},
};

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "token-fetch";

/// What every handler shares: built once per execution environment.
#[derive(Clone)]
pub struct AppState {
    /// Config, database, secrets.
    pub ctx: Context,
    /// Provider HTTP client and the in-process refresh gate.
    pub refresher: Refresher,
}

impl FromRef<AppState> for Context {
    fn from_ref(state: &AppState) -> Context {
        state.ctx.clone()
    }
}

/// The routes without `/health`, for merging into a combined local server.
pub fn routes(ctx: Context) -> Router {
    let refresher = Refresher::new(ctx.config());
    Router::new()
        .route("/v1/tokens/{id}", get(get_token))
        .route("/v1/tokens/{id}/refresh", post(refresh_token))
        .route("/v1/connections/authorize", post(authorize))
        .route("/v1/connections", get(list_connections).post(create_connection))
        .route("/v1/connections/{id}", get(get_connection).patch(update_connection).delete(revoke_connection))
        .route("/v1/connections/{id}/events", get(connection_events))
        .with_state(AppState { ctx, refresher })
}

/// The complete `token-fetch` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::app::finish(app, &config)
}

fn token_response(token: &Token) -> Response {
    let mut response = Response::new(Body::from(token.body()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    shared::http::no_store(headers);
    response
}

async fn get_token(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = connections::fetch_token(&state.ctx, &state.refresher, authorization, &id, &request_id).await?;
    Ok(token_response(&token))
}

async fn refresh_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    principal.require(Scope::TokensRefresh)?;
    let id = connections::parse_path_id(&id)?;
    let token = connections::force_refresh(&state.ctx, &state.refresher, &id, &principal.metadata(FUNCTION)).await?;
    Ok(token_response(&token))
}

async fn authorize(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<connections::AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsWrite)?;
    let started = connections::start_authorization(&state.ctx, body).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], axum::Json(started)))
}

async fn list_connections(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsRead)?;
    let (tags, rest) = connections::split_tag_filters(query.as_deref().unwrap_or(""))?;
    let params = connections::ListParams { tags, ..parse_query(&rest)? };
    Ok(axum::Json(connections::list(&state.ctx, params).await?))
}

async fn create_connection(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<connections::NewConnection>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsWrite)?;
    let created =
        connections::create(&state.ctx, &state.refresher.provider, body, &principal.metadata(FUNCTION)).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

async fn update_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(body): Json<connections::TagsPatch>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsWrite)?;
    let id = connections::parse_path_id(&id)?;
    Ok(axum::Json(connections::update_tags(&state.ctx, &id, body, &principal.metadata(FUNCTION)).await?))
}

async fn get_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsRead)?;
    let id = connections::parse_path_id(&id)?;
    Ok(axum::Json(connections::get(&state.ctx, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn connection_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ConnectionsRead)?;
    let id = connections::parse_path_id(&id)?;
    Ok(axum::Json(connections::history(&state.ctx, &id, params.limit, params.cursor.as_deref()).await?))
}

async fn revoke_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::ConnectionsWrite)?;
    let id = connections::parse_path_id(&id)?;
    connections::revoke(&state.ctx, &state.refresher.provider, &id, &principal.metadata(FUNCTION)).await?;
    Ok(StatusCode::NO_CONTENT)
}
