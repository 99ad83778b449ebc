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
//!
//! An entry of a `connection-<id>` stream also carries the connection's `tags` and
//! `provider_data` as they were at that event (DESIGN §6.14), folded from the stream the way
//! the projection folds them, so a republished entry is the same entry. `provider_data` is
//! only ever what the capture rule lets through (flat scalars under names that do not look
//! like a secret, §6.13): what the capture code stored passes whole, and a whole provider
//! answer in an event older than the capture lists loses its nested objects and every
//! secret-looking name. The relay reads nothing but the log (its role has no other table).

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
    oauth::CapturePath,
};

/// Event types published as they are.
pub const PUBLISHED_TYPES: &[&str] = &[
    "ConnectionAuthorized",
    "ReauthorizationRequired",
    "ConnectionRevoked",
    "ConnectionTagsChanged",
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
    /// Version within the stream.
    pub version: i32,
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
const SNAPSHOT: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, \
                        pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax";
const READ: &str = "
SELECT e.position, e.stream_id, e.version, e.type, e.data, e.metadata, e.recorded_at,
       (SELECT p.type FROM events p WHERE p.stream_id = e.stream_id AND p.version = e.version - 1) AS previous_type
FROM events e WHERE e.position > $1 ORDER BY e.position LIMIT $2";
const SAVE: &str = "
UPDATE relay_state SET position = $2, gap_position = $3, gap_xmax = $4,
       published_total = published_total + $5, updated_at = now()
WHERE name = $1";
/// The tags and `provider_data` of connection streams at given versions ($1 streams, $2
/// versions, answered in order by `i`), folded as the projection does: tags from the newest
/// ConnectionAuthorized that names them or ConnectionTagsChanged; `provider_data` from the
/// newest ConnectionAuthorized (which replaces it) with every later TokenRefreshed's laid
/// over it (`||`, newest last). Each is a range of the `(stream_id, version)` index.
const CONNECTION_STATE: &str = "
SELECT q.i,
       coalesce((SELECT t.data->'tags' FROM events t
                 WHERE t.stream_id = q.stream_id AND t.version <= q.version
                   AND t.type IN ('ConnectionAuthorized', 'ConnectionTagsChanged')
                   AND jsonb_typeof(t.data->'tags') = 'object'
                 ORDER BY t.version DESC LIMIT 1), '{}'::jsonb) AS tags,
       coalesce((SELECT jsonb_object_agg(kv.key, kv.value ORDER BY d.version)
                 FROM events d
                 CROSS JOIN LATERAL jsonb_each(CASE jsonb_typeof(d.data->'provider_data')
                                               WHEN 'object' THEN d.data->'provider_data' ELSE '{}'::jsonb END) kv
                 WHERE d.stream_id = q.stream_id AND d.version <= q.version
                   AND d.type IN ('ConnectionAuthorized', 'TokenRefreshed')
                   AND d.version >= coalesce((SELECT a.version FROM events a
                                              WHERE a.stream_id = q.stream_id AND a.version <= q.version
                                                AND a.type = 'ConnectionAuthorized'
                                              ORDER BY a.version DESC LIMIT 1), 1)), '{}'::jsonb) AS provider_data
FROM unnest($1::text[], $2::int4[]) WITH ORDINALITY AS q(stream_id, version, i)";
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
    let mut data = without_secrets(data);
    if stream_id.starts_with(CONNECTION_PREFIX)
        && let Some(provider_data) = data.get_mut("provider_data")
    {
        *provider_data = publishable_provider_data(provider_data);
    }
    detail.insert("data".into(), data);
    if let Some(actor) = metadata.get("actor") {
        detail.insert("actor".into(), actor.clone());
    }
    if let Some(request_id) = metadata.get("request_id") {
        detail.insert("request_id".into(), request_id.clone());
    }
    Some(Entry {
        position,
        stream_id: stream_id.to_owned(),
        version,
        detail_type: detail_type.to_owned(),
        detail: Value::Object(detail),
        time: recorded_at,
    })
}

const CONNECTION_PREFIX: &str = "connection-";

/// Adds a connection's `tags` and `provider_data` (as they were at the entry's event) to
/// the entry's `detail`; `provider_data` only as far as [`publishable_provider_data`] lets it.
pub fn attach_connection_state(entry: &mut Entry, tags: Value, provider_data: &Value) {
    if let Value::Object(detail) = &mut entry.detail {
        detail.insert("tags".into(), tags);
        detail.insert("provider_data".into(), publishable_provider_data(provider_data));
    }
}

/// What of a stored `provider_data` may be published: the flat string, number and boolean
/// values under a name the capture rule accepts (`CapturePath::parse`: never a
/// secret-looking name, §6.13), no ciphertext. What the capture code stored (only captured
/// fields, already checked) passes unchanged; older, whole provider answers do not.
pub fn publishable_provider_data(value: &Value) -> Value {
    let Value::Object(map) = value else { return Value::Object(Map::new()) };
    Value::Object(
        map.iter()
            .filter(|(k, v)| {
                matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
                    && !is_ciphertext(v)
                    && CapturePath::parse(k).is_ok()
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Gives every connection entry of `entries` its connection's state at its event
/// ([`CONNECTION_STATE`], one query for the page).
async fn with_connection_state(
    tx: &tokio_postgres::Transaction<'_>,
    entries: &mut [Option<Entry>],
) -> Result<(), RelayError> {
    let mut wanted: Vec<&mut Entry> =
        entries.iter_mut().flatten().filter(|e| e.stream_id.starts_with(CONNECTION_PREFIX)).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let streams: Vec<&str> = wanted.iter().map(|e| e.stream_id.as_str()).collect();
    let versions: Vec<i32> = wanted.iter().map(|e| e.version).collect();
    let rows = tx.query_typed(CONNECTION_STATE, &[(&streams, Type::TEXT_ARRAY), (&versions, Type::INT4_ARRAY)]).await?;
    let mut states: Vec<(Value, Value)> = vec![(Value::Object(Map::new()), Value::Object(Map::new())); wanted.len()];
    for row in rows {
        let i: i64 = row.get("i");
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| states.get_mut(i)) {
            *slot = (row.get("tags"), row.get("provider_data"));
        }
    }
    for (entry, (tags, provider_data)) in wanted.iter_mut().zip(states) {
        attach_connection_state(entry, tags, &provider_data);
    }
    Ok(())
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
        let mut entries: Vec<Option<Entry>> =
            rows.iter().map(|(row, previous_type)| entry_for(row, previous_type.as_deref())).collect();
        with_connection_state(&tx, &mut entries).await?;
        summary.read += rows.len();
        let mut stop = false;
        let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
        // Everything up to `covered` is handled once `batch` is accepted.
        let mut covered = position;
        for ((row, _), entry) in rows.iter().zip(entries) {
            if row.position != covered + 1 && !gap_is_final(&tx, &mut gap, covered + 1).await? {
                stop = true;
                break;
            }
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
    let (xmin, xmax): (i64, i64) = (snapshot.get("xmin"), snapshot.get("xmax"));
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
    fn of_provider_data_only_flat_values_under_names_the_capture_rule_accepts_are_published() {
        let stored = json!({
            "api_domain": "https://www.zohoapis.eu", "team.id": "T1", "user_id": "U1", "ok": true, "n": 3,
            "id_token": "jwt", "bot_access_token": "xoxb", "client_secret": "s", "session_state": "x",
            "authed_user": {"id": "U1", "access_token": "xoxp"}, "scopes": ["a"], "note": "v1:k1:abc", "none": null
        });
        assert_eq!(
            publishable_provider_data(&stored),
            json!({"api_domain": "https://www.zohoapis.eu", "team.id": "T1", "user_id": "U1", "ok": true, "n": 3})
        );
        assert_eq!(publishable_provider_data(&json!("x")), json!({}));
        let mut entry = e_for("ConnectionRevoked");
        attach_connection_state(&mut entry, json!({"org": "acme"}), &stored);
        assert_eq!(entry.detail["tags"], json!({"org": "acme"}));
        assert_eq!(entry.detail["provider_data"]["team.id"], "T1");
        assert!(entry.detail["provider_data"].get("id_token").is_none());
    }

    fn e_for(t: &str) -> Entry {
        let event = RecordedEvent {
            position: 1,
            stream_id: "connection-c-1".into(),
            version: 1,
            event_type: t.into(),
            data: json!({"provider_data": {"api_domain": "x", "bot": {"token": "t"}, "id_token": "j"}}),
            metadata: json!({}),
            recorded_at: Utc::now(),
        };
        entry_for(&event, None).unwrap()
    }

    #[test]
    fn a_connection_events_own_provider_data_is_cut_like_the_state_and_tag_changes_are_published() {
        let entry = e_for("ConnectionAuthorized");
        assert_eq!(entry.detail["data"]["provider_data"], json!({"api_domain": "x"}));
        assert_eq!(e_for("ConnectionTagsChanged").detail_type, "ConnectionTagsChanged");
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
