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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_body_has_the_rfc_9457_members() {
        let body = ApiError::not_found("connection_not_found", "no connection 'b-42'").body();
        assert_eq!(
            body,
            json!({"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no connection 'b-42'", "code": "connection_not_found"})
        );
    }
}
