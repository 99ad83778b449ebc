//! `connections::Error` as problem+json (DESIGN §6.2–§6.4, §6.14): 400 `invalid_request` /
//! `invalid_state`, 404 `connection_not_found`, 409 `connection_exists` /
//! `reauthorization_required` / `connection_revoked` / `no_refresh_token`, 502
//! `provider_error`, 503 `refresh_failed` with `Retry-After`.

use axum::http::StatusCode;

use crate::{connections::Error, http::ApiError, oauth::StateError};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let detail = e.to_string();
        match e {
            Error::InvalidField { field, .. } => ApiError::invalid_field(field, detail),
            Error::NotFound(_) => ApiError::not_found("connection_not_found", detail),
            Error::OwnedByAnotherClient(_) => ApiError::conflict("connection_exists", detail),
            Error::InvalidState => ApiError::bad_request("invalid_state", detail),
            Error::ReauthorizationRequired(_) | Error::ExpiredWithoutRefreshToken(_) => {
                ApiError::conflict("reauthorization_required", detail)
            }
            Error::Revoked(_) => ApiError::conflict("connection_revoked", detail),
            Error::NoRefreshToken(_) => ApiError::conflict("no_refresh_token", detail),
            Error::Expired { retry_after } | Error::RefreshFailed { retry_after, .. } => {
                ApiError::unavailable("refresh_failed", detail, retry_after)
            }
            Error::LockBusy => ApiError::unavailable("refresh_failed", detail, 1),
            Error::Provider { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", detail),
            Error::GrantNotAllowed(_) => ApiError::invalid_field("grant", detail),
            Error::Auth(auth) => auth.into(),
            Error::UnknownStored { .. } | Error::Inconsistent(_) | Error::Crypto(_) => ApiError::internal_error(&e),
            Error::Db(db) => db.into(),
            Error::EventStore(store) => store.into(),
            Error::Client(client) => client.into(),
            Error::PendingAuthorization(StateError::Db(db)) => db.into(),
            Error::KeyRing(_) | Error::PendingAuthorization(_) => ApiError::internal_error(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::ConnectionId;

    #[test]
    fn each_outcome_has_the_status_and_code_the_design_names() {
        let id = || ConnectionId::parse("b-42").unwrap();
        let cases: Vec<(Error, StatusCode, &str)> = vec![
            (Error::invalid("tags", "x"), StatusCode::BAD_REQUEST, "invalid_request"),
            (Error::NotFound("b-42".into()), StatusCode::NOT_FOUND, "connection_not_found"),
            (Error::OwnedByAnotherClient(id()), StatusCode::CONFLICT, "connection_exists"),
            (Error::InvalidState, StatusCode::BAD_REQUEST, "invalid_state"),
            (Error::ReauthorizationRequired(id()), StatusCode::CONFLICT, "reauthorization_required"),
            (Error::ExpiredWithoutRefreshToken(id()), StatusCode::CONFLICT, "reauthorization_required"),
            (Error::Revoked(id()), StatusCode::CONFLICT, "connection_revoked"),
            (Error::NoRefreshToken(id()), StatusCode::CONFLICT, "no_refresh_token"),
            (Error::Expired { retry_after: 7 }, StatusCode::SERVICE_UNAVAILABLE, "refresh_failed"),
            (Error::LockBusy, StatusCode::SERVICE_UNAVAILABLE, "refresh_failed"),
            (
                Error::Provider { code: "invalid_client".into(), message: "text".into() },
                StatusCode::BAD_GATEWAY,
                "provider_error",
            ),
            (Error::GrantNotAllowed("client_credentials"), StatusCode::BAD_REQUEST, "invalid_request"),
            (
                Error::UnknownStored { what: "status", value: "paused".into() },
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
        ];
        for (error, status, code) in cases {
            let shown = format!("{error:?}");
            let answer = ApiError::from(error);
            assert_eq!((answer.status, answer.code.as_ref()), (status, code), "{shown}");
        }
        let expired = ApiError::from(Error::Expired { retry_after: 7 });
        assert_eq!(expired.retry_after, Some(7));
        let refused = ApiError::from(Error::Provider { code: "invalid_client".into(), message: "secret text".into() });
        assert!(refused.detail.contains("invalid_client") && !refused.detail.contains("secret text"));
        let unknown = ApiError::from(Error::UnknownStored { what: "status", value: "paused".into() });
        assert!(!unknown.detail.contains("paused"), "internal causes are logged, not answered");
    }
}
