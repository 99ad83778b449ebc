//! `licenses::Error` as problem+json: 400 `invalid_request` naming the field, 404
//! `license_not_found` / `installation_not_found`, 409 `license_key_exists` /
//! `license_revoked`, and 500 for what the caller cannot fix (an unknown stored status fails
//! closed here, logged once, never answered in detail).

use crate::{http::ApiError, licenses::Error};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField { field, detail } => ApiError::invalid_field(field, detail),
            Error::NotFound(_) | Error::KeyNotFound => ApiError::not_found("license_not_found", e.to_string()),
            Error::InstallationNotFound(_) => ApiError::not_found("installation_not_found", e.to_string()),
            Error::KeyExists => ApiError::conflict("license_key_exists", e.to_string()),
            Error::Revoked(_) => ApiError::conflict("license_revoked", e.to_string()),
            Error::UnknownStatus(_) | Error::Internal(_) => ApiError::internal(&e),
            Error::KeyRing(_) => ApiError::internal_error(&e),
            Error::Context(api) => api,
            Error::Db(db) => db.into(),
            Error::Store(store) => store.into(),
        }
    }
}
