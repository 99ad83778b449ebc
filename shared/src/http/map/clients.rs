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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::events::{EventStoreError, ExpectedVersion};

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let conflict =
            EventStoreError::Conflict { stream_id: "client-1".into(), expected: ExpectedVersion::Exact(1), actual: 2 };
        let cases: Vec<(Error, StatusCode, &str, Option<&str>)> = vec![
            (Error::invalid("scopes[0]", "x"), StatusCode::BAD_REQUEST, "invalid_request", Some("scopes[0]")),
            (Error::NotFound("c1".into()), StatusCode::NOT_FOUND, "client_not_found", None),
            (Error::InUse(2), StatusCode::CONFLICT, "client_in_use", None),
            (Error::NoPreset, StatusCode::CONFLICT, "client_has_no_preset", Some("preset_params")),
            (Error::Store(conflict), StatusCode::CONFLICT, "concurrent_update", None),
            (Error::Corrupt("quirks: secret-ish".into()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
        ];
        super::super::assert_maps(cases);
        let corrupt = ApiError::from(Error::Corrupt("quirks: secret-ish".into()));
        assert!(!corrupt.detail.contains("secret-ish"), "internal causes are logged, not answered");
    }
}
