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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let cases: Vec<(Error, StatusCode, &str, Option<&str>)> = vec![
            (
                Error::InvalidField { field: "records[3].status_code".into(), detail: "x".into() },
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some("records[3].status_code"),
            ),
            (Error::InvalidJson("eof".into()), StatusCode::BAD_REQUEST, "invalid_json", None),
            (Error::BodyTooLarge, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None),
            (Error::TooManyRecords(1001), StatusCode::PAYLOAD_TOO_LARGE, "too_many_records", None),
            (Error::NotFound("r1".into()), StatusCode::NOT_FOUND, "request_not_found", None),
        ];
        for (error, status, code, field) in cases {
            let shown = format!("{error:?}");
            let answer = ApiError::from(error);
            assert_eq!(
                (answer.status, answer.code.as_ref(), answer.field.as_deref()),
                (status, code, field),
                "{shown}"
            );
        }
    }
}
