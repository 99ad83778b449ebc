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
            Error::KeyRing(_) | Error::Pepper(_) | Error::SigningKeys(_) => ApiError::internal_error(&e),
            Error::Db(db) => db.into(),
            Error::Store(store) => store.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use uuid::Uuid;

    use super::*;
    use crate::secrets::SecretsError;

    #[test]
    fn each_outcome_has_its_status_and_code() {
        let id = Uuid::nil();
        let unavailable = || SecretsError::NotConfigured("LICENSE_SIGNING_KEYS");
        let cases: Vec<(Error, StatusCode, &str)> = vec![
            (Error::invalid("limit", "limit must be between 1 and 500"), StatusCode::BAD_REQUEST, "invalid_request"),
            (Error::NotFound(id), StatusCode::NOT_FOUND, "license_not_found"),
            (Error::KeyNotFound, StatusCode::NOT_FOUND, "license_not_found"),
            (Error::InstallationNotFound(id), StatusCode::NOT_FOUND, "installation_not_found"),
            (Error::KeyExists, StatusCode::CONFLICT, "license_key_exists"),
            (Error::Revoked(id), StatusCode::CONFLICT, "license_revoked"),
            (Error::UnknownStatus("paused".into()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            (Error::KeyRing(unavailable()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            (Error::Pepper(unavailable()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            (Error::SigningKeys(unavailable()), StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        ];
        for (error, status, code) in cases {
            let shown = format!("{error:?}");
            let answer = ApiError::from(error);
            assert_eq!((answer.status, answer.code.as_ref()), (status, code), "{shown}");
            assert!(!answer.detail.contains("LICENSE_") && !answer.detail.contains("paused"), "{shown}");
        }
        let field = ApiError::from(Error::invalid("cursor", "cursor is not one this service issued"));
        assert_eq!(field.field.as_deref(), Some("cursor"));
    }
}
