//! HTTP plumbing shared by every HTTP function: problem+json errors, extractors that name
//! the offending field, request ids, body limits, and serving one router
//! either under the Lambda runtime or as a plain local HTTP server.
//!
//! Owns the single mapping from internal errors to HTTP answers. It never puts an internal
//! cause (SQL, stack, secret) into a response: those go to the log with the request id.

use std::time::Duration;

use axum::{
    Router,
    extract::{FromRequestParts, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

mod extract;
pub mod lambda;
mod map;
mod problem;
pub mod request_log_layer;

pub use extract::{Json, OpenJson, Query, parse_json, parse_json_with, parse_open_json, parse_query};
pub use problem::{ApiError, cause_chain};

use crate::config::Config;

/// The `x-request-id` header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the caller's `x-request-id`, else API Gateway's, else a new UUID v7.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<RequestId>().cloned().unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string())))
    }
}

fn request_id_of(req: &Request) -> String {
    if let Some(id) = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok())
        && !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_graphic())
    {
        return id.to_owned();
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        req.extensions().get::<lambda_http::request::RequestContext>()
        && let Some(id) = &ctx.request_id
    {
        return id.clone();
    }
    uuid::Uuid::now_v7().to_string()
}

async fn request_context(mut req: Request, next: Next) -> Response {
    let id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    async move {
        let started = std::time::Instant::now();
        let mut response = next.run(req).await;
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "handled"
        );
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID.clone(), value);
        }
        response
    }
    .instrument(span)
    .await
}

async fn not_found() -> ApiError {
    ApiError::not_found("route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}

/// JSON answers (data and problems alike) are never stored by a browser or proxy: they carry
/// keys, tokens and customer data and change with every write. A handler may still choose
/// its own `Cache-Control`.
async fn json_is_never_cached(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("application/problem+json"));
    if json {
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    response
}

/// The layers every keyledger HTTP function has inside its request log (see `app::finish`,
/// which adds the request log and [`with_request_context`] around them): problem+json
/// 404/405, a body limit (413), a panic turned into a 500 problem, and
/// `Cache-Control: no-store` on JSON answers.
pub fn plumbing(router: Router, config: &Config) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(config.http_body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(middleware::map_response(json_is_never_cached))
}

/// The outermost layer: a request id (the caller's, API Gateway's or a new one) in the
/// request's extensions and the response's `x-request-id`, and a span per request.
pub fn with_request_context(router: Router) -> Router {
    router.layer(middleware::from_fn(request_context))
}

/// Serves `router` under the Lambda runtime when one is present (`AWS_LAMBDA_RUNTIME_API`,
/// also set by `cargo lambda watch`), through [`lambda::invoke`] so that an undecodable body
/// is a 400 rather than a runtime panic; else as a plain HTTP server on `LISTEN_ADDR`.
pub async fn serve(router: Router, config: &Config) -> Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let router = router.clone();
            async move { lambda::invoke(router, event.payload, event.context).await }
        }))
        .await
    } else {
        let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
        Ok(())
    }
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// `Cache-Control: no-store`, for answers that carry secrets or change every time.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Deadline helper: runs `fut` for at most `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, fut).await.ok()
}
