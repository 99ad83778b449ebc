//! `auth::Error` as problem+json: 401 `unauthorized` (with `WWW-Authenticate`, added by
//! `ApiError`'s response), 403 `insufficient_scope`, a plain 500 when the bootstrap admin key
//! cannot be read. And [`Principal`] as a request extractor whose rejection is that answer.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{StatusCode, header, request::Parts},
};

use crate::{
    auth::{Error, Principal, authenticate},
    context::Context,
    http::{ApiError, RequestId},
};

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::MissingKey | Error::UnknownKey => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            Error::InsufficientScope(_) => ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", e.to_string()),
            Error::Db(db) => db.into(),
            Error::AdminKey(_) => ApiError::internal_error(&e),
        }
    }
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Context: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ctx = Context::from_ref(state);
        let RequestId(request_id) = RequestId::from_request_parts(parts, state).await.unwrap_or_else(|e| match e {});
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        Ok(authenticate(&ctx, header, request_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{auth::Scope, secrets::SecretsError};

    #[test]
    fn each_outcome_has_its_status_and_code() {
        let cases = [
            (Error::MissingKey, StatusCode::UNAUTHORIZED, "unauthorized"),
            (Error::UnknownKey, StatusCode::UNAUTHORIZED, "unauthorized"),
            (Error::InsufficientScope(Scope::TokensRefresh), StatusCode::FORBIDDEN, "insufficient_scope"),
            (
                Error::AdminKey(SecretsError::Malformed { name: "ADMIN_API_KEY".into(), reason: "empty".into() }),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            ),
        ];
        for (error, status, code) in cases {
            let shown = format!("{error:?}");
            let answer = ApiError::from(error);
            assert_eq!((answer.status, answer.code.as_ref()), (status, code), "{shown}");
            assert!(!answer.detail.contains("ADMIN_API_KEY"), "internal causes are logged, not answered");
        }
    }
}
