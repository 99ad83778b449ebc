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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let cases: Vec<(Error, StatusCode, &str, Option<&str>)> = vec![
            (
                Error::InvalidField { field: "scopes", detail: "x".into() },
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("scopes"),
            ),
            (Error::NotFound(Uuid::nil()), StatusCode::NOT_FOUND, "api_key_not_found", None),
        ];
        super::super::assert_maps(cases);
    }
}
