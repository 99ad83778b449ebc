//! `auth::Error` as problem+json: 401 `unauthorized` (with `WWW-Authenticate`, added by
//! `ApiError`'s response), 403 `insufficient_scope`.

use axum::http::StatusCode;

use crate::{auth::Error, http::ApiError};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::MissingKey | Error::UnknownKey => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            Error::InsufficientScope(_) => ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", e.to_string()),
            Error::Db(db) => db.into(),
            Error::Context(api) => api,
        }
    }
}
