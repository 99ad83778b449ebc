//! One API Gateway (HTTP API) invocation through a router, as `lambda_http::run` does it, but
//! with the event's body screened first: `aws_lambda_events` decodes a body flagged
//! `isBase64Encoded` with an `expect` (`Body::from_maybe_encoded`), so a body that is not
//! valid base64 would panic in the runtime, outside every handler, and reach the caller as a
//! 5xx. Bytes that decode but are not UTF-8 reach the router, whose extractors answer 400.

use axum::{Router, http::StatusCode};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::ApiError;

/// The 400 answer (an API Gateway v2 response) for an event whose body cannot be decoded,
/// or `None` when the event may go on to `lambda_http`.
pub fn refuse_undecodable(event: &Value) -> Option<Value> {
    let flagged = event.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = event.get("body").and_then(Value::as_str)?;
    if !flagged || STANDARD.decode(body).is_ok() {
        return None;
    }
    let problem = ApiError::bad_request("invalid_body", "the request body is flagged base64 but is not valid base64");
    Some(json!({
        "statusCode": StatusCode::BAD_REQUEST.as_u16(),
        "headers": {"content-type": "application/problem+json", "cache-control": "no-store"},
        "body": problem.body().to_string(),
        "isBase64Encoded": false,
    }))
}

/// Serves one HTTP event with `router` and returns the API Gateway v2 response.
pub async fn invoke(
    router: Router,
    event: Value,
    context: lambda_runtime::Context,
) -> Result<Value, lambda_runtime::Error> {
    if let Some(answer) = refuse_undecodable(&event) {
        return Ok(answer);
    }
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event)?;
    let adapter = lambda_http::Adapter::from(router);
    let response = adapter.oneshot(lambda_runtime::LambdaEvent::new(request, context)).await?;
    Ok(serde_json::to_value(response)?)
}
