//! Reading what a token endpoint answers: the OAuth error in it (also inside an HTTP 200,
//! as Zoho and Slack send them), the provider's own codes mapped by the client's quirks, and
//! a token answer cut down to the standard fields and the captured ones.

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::{CapturePath, ErrorClass, ProviderError, TokenSet, capture, clip};
use crate::clients::Quirks;

/// A refresh error read through the provider's own vocabulary: a code the client's
/// `refresh_error_map` names is classified as the RFC 6749 code it maps to (Zoho answers a
/// dead refresh token with `invalid_code`, which is `invalid_grant`).
pub(super) fn map_refresh_error(mut e: ProviderError, quirks: &Quirks) -> ProviderError {
    let Some(code) = e.error.as_deref() else { return e };
    let Some(meaning) = quirks.errors.refresh_error_map.get(code) else { return e };
    if matches!(e.class, ErrorClass::RateLimited | ErrorClass::ServerError) && meaning == "invalid_grant" {
        // A 429 or 5xx is transient whatever its body says.
        return e;
    }
    e.class = class_of_code(meaning);
    e
}

/// Slack's convention: HTTP 200 with `{"ok": false, "error": "invalid_code"}`.
pub(super) fn ok_false_error(body: &[u8]) -> Option<ProviderError> {
    let json: Map<String, Value> = serde_json::from_slice(body).ok()?;
    if json.get("ok") != Some(&Value::Bool(false)) {
        return None;
    }
    let code = json.get("error").and_then(Value::as_str).map(clip).unwrap_or_else(|| "unknown_error".to_owned());
    Some(ProviderError {
        class: class_of_code(&code),
        message: format!("the provider answered ok=false ({code})"),
        error: Some(code),
        retry_after: None,
    })
}

/// The class an RFC 6749 error code means.
pub(super) fn class_of_code(code: &str) -> ErrorClass {
    match code {
        "invalid_grant" => ErrorClass::InvalidGrant,
        "temporarily_unavailable" | "server_error" => ErrorClass::ServerError,
        "slow_down" | "ratelimited" => ErrorClass::RateLimited,
        _ => ErrorClass::Rejected,
    }
}

/// The OAuth error in an answer, if it is one. Some providers (Zoho) answer errors with
/// HTTP 200 and an `error` member, so the body decides as much as the status.
pub fn classify_error(status: u16, body: &[u8], retry_after: Option<u64>) -> Option<ProviderError> {
    let json: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let error = json.as_ref().and_then(|m| m.get("error")).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        // A few providers nest it: {"error": {"code": ..., "message": ...}}.
        Value::Object(o) => {
            o.get("code").or_else(|| o.get("status")).map(|c| c.to_string().trim_matches('"').to_owned())
        }
        _ => None,
    });
    let description = json
        .as_ref()
        .and_then(|m| m.get("error_description").or_else(|| m.get("message")))
        .and_then(Value::as_str)
        // Kept for the event (bounded, no control characters, credentials redacted in case a
        // provider echoes what it was sent); never shown on the public callback page.
        .map(|d| clip(&crate::request_log::redact::redact(d)));
    let class = if status == 429 {
        ErrorClass::RateLimited
    } else if status >= 500 {
        ErrorClass::ServerError
    } else if let Some(code) = &error {
        // Provider-specific codes are mapped by the client's quirks (`refresh_error_map`).
        // Zoho's `invalid_code` alone is also known here, as it was before presets existed,
        // so that Zoho clients registered by hand keep treating it as a dead grant.
        if code == "invalid_code" { ErrorClass::InvalidGrant } else { class_of_code(code) }
    } else if (400..500).contains(&status) {
        ErrorClass::Rejected
    } else {
        return None;
    };
    let message =
        description.or_else(|| error.clone()).unwrap_or_else(|| format!("the provider answered HTTP {status}"));
    Some(ProviderError { class, error: error.map(|e| clip(&e)), message: clip(&message), retry_after })
}

/// Reads a token response: JSON, or form-encoded for the few providers that still send it.
/// Of it only the standard fields and what `capture` names survive.
pub fn parse_token_response(
    body: &[u8],
    form_encoded: bool,
    capture: &[CapturePath],
) -> Result<TokenSet, ProviderError> {
    let map: Map<String, Value> = if form_encoded {
        form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
    } else {
        serde_json::from_slice(body)
            .map_err(|_| ProviderError::new(ErrorClass::InvalidResponse, "the token response is not a JSON object"))?
    };
    token_set(map, capture)
}

fn token_set(mut map: Map<String, Value>, capture: &[CapturePath]) -> Result<TokenSet, ProviderError> {
    // An allow-list, not a deny-list: providers nest tokens under names nobody can predict
    // (Slack's `authed_user.access_token`, `bot.bot_access_token`).
    let provider_data = capture::select(&map, capture);
    let access_token = match map.remove("access_token") {
        Some(Value::String(s)) if !s.is_empty() => SecretString::from(s),
        _ => return Err(ProviderError::new(ErrorClass::InvalidResponse, "the token response has no access_token")),
    };
    let refresh_token = match map.remove("refresh_token") {
        Some(Value::String(s)) if !s.is_empty() => Some(SecretString::from(s)),
        _ => None,
    };
    let token_type = match map.remove("token_type") {
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") || t.is_empty() => "Bearer".to_owned(),
        Some(Value::String(t)) => clip(&t),
        _ => "Bearer".to_owned(),
    };
    let expires_in = match map.remove("expires_in") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|s| *s > 0);
    let scopes = map.remove("scope").and_then(|v| parse_scopes(&v));
    Ok(TokenSet { access_token, refresh_token, token_type, expires_in, scopes, provider_data })
}

/// Scopes as providers send them: a space- or comma-separated string, or an array.
pub fn parse_scopes(value: &Value) -> Option<Vec<String>> {
    let items: Vec<String> = match value {
        Value::String(s) => s.split([' ', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Value::Array(a) => {
            a.iter().filter_map(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }
        _ => return None,
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for s in items {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Some(out)
}
