//! The request log (DESIGN §6.7): records of API calls that services (and keyledger itself)
//! make or serve, their validation, redaction, storage, queries and retention.
//!
//! Owns the `request_log` and `request_log_keys` tables. It never stores a body before it
//! has been redacted and truncated, never writes a batch in more than one statement (so a
//! batch is stored whole or not at all, in one round trip), and never deletes log rows one
//! by one for retention: whole monthly partitions are dropped ([`partitions`]).

pub mod layer;
pub mod partitions;
pub mod redact;
pub mod stats;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

pub use layer::{RequestLogLayer, layer};

use crate::{
    db::{Db, DbError},
    http::{Page, decode_cursor, encode_cursor, page_limit},
};

/// What can go wrong with request-log input or storage; `http::map::request_log` answers it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field (`records[3].status_code`) is missing, of the wrong type or out of range.
    /// `detail` names the field and what it expects, never the value it refused.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault (empty for the body as a whole).
        field: String,
        /// For people.
        detail: String,
    },
    /// The body is not JSON (or not UTF-8).
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is over [`MAX_BATCH_BYTES`].
    #[error("a request log body is at most {MAX_BATCH_BYTES} bytes")]
    BodyTooLarge,
    /// The batch holds more than [`MAX_BATCH_RECORDS`].
    #[error("a batch holds at most {MAX_BATCH_RECORDS} records, this one {0}")]
    TooManyRecords(usize),
    /// No record with that id.
    #[error("no request log record '{0}'")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), detail: detail.into() }
    }
}

/// The `writer` of records that came through the SQS queue.
pub const SQS_WRITER: &str = "sqs";

/// The `writer` of records sent by the API key `actor` (`apikey:<uuid>` → the key's id);
/// dedup is per writer, so one key can never suppress another's records.
pub fn writer_of(actor: &str) -> String {
    actor.strip_prefix("apikey:").unwrap_or(actor).to_owned()
}

/// Most records in one `POST /v1/requests`.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Largest `POST /v1/requests` body, in bytes.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

const MAX_SERVICE: usize = 100;
const MAX_ENDPOINT: usize = 2048;
const MAX_METHOD: usize = 16;
const MAX_USER: usize = 320;
const MAX_REQUEST_ID: usize = 200;

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
    /// Who sent it: the API key's id, [`SQS_WRITER`] or `keyledger` ([`layer::SERVICE`]).
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
fn id_millis(id: Uuid) -> Option<DateTime<Utc>> {
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
fn body_text(value: Option<Value>, limit: usize) -> (Option<String>, bool) {
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

/// One statement: the records arrive as arrays (`unnest`), the keys table claims each
/// `(writer, service, request_id)` once (`ON CONFLICT DO NOTHING` also settles duplicates inside the
/// batch and concurrent deliveries), and only records that claimed their key, or have none,
/// reach the log.
const INSERT: &str = "
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int4[],
                         $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[], $13::bool[], $14::bool[],
                         $15::text[])
        AS t(id, occurred_at, service, endpoint, method, status_code, duration_ms, user_identifier,
             request_id, request_body, response_body, request_body_truncated, response_body_truncated,
             deduplicate, writer)
),
claimed AS (
    INSERT INTO request_log_keys (writer, service, request_id, occurred_at, id)
    SELECT writer, service, request_id, occurred_at, id FROM input WHERE request_id IS NOT NULL AND deduplicate
    ON CONFLICT DO NOTHING
    RETURNING id
),
stored AS (
    INSERT INTO request_log (id, occurred_at, writer, service, endpoint, method, status_code, duration_ms,
                             user_identifier, request_id, request_body, response_body,
                             request_body_truncated, response_body_truncated)
    SELECT id, occurred_at, writer, service, endpoint, method, status_code, duration_ms, user_identifier,
           request_id, request_body, response_body, request_body_truncated, response_body_truncated
    FROM input
    WHERE request_id IS NULL OR NOT deduplicate OR id IN (SELECT id FROM claimed)
    RETURNING 1
)
SELECT count(*) FROM stored";

/// Stores `records` in one round trip; returns how many were new (the rest were repeated
/// deliveries of an already stored `(writer, service, request_id)`).
pub async fn insert(db: &Db, records: &[Record]) -> Result<u64, DbError> {
    if records.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(records.len());
    let mut at = Vec::with_capacity(records.len());
    let mut service = Vec::with_capacity(records.len());
    let mut endpoint = Vec::with_capacity(records.len());
    let mut method = Vec::with_capacity(records.len());
    let mut status = Vec::with_capacity(records.len());
    let mut duration = Vec::with_capacity(records.len());
    let mut user = Vec::with_capacity(records.len());
    let mut request_id = Vec::with_capacity(records.len());
    let mut request_body = Vec::with_capacity(records.len());
    let mut response_body = Vec::with_capacity(records.len());
    let mut request_cut = Vec::with_capacity(records.len());
    let mut response_cut = Vec::with_capacity(records.len());
    let mut deduplicate = Vec::with_capacity(records.len());
    let mut writer = Vec::with_capacity(records.len());
    for r in records {
        ids.push(r.id);
        at.push(r.occurred_at);
        service.push(r.service.as_str());
        endpoint.push(r.endpoint.as_str());
        method.push(r.method.as_str());
        status.push(r.status_code);
        duration.push(r.duration_ms);
        user.push(r.user_identifier.as_deref());
        request_id.push(r.request_id.as_deref());
        request_body.push(r.request_body.as_deref());
        response_body.push(r.response_body.as_deref());
        request_cut.push(r.request_body_truncated);
        response_cut.push(r.response_body_truncated);
        deduplicate.push(r.deduplicate);
        writer.push(r.writer.as_str());
    }
    // Inserting one statement is idempotent only per key; a retry after a broken connection
    // could store keyless records twice, so this runs once on one connection.
    let client = db.get().await?;
    let row = client
        .query_typed(
            INSERT,
            &[
                (&ids, Type::UUID_ARRAY),
                (&at, Type::TIMESTAMPTZ_ARRAY),
                (&service, Type::TEXT_ARRAY),
                (&endpoint, Type::TEXT_ARRAY),
                (&method, Type::TEXT_ARRAY),
                (&status, Type::INT4_ARRAY),
                (&duration, Type::INT4_ARRAY),
                (&user, Type::TEXT_ARRAY),
                (&request_id, Type::TEXT_ARRAY),
                (&request_body, Type::TEXT_ARRAY),
                (&response_body, Type::TEXT_ARRAY),
                (&request_cut, Type::BOOL_ARRAY),
                (&response_cut, Type::BOOL_ARRAY),
                (&deduplicate, Type::BOOL_ARRAY),
                (&writer, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(row.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
}

/// `GET /v1/requests` query parameters, as they arrive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Exact service.
    pub service: Option<String>,
    /// Exact endpoint.
    pub endpoint: Option<String>,
    /// Method (any case).
    pub method: Option<String>,
    /// Exact status code.
    pub status: Option<i64>,
    /// `1xx` … `5xx`.
    pub status_class: Option<String>,
    /// Exact user identifier.
    pub user: Option<String>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<String>,
    /// Exclusive upper bound (RFC 3339).
    pub to: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Where to continue.
    pub cursor: Option<String>,
}

/// A record as listed: everything but the bodies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordSummary {
    /// keyledger's id.
    pub id: Uuid,
    /// When the call happened.
    pub timestamp: DateTime<Utc>,
    /// When keyledger stored it.
    pub received_at: DateTime<Utc>,
    /// Who sent it: an API key's id, `sqs` or `keyledger`.
    pub writer: String,
    /// Service.
    pub service: String,
    /// Endpoint.
    pub endpoint: String,
    /// Method.
    pub method: String,
    /// Status.
    pub status_code: i32,
    /// Duration.
    pub duration_ms: Option<i32>,
    /// User.
    pub user_identifier: Option<String>,
    /// Caller's request id.
    pub request_id: Option<String>,
    /// Whether the stored request body was cut.
    pub request_body_truncated: bool,
    /// Whether the stored response body was cut.
    pub response_body_truncated: bool,
}

/// A record with its (redacted, truncated) bodies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecordDetail {
    /// Everything but the bodies.
    #[serde(flatten)]
    pub summary: RecordSummary,
    /// Request body.
    pub request_body: Option<String>,
    /// Response body.
    pub response_body: Option<String>,
}

const COLUMNS: &str = "id, occurred_at, received_at, service, endpoint, method, status_code, duration_ms, \
     user_identifier, request_id, request_body_truncated, response_body_truncated, writer";

fn summary(row: &Row) -> RecordSummary {
    RecordSummary {
        id: row.get("id"),
        timestamp: row.get("occurred_at"),
        received_at: row.get("received_at"),
        writer: row.get("writer"),
        service: row.get("service"),
        endpoint: row.get("endpoint"),
        method: row.get("method"),
        status_code: row.get("status_code"),
        duration_ms: row.get("duration_ms"),
        user_identifier: row.get("user_identifier"),
        request_id: row.get("request_id"),
        request_body_truncated: row.get("request_body_truncated"),
        response_body_truncated: row.get("response_body_truncated"),
    }
}

/// A keyset position: the last listed record's time and id.
#[derive(Serialize, Deserialize)]
struct Cursor(String, Uuid);

fn status_class(raw: &str) -> Option<(i32, i32)> {
    let raw = raw.trim().to_ascii_lowercase();
    let digit = raw.strip_suffix("xx")?.parse::<i32>().ok().filter(|d| (1..=5).contains(d))?;
    Some((digit * 100, digit * 100 + 100))
}

enum Param {
    Text(String),
    Int(i32),
    Time(DateTime<Utc>),
    Id(Uuid),
    Big(i64),
}

/// Newest first, filtered, keyset-paginated; the SQL holds only the filters given, so each
/// combination gets the index that fits it.
pub async fn list(db: &Db, params: ListParams) -> Result<Page<RecordSummary>, Error> {
    let limit = page_limit(params.limit).map_err(|_| Error::invalid("limit", "limit must be between 1 and 500"))?;
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Param> = Vec::new();
    let mut add = |condition: &str, value: Param| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("${}", values.len())));
    };
    for (name, value) in [
        ("service", &params.service),
        ("endpoint", &params.endpoint),
        ("method", &params.method),
        ("user", &params.user),
    ] {
        if value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(Error::invalid(name, format!("{name} must not contain U+0000")));
        }
    }
    let text = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(service) = text(params.service) {
        add("service = ?", Param::Text(service));
    }
    if let Some(endpoint) = text(params.endpoint) {
        // Stored endpoints are redacted, so the filter is too, or it could never match one.
        add("endpoint = ?", Param::Text(redact::redact(&endpoint)));
    }
    if let Some(method) = text(params.method) {
        add("method = ?", Param::Text(method.to_ascii_uppercase()));
    }
    if let Some(status) = params.status {
        let status = i32::try_from(status)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| Error::invalid("status", "status must be between 100 and 599"))?;
        add("status_code = ?", Param::Int(status));
    }
    if let Some(class) = text(params.status_class) {
        let (low, high) = status_class(&class)
            .ok_or_else(|| Error::invalid("status_class", "status_class must be one of 1xx, 2xx, 3xx, 4xx, 5xx"))?;
        add("status_code >= ?", Param::Int(low));
        add("status_code < ?", Param::Int(high));
    }
    if let Some(user) = text(params.user) {
        add("user_identifier = ?", Param::Text(user));
    }
    for (name, raw, condition) in [("from", params.from, "occurred_at >= ?"), ("to", params.to, "occurred_at < ?")] {
        if let Some(raw) = text(raw) {
            let time =
                parse_time(&raw).ok_or_else(|| Error::invalid(name, format!("{name} must be an RFC 3339 time")))?;
            add(condition, Param::Time(time));
        }
    }
    if let Some(cursor) = params.cursor.as_deref().filter(|c| !c.is_empty()) {
        let Cursor(at, id) =
            decode_cursor(cursor).map_err(|_| Error::invalid("cursor", "cursor is not one this service issued"))?;
        let at = parse_time(&at).ok_or_else(|| Error::invalid("cursor", "cursor is not one this service issued"))?;
        values.push(Param::Time(at));
        values.push(Param::Id(id));
        conditions.push(format!("(occurred_at, id) < (${}, ${})", values.len() - 1, values.len()));
    }
    values.push(Param::Big(limit + 1));
    let sql = format!(
        "SELECT {COLUMNS} FROM request_log {} ORDER BY occurred_at DESC, id DESC LIMIT ${}",
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) },
        values.len()
    );
    let typed: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = values
        .iter()
        .map(|v| match v {
            Param::Text(s) => (s as &(dyn tokio_postgres::types::ToSql + Sync), Type::TEXT),
            Param::Int(i) => (i as _, Type::INT4),
            Param::Time(t) => (t as _, Type::TIMESTAMPTZ),
            Param::Id(u) => (u as _, Type::UUID),
            Param::Big(n) => (n as _, Type::INT8),
        })
        .collect();
    let rows = db.query(&sql, &typed).await?;
    let mut items: Vec<RecordSummary> = rows.iter().map(summary).collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        let last = items.last().map(|r| (r.timestamp, r.id));
        last.map(|(at, id)| encode_cursor(&Cursor(at.to_rfc3339_opts(SecondsFormat::Micros, true), id)))
    });
    Ok(Page { items, next_cursor: next_cursor.flatten() })
}

const GET: &str = "SELECT id, occurred_at, received_at, service, endpoint, method, status_code, duration_ms, \
     user_identifier, request_id, request_body_truncated, response_body_truncated, writer, request_body, response_body \
     FROM request_log WHERE id = $1 AND occurred_at >= $2 AND occurred_at < $2 + interval '1 millisecond'";

/// One record with its bodies; 404 `request_not_found` for an id this service never issued.
pub async fn get(db: &Db, id: &str) -> Result<RecordDetail, Error> {
    let not_found = || Error::NotFound(id.to_owned());
    let uuid = Uuid::parse_str(id).map_err(|_| not_found())?;
    let at = id_millis(uuid).ok_or_else(not_found)?;
    let rows = db.query(GET, &[(&uuid, Type::UUID), (&at, Type::TIMESTAMPTZ)]).await?;
    let row = rows.first().ok_or_else(not_found)?;
    Ok(RecordDetail {
        summary: summary(row),
        request_body: row.get("request_body"),
        response_body: row.get("response_body"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::http::ApiError;

    fn now() -> DateTime<Utc> {
        "2026-11-22T13:00:00Z".parse().unwrap()
    }

    fn parse(body: Value) -> Result<Vec<Record>, ApiError> {
        parse_batch(&serde_json::to_vec(&body).unwrap(), "w-1", 2000, now()).map_err(ApiError::from)
    }

    fn good() -> Value {
        json!({"service": "llm", "endpoint": "/v1/chat", "method": "post", "status_code": 200})
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_refused() {
        let mut r = good();
        r["status_code"] = json!(201.0);
        r["duration_ms"] = json!(12.0);
        let got = parse(r.clone()).unwrap();
        assert_eq!((got[0].status_code, got[0].duration_ms), (201, Some(12)));
        r["duration_ms"] = json!(12.5);
        let err = parse(r).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("duration_ms"));
        assert!(err.detail.contains("expected i64"), "{}", err.detail);
    }

    #[test]
    fn text_length_counts_the_text_as_sent() {
        let mut r = good();
        r["service"] = json!(format!(" {} ", "s".repeat(99)));
        assert_eq!(parse(r.clone()).unwrap_err().field.as_deref(), Some("service"));
        r["service"] = json!(format!("{} ", "s".repeat(99)));
        assert_eq!(parse(r).unwrap()[0].service, "s".repeat(99));
    }

    #[test]
    fn a_single_record_or_a_batch_is_accepted() {
        let one = parse(good()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].method, "POST");
        assert_eq!(one[0].occurred_at, now());
        let batch = parse(json!({"records": [good(), good(), good()]})).unwrap();
        assert_eq!(batch.len(), 3);
    }

    #[test]
    fn an_invalid_record_is_named_by_its_index() {
        let mut bad = good();
        bad["status_code"] = json!("two hundred");
        let err = parse(json!({"records": [good(), good(), good(), bad]})).unwrap_err();
        assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("records[3].status_code"));

        let mut missing = good();
        missing.as_object_mut().unwrap().remove("service");
        let err = parse(json!({"records": [good(), missing]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].service"));

        let mut out_of_range = good();
        out_of_range["status_code"] = json!(600);
        let err = parse(json!({"records": [out_of_range]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[0].status_code"));

        let mut bad_time = good();
        bad_time["timestamp"] = json!("yesterday");
        let err = parse(json!({"records": [good(), bad_time]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].timestamp"));

        let err = parse(json!({"records": [good(), 7]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1]"));

        let mut no_method = good();
        no_method["method"] = json!(" ");
        assert_eq!(parse(no_method).unwrap_err().field.as_deref(), Some("method"));
    }

    #[test]
    fn limits_are_413() {
        let err = parse(json!({"records": vec![good(); 1001]})).unwrap_err();
        assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "too_many_records");
        let big = vec![b' '; MAX_BATCH_BYTES + 1];
        assert_eq!(
            ApiError::from(parse_batch(&big, "w-1", 2000, now()).unwrap_err()).status,
            http::StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn ids_carry_the_records_millisecond() {
        let at: DateTime<Utc> = "2026-03-04T05:06:07.891234Z".parse().unwrap();
        let id = record_id(at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id_millis(id).unwrap(), "2026-03-04T05:06:07.891Z".parse::<DateTime<Utc>>().unwrap());
        assert!(id_millis(Uuid::new_v4()).is_none());
    }

    #[test]
    fn json_bodies_are_stored_as_their_text_redacted() {
        let mut record = good();
        record["request_body"] = json!({"password": "hunter2", "q": "hi"});
        record["response_body"] = json!("Bearer abc");
        let r = &parse(record).unwrap()[0];
        assert_eq!(r.request_body.as_deref(), Some(r#"{"password":"[REDACTED]","q":"hi"}"#));
        assert_eq!(r.response_body.as_deref(), Some("Bearer [REDACTED]"));
    }

    #[test]
    fn wrong_types_name_the_field_and_the_expected_type_but_never_the_value() {
        let mut bad = good();
        bad["status_code"] = json!("sk_live_never_echoed");
        let err = parse(json!({"records": [good(), bad]})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("records[1].status_code"));
        assert!(err.detail.contains("expected i64"), "{}", err.detail);
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
        let mut bad = good();
        bad["service"] = json!(["sk_live_never_echoed"]);
        let err = parse(bad).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("service"));
        assert!(!err.detail.contains("sk_live"), "{}", err.detail);
    }

    #[test]
    fn u0000_is_a_400_naming_the_field_except_in_bodies_where_it_becomes_ufffd() {
        for name in ["service", "endpoint", "user_identifier", "request_id"] {
            let mut bad = good();
            bad[name] = json!("a\u{0}b");
            let err = parse(json!({"records": [good(), good(), bad]})).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST, "{name}");
            assert_eq!(err.field.as_deref(), Some(format!("records[2].{name}").as_str()));
            assert!(err.detail.contains("U+0000"), "{}", err.detail);
        }
        let mut record = good();
        record["request_body"] = json!("a\u{0}b");
        record["response_body"] = json!({"x": "c\u{0}d"});
        let r = &parse(record).unwrap()[0];
        assert_eq!(r.request_body.as_deref(), Some("a\u{FFFD}b"));
        assert!(!r.response_body.as_deref().unwrap().contains('\0'));
    }

    #[test]
    fn records_carry_their_writer() {
        assert_eq!(parse(good()).unwrap()[0].writer, "w-1");
        assert_eq!(writer_of("apikey:0190-ab"), "0190-ab");
        assert_eq!(writer_of("admin:bootstrap"), "admin:bootstrap");
    }

    #[test]
    fn times_tolerate_a_plus_turned_space() {
        assert_eq!(parse_time("2026-11-22T14:00:00 01:00"), Some(now()));
        assert_eq!(status_class("5XX"), Some((500, 600)));
        assert_eq!(status_class("6xx"), None);
    }
}
