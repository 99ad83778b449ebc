//! `api_keys::Error` as problem+json: 400 `invalid_request` naming the field, 404
//! `api_key_not_found`.

use crate::{api_keys::Error, http::ApiError};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField { field, ref detail } => ApiError::invalid_field(field, detail.clone()),
            Error::NotFound(_) => ApiError::not_found("api_key_not_found", e.to_string()),
            Error::Db(db) => db.into(),
            Error::EventStore(store) => store.into(),
        }
    }
}
