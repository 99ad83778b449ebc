//! Publishing the log to EventBridge (DESIGN §6.11): read the events after the relay's
//! stored position, publish the ones that matter outside, and advance the position only
//! past what was accepted. At least once: a crash between publishing and saving the
//! position republishes; consumers deduplicate by `position`.
//!
//! Two invariants this module must keep:
//! - **Never skip an event that commits late.** Positions come from a sequence, so a
//!   transaction can commit position 41 while 40 is still in flight (or rolled back). A gap
//!   is only passed once every transaction that could still fill it has ended: when the gap
//!   is first seen the relay notes the next transaction id to be assigned (`gap_xmax`);
//!   appenders take their transaction id before drawing a position (`events::append`), so
//!   once the oldest running transaction is at or past `gap_xmax`, the gap is final.
//! - **One relay at a time.** A run holds a transaction-scoped advisory lock; a second run
//!   that cannot take it returns at once, so the same range is never published twice
//!   concurrently.
//!
//! It never publishes a secret: `detail` is the event with every secret field and every
//! ciphertext removed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tokio_postgres::types::Type;

use crate::{
    context::Context,
    db::DbError,
    events::{EventStoreError, RecordedEvent},
};

/// Event types published as they are.
pub const PUBLISHED_TYPES: &[&str] = &[
    "ConnectionAuthorized",
    "ReauthorizationRequired",
    "ConnectionRevoked",
    "LicenseIssued",
    "LicenseSuspended",
    "LicenseRevoked",
    "InstallationActivated",
    "InstallationDeactivated",
    "LicenseCheckedOut",
];

/// Derived: a successful refresh right after one or more failures.
pub const RECOVERED: &str = "ConnectionRecovered";

/// The `source` of every published entry.
pub const SOURCE: &str = "keyledger";

/// Most entries PutEvents takes in one call.
pub const BATCH: usize = 10;

const RELAY: &str = "eventbridge";
const LOCK_KEY: i64 = 0x6b6c_7265_6c61_7931; // "klrelay1"
const READ_LIMIT: i64 = 500;

/// Field names never published, whatever the event.
const SECRET_FIELDS: &[&str] =
    &["access_token", "refresh_token", "client_secret", "license_key", "key_hash", "code_verifier", "id_token", "key"];

/// One EventBridge entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// The event's global position (consumers deduplicate by it).
    pub position: i64,
    /// Stream id.
    pub stream_id: String,
    /// `detail-type`.
    pub detail_type: String,
    /// `detail`.
    pub detail: Value,
    /// Event time.
    pub time: DateTime<Utc>,
}

/// Publishing failed as a whole (network, credentials, throttling of the call itself).
#[derive(Debug, thiserror::Error)]
#[error("publishing failed: {0}")]
pub struct PublishError(pub String);

/// Where entries go. Returns, per entry in order, `None` when accepted or the error code.
pub trait Publisher: Sync {
    /// Sends at most [`BATCH`] entries.
    fn put(&self, entries: &[Entry]) -> impl Future<Output = Result<Vec<Option<String>>, PublishError>> + Send;
}

/// The EventBridge bus of `EVENT_BUS_NAME`, through the AWS SDK (built on first use).
pub struct EventBridge {
    bus: String,
    client: OnceCell<aws_sdk_eventbridge::Client>,
}

impl EventBridge {
    /// A publisher to `bus`.
    pub fn new(bus: impl Into<String>) -> Self {
        Self { bus: bus.into(), client: OnceCell::new() }
    }
}

impl Publisher for EventBridge {
    async fn put(&self, entries: &[Entry]) -> Result<Vec<Option<String>>, PublishError> {
        let client = self.client.get_or_init(|| async { crate::aws::eventbridge() }).await;
        let mut request = client.put_events();
        for entry in entries {
            request = request.entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(&entry.detail_type)
                    .detail(entry.detail.to_string())
                    .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(entry.time.timestamp_millis()))
                    .build(),
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string()))?;
        let results = out.entries.unwrap_or_default();
        if results.len() != entries.len() {
            return Err(PublishError(format!("{} results for {} entries", results.len(), entries.len())));
        }
        Ok(results
            .into_iter()
            .map(|r| r.error_code.map(|code| format!("{code}: {}", r.error_message.unwrap_or_default())))
            .collect())
    }
}

/// What one run did; returned by the function and logged.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Another run held the lock; this one did nothing.
    pub skipped_run: bool,
    /// Events read from the log.
    pub read: usize,
    /// Entries accepted by the bus.
    pub published: usize,
    /// Entries the bus refused (retried next run).
    pub failed: usize,
    /// Position after the run.
    pub position: i64,
    /// A gap the relay is waiting on, if any.
    pub waiting_on_gap: Option<i64>,
    /// Seconds between the newest committed event and the newest handled one.
    pub lag_seconds: f64,
}

/// Relay failures (the position is then left where it was).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The bus could not be reached.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// An event in the log could not be read.
    #[error(transparent)]
    Event(#[from] EventStoreError),
}

impl From<tokio_postgres::Error> for RelayError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Query(e))
    }
}

const STATE: &str = "SELECT position, gap_position, gap_xmax FROM relay_state WHERE name = $1";
const SNAPSHOT: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_snapshot_xmax(pg_current_snapshot())::text::bigint";
const READ: &str = "
SELECT e.position, e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at,
       (SELECT p.type FROM events p WHERE p.stream_id = e.stream_id AND p.version = e.version - 1) AS previous_type
FROM events e WHERE e.position > $1 ORDER BY e.position LIMIT $2";
const SAVE: &str = "
UPDATE relay_state SET position = $2, gap_position = $3, gap_xmax = $4,
       published_total = published_total + $5, updated_at = now()
WHERE name = $1";
const LAG: &str = "
SELECT coalesce(extract(epoch FROM (SELECT max(recorded_at) FROM events)
    - coalesce((SELECT recorded_at FROM events WHERE position <= $1 ORDER BY position DESC LIMIT 1),
               (SELECT min(recorded_at) FROM events))), 0)::float8";

/// The entry an event becomes, if it is published at all.
pub fn entry_for(event: &RecordedEvent, previous_type: Option<&str>) -> Option<Entry> {
    let RecordedEvent { position, stream_id, version, event_type, data, metadata, recorded_at } = event;
    let (position, version, recorded_at, event_type) = (*position, *version, *recorded_at, event_type.as_str());
    let detail_type = if PUBLISHED_TYPES.contains(&event_type) {
        event_type
    } else if event_type == "TokenRefreshed" && previous_type == Some("TokenRefreshFailed") {
        RECOVERED
    } else {
        return None;
    };
    let mut detail = Map::new();
    detail.insert("type".into(), json!(detail_type));
    detail.insert("stream_id".into(), json!(stream_id));
    if let Some((_, subject)) = stream_id.split_once('-') {
        let key = match stream_id.split_once('-').map(|(k, _)| k) {
            Some("connection") => "connection_id",
            Some("license") => "license_id",
            Some("client") => "client_id",
            _ => "subject",
        };
        detail.insert(key.into(), json!(subject));
    }
    detail.insert("version".into(), json!(version));
    detail.insert("position".into(), json!(position));
    detail.insert("recorded_at".into(), json!(recorded_at));
    detail.insert("data".into(), without_secrets(data));
    if let Some(actor) = metadata.get("actor") {
        detail.insert("actor".into(), actor.clone());
    }
    if let Some(request_id) = metadata.get("request_id") {
        detail.insert("request_id".into(), request_id.clone());
    }
    Some(Entry {
        position,
        stream_id: stream_id.to_owned(),
        detail_type: detail_type.to_owned(),
        detail: Value::Object(detail),
        time: recorded_at,
    })
}

/// `value` without secret fields and ciphertexts, at any depth.
pub fn without_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !SECRET_FIELDS.contains(&k.as_str()) && !is_ciphertext(v))
                .map(|(k, v)| (k.clone(), without_secrets(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().filter(|v| !is_ciphertext(v)).map(without_secrets).collect()),
        other => other.clone(),
    }
}

fn is_ciphertext(value: &Value) -> bool {
    value.as_str().is_some_and(|s| crate::crypto::KeyRing::key_id_of(s).is_some())
}

/// One relay run: publish from the stored position until caught up, a gap that may still
/// fill, a refused entry, or `deadline`.
pub async fn run(ctx: &Context, publisher: &impl Publisher, deadline: Instant) -> Result<Summary, RelayError> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let locked: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY]).await?.get(0);
    if !locked {
        return Ok(Summary { skipped_run: true, ..Summary::default() });
    }
    let state = tx.query_typed(STATE, &[(&RELAY, Type::TEXT)]).await?;
    let state = state.first().ok_or_else(|| DbError::Unavailable("relay_state has no 'eventbridge' row".into()))?;
    let mut position: i64 = state.get(0);
    let mut gap: Option<(i64, i64)> = state.get::<_, Option<i64>>(1).zip(state.get::<_, Option<i64>>(2));
    let mut summary = Summary::default();

    while Instant::now() < deadline {
        let rows: Vec<(RecordedEvent, Option<String>)> = tx
            .query_typed(READ, &[(&position, Type::INT8), (&READ_LIMIT, Type::INT8)])
            .await?
            .iter()
            .map(|r| Ok((RecordedEvent::from_row(r)?, r.get("previous_type"))))
            .collect::<Result<_, EventStoreError>>()?;
        let full_page = rows.len() as i64 == READ_LIMIT;
        summary.read += rows.len();
        let mut stop = false;
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
        // Everything up to `covered` is handled once `batch` is accepted.
        let mut covered = position;
        for (row, previous_type) in &rows {
            if row.position != covered + 1 && !gap_is_final(&tx, &mut gap, covered + 1).await? {
                stop = true;
                break;
            }
            let entry = entry_for(row, previous_type.as_deref());
            covered = row.position;
            match entry {
                Some(entry) => batch.push(entry),
                None if batch.is_empty() => position = covered,
                None => {}
            }
            if batch.len() == BATCH {
                match send(publisher, &mut batch, &mut summary).await? {
                    None => position = covered,
                    Some(refused_at) => {
                        position = refused_at - 1;
                        stop = true;
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    stop = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            match send(publisher, &mut batch, &mut summary).await? {
                None => position = covered,
                Some(refused_at) => {
                    position = refused_at - 1;
                    stop = true;
                }
            }
        }
        if stop || !full_page {
            break;
        }
    }

    summary.position = position;
    summary.waiting_on_gap = gap.map(|(at, _)| at).filter(|at| *at == position + 1);
    let published = summary.published as i64;
    let (gap_at, gap_xmax) = match gap {
        Some((at, xmax)) if at == position + 1 => (Some(at), Some(xmax)),
        _ => (None, None),
    };
    tx.query_typed(
        SAVE,
        &[
            (&RELAY, Type::TEXT),
            (&position, Type::INT8),
            (&gap_at, Type::INT8),
            (&gap_xmax, Type::INT8),
            (&published, Type::INT8),
        ],
    )
    .await?;
    summary.lag_seconds = tx.query_typed(LAG, &[(&position, Type::INT8)]).await?[0].get::<_, f64>(0).max(0.0);
    tx.commit().await?;
    Ok(summary)
}

/// Decides whether the missing positions from `missing` on may be passed: yes when every
/// transaction that could still commit them has ended (they were rolled back). Remembers a
/// newly seen gap in `gap` as (position, next transaction id at the time).
async fn gap_is_final(
    tx: &tokio_postgres::Transaction<'_>,
    gap: &mut Option<(i64, i64)>,
    missing: i64,
) -> Result<bool, RelayError> {
    let snapshot = tx.query_one(SNAPSHOT, &[]).await?;
    let (xmin, xmax): (i64, i64) = (snapshot.get(0), snapshot.get(1));
    let is_final = match *gap {
        Some((at, gap_xmax)) if at == missing => xmin >= gap_xmax,
        // First sight: final only if no transaction with an id is running at all.
        _ => xmin >= xmax,
    };
    *gap = if is_final { None } else { Some(gap.filter(|(at, _)| *at == missing).unwrap_or((missing, xmax))) };
    Ok(is_final)
}

/// Sends `batch`; `None` when every entry was accepted, else the position of the first
/// refused one (nothing after it counts as handled, so its stream keeps its order).
async fn send(
    publisher: &impl Publisher,
    batch: &mut Vec<Entry>,
    summary: &mut Summary,
) -> Result<Option<i64>, RelayError> {
    let results = publisher.put(batch).await?;
    let mut refused = None;
    for (entry, result) in batch.iter().zip(results) {
        match result {
            None if refused.is_none() => summary.published += 1,
            None => {}
            Some(error) => {
                if refused.is_none() {
                    tracing::warn!(position = entry.position, detail_type = %entry.detail_type, %error, "entry refused; retried next run");
                    refused = Some(entry.position);
                }
                summary.failed += 1;
            }
        }
    }
    batch.clear();
    Ok(refused)
}

/// Time left before `deadline` for the relay, keeping `margin` to save the position.
pub fn deadline_from(lambda_deadline_ms: u64, margin: Duration) -> Instant {
    let now = std::time::SystemTime::now();
    let left = crate::deadline::from_millis(lambda_deadline_ms, now).duration_since(now).unwrap_or_default();
    Instant::now() + left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_ciphertexts_never_reach_the_detail() {
        let data = json!({
            "client_id": "c1",
            "access_token": "v1:k1:abc",
            "tokens": {"refresh_token": "r", "note": "v1:k2:def", "scopes": ["a", "v1:k1:x"]},
            "expires_at": "2026-11-22T13:00:00Z",
            "license_key": "ABCD-EFGH"
        });
        let clean = without_secrets(&data);
        assert_eq!(
            clean,
            json!({"client_id": "c1", "tokens": {"scopes": ["a"]}, "expires_at": "2026-11-22T13:00:00Z"})
        );
    }

    #[test]
    fn only_outside_facts_are_published_and_recovery_is_derived() {
        let now = Utc::now();
        let e = |t: &str, prev: Option<&str>| {
            let event = RecordedEvent {
                position: 7,
                stream_id: "connection-b-42".into(),
                version: 3,
                event_type: t.into(),
                data: json!({}),
                metadata: json!({}),
                recorded_at: now,
            };
            entry_for(&event, prev)
        };
        assert_eq!(e("ConnectionAuthorized", None).unwrap().detail_type, "ConnectionAuthorized");
        assert!(e("TokenRefreshed", Some("TokenRefreshed")).is_none());
        assert!(e("TokenRefreshFailed", Some("TokenRefreshed")).is_none());
        let recovered = e("TokenRefreshed", Some("TokenRefreshFailed")).unwrap();
        assert_eq!(recovered.detail_type, "ConnectionRecovered");
        assert_eq!(recovered.detail["connection_id"], "b-42");
        assert_eq!(recovered.detail["position"], 7);
        assert_eq!(recovered.detail["version"], 3);
    }
}
