//! One record: what a caller sends ([`NewRecord`]), its checks, redaction and truncation
//! ([`Record::parse`]), and the batch and SQS body parsers. No database here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

use super::{
    Error, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_ENDPOINT, MAX_METHOD, MAX_REQUEST_ID, MAX_SERVICE, MAX_USER, redact,
};

/// A record as a caller sends it (DESIGN §6.7); checked by [`Record::parse`].
#[derive(Debug, Deserialize)]
pub struct NewRecord {
    /// When the call happened (RFC 3339); the time of receipt when absent.
    pub timestamp: Option<String>,
    /// The calling or serving service.
    pub service: String,
    /// The path or operation called.
    pub endpoint: String,
    /// The HTTP method (any case; stored upper-case).
    pub method: String,
    /// Who the call was for (an e-mail, an account id).
    pub user_identifier: Option<String>,
    /// The HTTP status, 100–599.
    #[serde(deserialize_with = "integral")]
    pub status_code: i64,
    /// How long the call took.
    #[serde(default, deserialize_with = "optional_integral")]
    pub duration_ms: Option<i64>,
    /// The request body: text, or any JSON value (stored as its JSON text).
    pub request_body: Option<Value>,
    /// The response body, like `request_body`.
    pub response_body: Option<Value>,
    /// The caller's id of the call; `(writer, service, request_id)` is stored once.
    pub request_id: Option<String>,
}

/// A validated, redacted and truncated record, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// keyledger's id: a UUID v7 carrying `occurred_at`'s millisecond.
    pub id: Uuid,
    /// When the call happened.
    pub occurred_at: DateTime<Utc>,
    /// Who sent it: the API key's id, [`SQS_WRITER`] or `keyledger` (the request-log layer's `SERVICE`, in the HTTP layer).
    pub writer: String,
    /// Service.
    pub service: String,
    /// Endpoint (redacted: query strings can carry credentials).
    pub endpoint: String,
    /// Upper-case method.
    pub method: String,
    /// HTTP status.
    pub status_code: i32,
    /// Duration.
    pub duration_ms: Option<i32>,
    /// User.
    pub user_identifier: Option<String>,
    /// Caller's request id.
    pub request_id: Option<String>,
    /// Redacted, truncated request body.
    pub request_body: Option<String>,
    /// Redacted, truncated response body.
    pub response_body: Option<String>,
    /// True when `request_body` was cut to the limit.
    pub request_body_truncated: bool,
    /// True when `response_body` was cut to the limit.
    pub response_body_truncated: bool,
    /// Whether `(writer, service, request_id)` is claimed, so that a repeated delivery is stored
    /// once. keyledger's own records keep the caller's `x-request-id` for correlation only:
    /// a caller reusing one must not be able to hide a later request from the log.
    pub deduplicate: bool,
}

/// The id of a record that happened at `at`: UUID v7 whose timestamp is `at`'s millisecond.
pub fn record_id(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let random: [u8; 10] = crate::crypto::random_bytes();
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The millisecond a record id carries, for ids made by [`record_id`].
pub(crate) fn id_millis(id: Uuid) -> Option<DateTime<Utc>> {
    if id.get_version_num() != 7 {
        return None;
    }
    let b = id.as_bytes();
    let millis = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
    DateTime::from_timestamp_millis(i64::try_from(millis).ok()?)
}

/// Parses an RFC 3339 time, tolerating the `+` of an offset that a query string made a space.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .or_else(|_| DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+")))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn text_field(value: String, field: &str, max: usize) -> Result<String, Error> {
    // The length is that of the text as sent (what the OpenAPI document's maxLength says);
    // surrounding white space is then dropped.
    if value.chars().count() > max {
        return Err(Error::invalid(field, format!("{field} must be at most {max} characters")));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(field, format!("{field} must be at most {max} characters")));
    }
    // U+0000 first and by name: PostgreSQL cannot store it, so it must never reach a query.
    if value.contains('\0') {
        return Err(Error::invalid(field, format!("{field} must not contain U+0000")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(value.to_owned())
}

fn optional_text(value: Option<String>, field: &str, max: usize) -> Result<Option<String>, Error> {
    value.map(|v| text_field(v, field, max)).transpose()
}

/// A body as stored: its text (JSON values as their JSON text), U+0000 turned into U+FFFD
/// (PostgreSQL text cannot hold it, and a body is evidence to keep, not input to refuse),
/// redacted, then truncated.
pub(crate) fn body_text(value: Option<Value>, limit: usize) -> (Option<String>, bool) {
    let text = match value {
        None | Some(Value::Null) => return (None, false),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    };
    let text = if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text };
    let (kept, cut) = redact::redact_and_truncate(&text, limit);
    let kept = if kept.contains('\0') { kept.replace('\0', "\u{FFFD}") } else { kept };
    (Some(kept), cut)
}

impl Record {
    /// Validates `raw`, naming a faulty field as `{prefix}{field}` (`records[3].status_code`);
    /// redacts and truncates the bodies to `body_limit` characters. `now` stands in for a
    /// missing timestamp.
    pub fn parse(
        raw: NewRecord,
        writer: &str,
        prefix: &str,
        body_limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let field = |name: &str| format!("{prefix}{name}");
        let occurred_at = match raw.timestamp.as_deref() {
            None => now,
            Some(text) => parse_time(text).filter(|t| t.timestamp() >= 0).ok_or_else(|| {
                Error::invalid(
                    field("timestamp"),
                    "timestamp must be an RFC 3339 time after 1970, e.g. 2026-11-22T13:00:00Z",
                )
            })?,
        };
        let service = text_field(raw.service, &field("service"), MAX_SERVICE)?;
        let endpoint = redact::redact(&text_field(raw.endpoint, &field("endpoint"), MAX_ENDPOINT)?);
        let method = raw.method.trim().to_ascii_uppercase();
        if method.is_empty() || method.len() > MAX_METHOD || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::invalid(field("method"), "method must be 1 to 16 letters, e.g. POST"));
        }
        let status_code = i32::try_from(raw.status_code)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| Error::invalid(field("status_code"), "status_code must be between 100 and 599"))?;
        let duration_ms = raw
            .duration_ms
            .map(|d| i32::try_from(d).ok().filter(|d| *d >= 0))
            .map(|d| {
                d.ok_or_else(|| Error::invalid(field("duration_ms"), "duration_ms must be between 0 and 2147483647"))
            })
            .transpose()?;
        let user_identifier = optional_text(raw.user_identifier, &field("user_identifier"), MAX_USER)?;
        let request_id = optional_text(raw.request_id, &field("request_id"), MAX_REQUEST_ID)?;
        let (request_body, request_body_truncated) = body_text(raw.request_body, body_limit);
        let (response_body, response_body_truncated) = body_text(raw.response_body, body_limit);
        Ok(Self {
            id: record_id(occurred_at),
            occurred_at,
            writer: writer.to_owned(),
            service,
            endpoint,
            method,
            status_code,
            duration_ms,
            user_identifier,
            request_id,
            request_body,
            response_body,
            request_body_truncated,
            response_body_truncated,
            deduplicate: true,
        })
    }
}

/// An integer, also when written as an integral float (`200.0`): JSON and JSON Schema's
/// `integer` do not tell them apart.
fn integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::{Error as _, Unexpected};
    let refused = |what| D::Error::invalid_type(what, &"i64");
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15).map(|x| x as i64))
            .ok_or_else(|| refused(Unexpected::Other("a number that is not an integer"))),
        Value::String(_) => Err(refused(Unexpected::Other("a string"))),
        Value::Bool(_) => Err(refused(Unexpected::Other("a boolean"))),
        Value::Null => Err(refused(Unexpected::Unit)),
        Value::Array(_) => Err(refused(Unexpected::Seq)),
        Value::Object(_) => Err(refused(Unexpected::Map)),
    }
}

fn optional_integral<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "integral")] i64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(n)| n))
}

/// Deserializes `value` into `T`, naming the offending field as `{prefix}{path}`.
/// serde's messages quote the refused value (`invalid type: string "sk_live_…"`), which an SQS
/// message would carry into CloudWatch: only the field and what it expects are kept.
fn from_value<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let missing =
            message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
        let mut field = if path == "." { String::new() } else { path };
        let is_missing = missing.is_some();
        if let Some(missing) = missing {
            field = if field.is_empty() { missing } else { format!("{field}.{missing}") };
        }
        let field = format!("{prefix}{field}").trim_end_matches('.').to_owned();
        let detail = if is_missing {
            format!("{field} is required")
        } else if let Some((_, expected)) = message.rsplit_once(", expected ") {
            format!("{field}: wrong type or value, expected {expected}")
        } else {
            format!("{field}: invalid value")
        };
        Error::invalid(field, detail)
    })
}

fn parse_value(body: &[u8]) -> Result<Value, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidJson("the body is empty; a JSON object is expected".into()));
    }
    // serde_json's syntax messages give a position, never the text they stopped at.
    serde_json::from_slice(body).map_err(|e| Error::InvalidJson(e.to_string()))
}

/// Parses a `POST /v1/requests` body: one record or `{"records": [...]}`. Any invalid
/// record rejects the whole batch with a 400 naming it; over [`MAX_BATCH_BYTES`] or
/// [`MAX_BATCH_RECORDS`] is a 413.
pub fn parse_batch(body: &[u8], writer: &str, body_limit: usize, now: DateTime<Utc>) -> Result<Vec<Record>, Error> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(Error::BodyTooLarge);
    }
    let value = parse_value(body)?;
    let Value::Object(mut object) = value else {
        return Err(Error::invalid("", "expected one record object or {\"records\": [...]}"));
    };
    let Some(records) = object.remove("records") else {
        return Ok(vec![Record::parse(from_value(Value::Object(object), "")?, writer, "", body_limit, now)?]);
    };
    let Value::Array(records) = records else {
        return Err(Error::invalid("records", "records must be an array of record objects"));
    };
    if records.is_empty() {
        return Err(Error::invalid("records", "records must hold at least one record"));
    }
    if records.len() > MAX_BATCH_RECORDS {
        return Err(Error::TooManyRecords(records.len()));
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let prefix = format!("records[{i}].");
            if !raw.is_object() {
                return Err(Error::invalid(format!("records[{i}]"), "a record must be a JSON object"));
            }
            Record::parse(from_value(raw, &prefix)?, writer, &prefix, body_limit, now)
        })
        .collect()
}

/// Parses one record on its own (an SQS message body).
pub fn parse_one(body: &[u8], writer: &str, body_limit: usize, now: DateTime<Utc>) -> Result<Record, Error> {
    let value = parse_value(body)?;
    if !value.is_object() {
        return Err(Error::invalid("", "a record must be a JSON object"));
    }
    Record::parse(from_value(value, "")?, writer, "", body_limit, now)
}
