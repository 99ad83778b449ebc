//! The append-only event log (DESIGN §4.1): append with an expected version, read a stream,
//! read everything after a position.
//!
//! Owns the `events` table's SQL and the mapping between a serde-tagged Rust enum (one per
//! stream kind) and a row's `type` + `data`. It never updates or deletes an event (the
//! database refuses it anyway), and it never writes plaintext secrets: payloads carry
//! ciphertexts produced by `crypto`.

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_postgres::{GenericClient, Row, Transaction, error::SqlState, types::Type};

use crate::db::DbError;

/// The version a writer expects a stream to be at before its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version.
    Exact(i32),
    /// Append after whatever is there (still conflicts with a concurrent append).
    Any,
}

impl ExpectedVersion {
    fn as_param(self) -> Option<i32> {
        match self {
            Self::NoStream => Some(0),
            Self::Exact(v) => Some(v),
            Self::Any => None,
        }
    }
}

/// Failures of the event store.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Somebody else appended to the stream first.
    #[error("stream '{stream_id}' is at version {actual}, not the expected {expected:?}")]
    Conflict {
        /// The stream.
        stream_id: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// What the stream holds now (as far as this transaction can see).
        actual: i32,
    },
    /// An event could not be encoded or decoded.
    #[error("event payload: {0}")]
    Payload(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for EventStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

/// Who caused an event and through which request; stored as the event's `metadata`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Metadata {
    /// The request id (API Gateway's or our own), when there was a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `apikey:<uuid>`, `admin:bootstrap`, `public`, or `system:<function>`.
    pub actor: String,
    /// The function that appended the event.
    pub function: String,
}

impl Metadata {
    /// Metadata for work a function does on its own (schedules, tools).
    pub fn system(function: &str) -> Self {
        Self { request_id: None, actor: format!("system:{function}"), function: function.to_owned() }
    }
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    /// Global position in the log (gaps are possible: a rolled-back append burns positions).
    pub position: i64,
    /// Stream id, e.g. `license-<uuid>`.
    pub stream_id: String,
    /// Version within the stream, 1-based, without gaps.
    pub version: i32,
    /// Event type, e.g. `LicenseIssued`.
    pub event_type: String,
    /// Payload without the type tag.
    pub data: Value,
    /// [`Metadata`] as stored.
    pub metadata: Value,
    /// Commit-side timestamp.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// Reads an event row. A payload the JSON reader cannot take back (PostgreSQL prints
    /// `1.7976931348623157e308` as a 309-digit integer that serde_json finds out of range) is
    /// an error naming the event, never a panic.
    pub(crate) fn from_row(row: &Row) -> Result<Self, EventStoreError> {
        let payload = |e: tokio_postgres::Error| EventStoreError::Payload(format!("event row: {e}"));
        Ok(Self {
            position: row.try_get("position").map_err(payload)?,
            stream_id: row.try_get("stream_id").map_err(payload)?,
            version: row.try_get("version").map_err(payload)?,
            event_type: row.try_get("type").map_err(payload)?,
            data: row.try_get("data").map_err(payload)?,
            metadata: row.try_get("metadata").map_err(payload)?,
            recorded_at: row.try_get("recorded_at").map_err(payload)?,
        })
    }

    /// Decodes the payload into the stream's event enum (serde `tag = "type"`).
    pub fn decode<E: DeserializeOwned>(&self) -> Result<E, EventStoreError> {
        let mut object = match &self.data {
            Value::Object(map) => map.clone(),
            Value::Null => serde_json::Map::new(),
            other => return Err(EventStoreError::Payload(format!("data of event {} is {other}", self.position))),
        };
        object.insert("type".into(), Value::String(self.event_type.clone()));
        serde_json::from_value(Value::Object(object))
            .map_err(|e| EventStoreError::Payload(format!("event {} ({}): {e}", self.position, self.event_type)))
    }
}

/// Splits a serde-tagged event into its type name and its payload.
pub fn encode<E: Serialize>(event: &E) -> Result<(String, Value), EventStoreError> {
    let value = serde_json::to_value(event).map_err(|e| EventStoreError::Payload(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(EventStoreError::Payload("an event must serialize to an object".into()));
    };
    match map.remove("type") {
        Some(Value::String(t)) => Ok((t, Value::Object(map))),
        _ => Err(EventStoreError::Payload("an event needs #[serde(tag = \"type\")]".into())),
    }
}

// `tx` takes the transaction's id before any position is drawn from the sequence (the
// rows cannot be produced without it), so that a reader of the log can tell, from
// transaction ids alone, whether a missing position may still be committed (see `relay`).
const APPEND: &str = "
WITH tx AS MATERIALIZED (
    SELECT pg_current_xact_id() AS id
), current AS (
    SELECT coalesce(max(version), 0) AS v FROM events WHERE stream_id = $1
)
INSERT INTO events (stream_id, version, type, data, metadata)
SELECT $1, current.v + e.ord::int, e.type, e.data, $5
FROM tx, current, unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS e(type, data, ord)
WHERE ($4::int IS NULL OR current.v = $4::int) AND tx.id IS NOT NULL
RETURNING position, stream_id, version, type, data, metadata, recorded_at";

const STREAM_VERSION: &str = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1";

/// Appends `events` to `stream_id` inside `tx`, checking `expected` first.
///
/// Two writers racing on the same version both pass the check; the unique
/// `(stream_id, version)` index turns the loser's insert into a [`EventStoreError::Conflict`]
/// (and aborts its transaction, so nothing it wrote survives).
pub async fn append<E: Serialize>(
    tx: &Transaction<'_>,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[E],
    metadata: &Metadata,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut types = Vec::with_capacity(events.len());
    let mut datas = Vec::with_capacity(events.len());
    for event in events {
        let (t, d) = encode(event)?;
        types.push(t);
        datas.push(d);
    }
    let meta = serde_json::to_value(metadata).map_err(|e| EventStoreError::Payload(e.to_string()))?;
    let rows = tx
        .query_typed(
            APPEND,
            &[
                (&stream_id, Type::TEXT),
                (&types, Type::TEXT_ARRAY),
                (&datas, Type::JSONB_ARRAY),
                (&expected.as_param(), Type::INT4),
                (&meta, Type::JSONB),
            ],
        )
        .await;
    let conflict = |actual| EventStoreError::Conflict { stream_id: stream_id.to_owned(), expected, actual };
    match rows {
        Ok(rows) if rows.is_empty() => {
            let actual: i32 = tx.query_typed(STREAM_VERSION, &[(&stream_id, Type::TEXT)]).await?[0].get(0);
            Err(conflict(actual))
        }
        Ok(rows) => rows.iter().map(RecordedEvent::from_row).collect(),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            // The transaction is aborted; the winner's version is not visible to it anyway.
            Err(conflict(expected.as_param().map_or(-1, |v| v + 1)))
        }
        Err(e) => Err(e.into()),
    }
}

const READ_STREAM: &str = "
SELECT position, stream_id, version, type, data, metadata, recorded_at
FROM events WHERE stream_id = $1 AND version > $2
ORDER BY version LIMIT $3";

/// Events of `stream_id` after `after_version`, oldest first, at most `limit`.
pub async fn read_stream(
    client: &impl GenericClient,
    stream_id: &str,
    after_version: i32,
    limit: i64,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    let rows = client
        .query_typed(READ_STREAM, &[(&stream_id, Type::TEXT), (&after_version, Type::INT4), (&limit, Type::INT8)])
        .await?;
    rows.iter().map(RecordedEvent::from_row).collect()
}

const READ_ALL: &str = "
SELECT position, stream_id, version, type, data, metadata, recorded_at
FROM events WHERE position > $1 ORDER BY position LIMIT $2";

/// Events of every stream after `after_position`, in log order, at most `limit`.
pub async fn read_all(
    client: &impl GenericClient,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    let rows = client.query_typed(READ_ALL, &[(&after_position, Type::INT8), (&limit, Type::INT8)]).await?;
    rows.iter().map(RecordedEvent::from_row).collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(tag = "type")]
    enum Demo {
        Opened { id: u32 },
        Closed,
    }

    #[test]
    fn encoding_splits_the_tag_and_decoding_restores_it() {
        let (t, data) = encode(&Demo::Opened { id: 7 }).unwrap();
        assert_eq!(t, "Opened");
        assert_eq!(data, serde_json::json!({"id": 7}));
        let recorded = RecordedEvent {
            position: 1,
            stream_id: "demo-1".into(),
            version: 1,
            event_type: t,
            data,
            metadata: Value::Null,
            recorded_at: Utc::now(),
        };
        assert_eq!(recorded.decode::<Demo>().unwrap(), Demo::Opened { id: 7 });
        let (t, data) = encode(&Demo::Closed).unwrap();
        assert_eq!((t.as_str(), data), ("Closed", serde_json::json!({})));
    }

    #[test]
    fn untagged_payloads_are_refused() {
        assert!(encode(&serde_json::json!([1, 2])).is_err());
        assert!(encode(&serde_json::json!({"id": 1})).is_err());
    }
}
