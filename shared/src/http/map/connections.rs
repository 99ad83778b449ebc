//! `connections::Error` as problem+json (DESIGN §6.2–§6.4, §6.14): 400 `invalid_request` /
//! `invalid_state`, 404 `connection_not_found`, 409 `connection_exists` /
//! `reauthorization_required` / `connection_revoked` / `no_refresh_token`, 502
//! `provider_error`, 503 `refresh_failed` with `Retry-After`.

use axum::http::StatusCode;

use crate::{connections::Error, http::ApiError};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::InvalidField { field, .. } => ApiError::invalid_field(field, detail),
            Error::NotFound(_) => ApiError::not_found("connection_not_found", detail),
            Error::OwnedByAnotherClient(_) => ApiError::conflict("connection_exists", detail),
            Error::InvalidState => ApiError::bad_request("invalid_state", detail),
            Error::ReauthorizationRequired(_) | Error::ExpiredWithoutRefreshToken(_) => {
                ApiError::conflict("reauthorization_required", detail)
            }
            Error::Revoked(_) => ApiError::conflict("connection_revoked", detail),
            Error::NoRefreshToken(_) => ApiError::conflict("no_refresh_token", detail),
            Error::Expired { retry_after } | Error::RefreshFailed { retry_after, .. } => {
                ApiError::unavailable("refresh_failed", detail, retry_after)
            }
            Error::LockBusy => ApiError::unavailable("refresh_failed", detail, 1),
            Error::Provider { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", detail),
            Error::GrantNotAllowed(_) => ApiError::invalid_field("grant", detail),
            Error::Auth(auth) => auth.into(),
            Error::UnknownStored { .. } | Error::Inconsistent(_) | Error::Crypto(_) => ApiError::internal_error(&e),
            Error::Db(db) => db.into(),
            Error::EventStore(store) => store.into(),
            Error::Upstream(api) => api,
        }
    }
}
