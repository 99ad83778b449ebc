//! HTTP plumbing shared by every HTTP function: problem+json errors, extractors that name
//! the offending field, request ids, body limits, keyset cursors, and serving one router
//! either under the Lambda runtime or as a plain local HTTP server.
//!
//! Owns the single mapping from internal errors to HTTP answers. It never puts an internal
//! cause (SQL, stack, secret) into a response: those go to the log with the request id.

use std::{borrow::Cow, time::Duration};

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::{config::Config, db::DbError, events::EventStoreError};

/// The `x-request-id` header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An error answered as RFC 9457 `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, documented machine code.
    pub code: Cow<'static, str>,
    /// Explanation for people.
    pub detail: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// `Retry-After` seconds, for 503s.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self { status, code: code.into(), detail: detail.into(), field: None, retry_after: None }
    }

    /// 400 `invalid_request` naming `field`.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        Self { field: Some(field), ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail) }
    }

    /// 400 with a specific code.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 with a specific code.
    pub fn not_found(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 409 with a specific code.
    pub fn conflict(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, detail: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail) }
    }

    /// 500; `cause` is logged, never answered.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred; the request id identifies it in the logs",
        )
    }

    /// Sets the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The problem+json body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(field) = &self.field {
            body["field"] = Value::String(field.clone());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"keyledger\""));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_connection_broken() || matches!(e, DbError::Secrets(_)) {
            tracing::error!(error = %e, "database unavailable");
            return Self::unavailable("database_unavailable", "the database is unavailable; try again shortly", 2);
        }
        Self::internal(e)
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(e).into()
    }
}

impl From<EventStoreError> for ApiError {
    fn from(e: EventStoreError) -> Self {
        match e {
            EventStoreError::Conflict { .. } => {
                Self::conflict("concurrent_update", "another request changed this resource at the same time; retry")
            }
            EventStoreError::Db(db) => db.into(),
            other => Self::internal(other),
        }
    }
}

/// `Json<T>` whose rejections are problem+json naming the field (`records[3].service`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than allowed")
    } else {
        ApiError::bad_request("invalid_body", format!("the request body could not be read: {}", e.body_text()))
    }
}

/// Parses a JSON body, naming the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; a JSON object is expected"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::bad_request("invalid_json", format!("the request body is not valid JSON: {message}"))
            }
            _ if path == "." || path.is_empty() => {
                ApiError::invalid_field(field_of(&message).unwrap_or_default(), message)
            }
            _ => {
                let field = match field_of(&message) {
                    Some(missing) if message.starts_with("missing field") => format!("{path}.{missing}"),
                    _ => path.clone(),
                };
                ApiError::invalid_field(field.trim_start_matches('.').to_owned(), format!("{path}: {message}"))
            }
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Query-string extractor whose rejections are problem+json naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = if path == "." { field_of(&message).unwrap_or_default() } else { path };
            ApiError::invalid_field(field.clone(), format!("query parameter '{field}': {message}"))
        })
    }
}

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

/// Adds what every keyledger HTTP function has: problem+json 404/405, a body limit (413),
/// request ids and a span per request, a panic turned into a 500 problem, and, with
/// `LOG_OWN_REQUESTS`, the request log of its own requests (inside the request-id layer, so
/// that records carry the request id, and outside the panic guard, so that 500s are logged).
pub fn finish(router: Router, config: &Config) -> Router {
    let router = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(config.http_body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal("handler panicked").into_response()
        }));
    let router = if config.log_own_requests { router.layer(crate::request_log::layer(config)) } else { router };
    router.layer(middleware::from_fn(request_context))
}

/// Serves `router` under the Lambda runtime when one is present (`AWS_LAMBDA_RUNTIME_API`,
/// also set by `cargo lambda watch`), else as a plain HTTP server on `LISTEN_ADDR`.
pub async fn serve(router: Router, config: &Config) -> Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_http::run(router).await
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

/// Page size of a list: `?limit=` between 1 and 500, 50 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=500).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field("limit", "limit must be between 1 and 500")),
    }
}

/// Encodes a keyset position as an opaque cursor.
pub fn encode_cursor<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

/// Decodes a cursor made by [`encode_cursor`]; 400 naming `cursor` otherwise.
pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid_field("cursor", "cursor is not one this service issued"))
}

/// A list answer `{"items": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// This page.
    pub items: Vec<T>,
    /// Where the next page starts, or null at the end.
    pub next_cursor: Option<String>,
}

/// Deadline helper: runs `fut` for at most `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, fut).await.ok()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Record {
        service: String,
        status_code: u16,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        records: Vec<Record>,
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let err =
            parse_json::<Batch>(br#"{"records":[{"service":"a","status_code":200},{"status_code":1}]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("records[1].service"));
        let err = parse_json::<Record>(br#"{"status_code":1}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = parse_json::<Record>(br#"{"service":"a","status_code":"two hundred"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        assert!(err.detail.contains("status_code"), "{}", err.detail);
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        for body in [&b"{"[..], b"", b"nope", b"{\"service\":}"] {
            let err = parse_json::<Record>(body).unwrap_err();
            assert_eq!(err.code, "invalid_json", "{body:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&("2026-01-01T00:00:00Z", 42));
        let back: (String, i64) = decode_cursor(&c).unwrap();
        assert_eq!(back.1, 42);
        assert_eq!(decode_cursor::<(String, i64)>("!!").unwrap_err().field.as_deref(), Some("cursor"));
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some(500)).unwrap(), 500);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(501)).is_err());
    }

    #[test]
    fn problem_body_has_the_rfc_9457_members() {
        let body = ApiError::not_found("connection_not_found", "no connection 'b-42'").body();
        assert_eq!(
            body,
            json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no connection 'b-42'", "code": "connection_not_found"})
        );
    }
}
