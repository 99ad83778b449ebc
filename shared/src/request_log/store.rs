//! The `request_log` tables: the one-statement batch insert (with per-writer dedup) and the
//! two reads, the filtered newest-first list and one record with its bodies.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use super::{Error, Record, id_millis, parse_time, redact};
use crate::{
    db::{Db, DbError},
    paging::{self, Page, decode_cursor, encode_cursor, page_limit},
};

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

pub(super) fn status_class(raw: &str) -> Option<(i32, i32)> {
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
    let limit = page_limit(params.limit)?;
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
        let Cursor(at, id) = decode_cursor(cursor)?;
        let at = parse_time(&at).ok_or(paging::Error::InvalidCursor)?;
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
