//! Request extractors whose rejections are problem+json naming the offending field
//! (`records[3].service`): JSON bodies and query strings.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use super::ApiError;

/// `Json<T>` whose rejections are problem+json naming the field (`records[3].service`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than allowed")
    } else {
        ApiError::bad_request("invalid_body", format!("the request body could not be read: {}", e.body_text()))
    }
}

/// Parses a JSON body, naming the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "the request body is empty; a JSON object is expected"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::bad_request("invalid_json", format!("the request body is not valid JSON: {message}"))
            }
            _ if path == "." || path.is_empty() => {
                ApiError::invalid_field(field_of(&message).unwrap_or_default(), message)
            }
            _ => {
                let field = match field_of(&message) {
                    Some(missing) if message.starts_with("missing field") => format!("{path}.{missing}"),
                    _ => path.clone(),
                };
                ApiError::invalid_field(field.trim_start_matches('.').to_owned(), format!("{path}: {message}"))
            }
        }
    })
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

/// Query-string extractor whose rejections are problem+json naming the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = if path == "." { field_of(&message).unwrap_or_default() } else { path };
            ApiError::invalid_field(field.clone(), format!("query parameter '{field}': {message}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Record {
        service: String,
        status_code: u16,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        records: Vec<Record>,
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let err =
            parse_json::<Batch>(br#"{"records":[{"service":"a","status_code":200},{"status_code":1}]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("records[1].service"));
        let err = parse_json::<Record>(br#"{"status_code":1}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
    }

    #[test]
    fn a_wrong_type_is_named() {
        let err = parse_json::<Record>(br#"{"service":"a","status_code":"two hundred"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("status_code"));
        assert!(err.detail.contains("status_code"), "{}", err.detail);
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        for body in [&b"{"[..], b"", b"nope", b"{\"service\":}"] {
            let err = parse_json::<Record>(body).unwrap_err();
            assert_eq!(err.code, "invalid_json", "{body:?}");
        }
    }
}
