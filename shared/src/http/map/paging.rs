//! `paging::Error` as problem+json: 400 `invalid_request` naming `limit` or `cursor`.

use crate::{http::ApiError, paging::Error};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::invalid_field(e.field(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::paging::{decode_cursor, page_limit};

    #[test]
    fn each_outcome_has_the_status_code_field_and_detail_answered_before() {
        let limit = ApiError::from(page_limit(Some(0)).unwrap_err());
        assert_eq!(
            (limit.status, limit.code.as_ref(), limit.field.as_deref(), limit.detail.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request", Some("limit"), "limit must be between 1 and 500")
        );
        let cursor = ApiError::from(decode_cursor::<(String, i64)>("!!").unwrap_err());
        assert_eq!(
            (cursor.status, cursor.code.as_ref(), cursor.field.as_deref(), cursor.detail.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request", Some("cursor"), "cursor is not one this service issued")
        );
    }
}
