//! `ApiError`: the one shape every HTTP answer of an error takes (RFC 9457
//! `application/problem+json`), and the mapping of the infrastructure errors (database, event
//! store) to it. Domain errors are mapped here too, once per domain enum. Internal causes are
//! logged, never answered.

use std::borrow::Cow;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{db::DbError, events::EventStoreError};

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

    /// 500; `cause` is logged (`{:#}`, so error types that print their chain that way do),
    /// never answered.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %format_args!("{cause:#}"), "internal error");
        Self::plain_500()
    }

    /// 500 for an error with sources: logged once with its whole cause chain (a database
    /// error with its SQLSTATE and server message, not just "db error"), never answered.
    pub fn internal_error(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %cause_chain(cause), "internal error");
        Self::plain_500()
    }

    fn plain_500() -> Self {
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

/// An `ApiError` is already an answer; it has no source of its own (the cause was logged
/// where it was built).
impl std::error::Error for ApiError {}

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
            tracing::error!(error = %cause_chain(&e), "database unavailable");
            return Self::unavailable("database_unavailable", "the database is unavailable; try again shortly", 2);
        }
        Self::internal_error(&e)
    }
}

/// `error: cause: cause…`, each link once. A PostgreSQL error is told by its SQLSTATE, server
/// message and the schema objects it names; its DETAIL and HINT are left out, since they
/// can quote row values.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut current = Some(error);
    let mut previous = String::new();
    while let Some(e) = current {
        let text = match e.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => {
                let mut t = format!("{} {}", db.code().code(), db.message());
                for (name, value) in [("table", db.table()), ("column", db.column()), ("constraint", db.constraint())] {
                    if let Some(v) = value {
                        t.push_str(&format!(" ({name} {v})"));
                    }
                }
                t
            }
            None => e.to_string(),
        };
        // thiserror's `{0}` wrappers repeat their source; say each thing once.
        if !previous.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        previous = text;
        current = e.source();
    }
    out
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
            other => Self::internal_error(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_cause_chain_names_every_link_once() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(cause_chain(&e), "outer failed: disk on fire");
        let answered = ApiError::internal_error(&e);
        assert_eq!(answered.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!answered.detail.contains("disk"), "{}", answered.detail);
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
