//! `request_log::Error` as problem+json: 400 `invalid_request` naming the field, 400
//! `invalid_json`, 413 `body_too_large` / `too_many_records`, 404 `request_not_found`.

use axum::http::StatusCode;

use crate::{http::ApiError, request_log::Error};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidField { field, detail } => ApiError::invalid_field(field, detail),
            Error::InvalidJson(_) => ApiError::bad_request("invalid_json", e.to_string()),
            Error::BodyTooLarge => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.to_string()),
            Error::TooManyRecords(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", e.to_string()),
            Error::NotFound(_) => ApiError::not_found("request_not_found", e.to_string()),
            Error::Db(db) => db.into(),
        }
    }
}
