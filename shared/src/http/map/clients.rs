//! `clients::Error` as problem+json: 400 `invalid_request` naming the field, 404
//! `client_not_found`, 409 `client_in_use`, 409 `client_has_no_preset` naming `preset_params`, 409 `concurrent_update` (via the event store),
//! 503 `database_unavailable`, and a plain 500 for unreadable stored data or missing keys.

use crate::{clients::Error, http::ApiError};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField { field, detail } => ApiError::invalid_field(field, detail),
            Error::NotFound(_) => ApiError::not_found("client_not_found", e.to_string()),
            Error::InUse(_) => ApiError::conflict("client_in_use", e.to_string()),
            Error::NoPreset => ApiError::conflict("client_has_no_preset", e.to_string()).with_field("preset_params"),
            Error::Corrupt(_) | Error::Keys(_) => ApiError::internal_error(&e),
            Error::Store(store) => store.into(),
            Error::Db(db) => db.into(),
        }
    }
}
