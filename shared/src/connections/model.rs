//! Connection values: the id, status, trigger, the listed view, the stored and the decrypted
//! token, and the per-environment refresher.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{Error, INLINE_RETRY_INTERVAL, Tags};
use crate::{
    crypto::{KeyRing, Owner},
    oauth::Provider,
};

/// A caller's name for one connection: 1–128 characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub(super) String);

/// A string that is not a valid [`ConnectionId`].
#[derive(Debug, thiserror::Error)]
#[error("a connection id is 1 to 128 characters of A-Z a-z 0-9 . _ : -")]
pub struct InvalidConnectionId;

impl ConnectionId {
    /// Parses a connection id.
    pub fn parse(raw: &str) -> Result<Self, InvalidConnectionId> {
        let ok = (1..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidConnectionId) }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its stream, `connection-<id>` (also the owner of its ciphertexts).
    pub fn stream(&self) -> String {
        stream(&self.0)
    }
}

impl TryFrom<&str> for ConnectionId {
    type Error = InvalidConnectionId;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) fn stream(id: &str) -> String {
    format!("connection-{id}")
}

/// A path segment as a connection id; an impossible id is simply not found.
pub fn parse_path_id(raw: &str) -> Result<ConnectionId, Error> {
    ConnectionId::parse(raw).map_err(|_| Error::NotFound(raw.to_owned()))
}

/// What caused a refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The `token-refresh` schedule.
    Scheduled,
    /// `GET /v1/tokens/{id}` found the token within the buffer.
    OnDemand,
    /// `POST /v1/tokens/{id}/refresh`.
    Forced,
}

/// A connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Tokens work.
    Active,
    /// The last refresh failed transiently; retried with backoff.
    RefreshFailing,
    /// The grant is dead; only a new authorization helps.
    ReauthorizationRequired,
    /// Revoked for good (until authorized again).
    Revoked,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::RefreshFailing => "refresh_failing",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::RefreshFailing, Self::ReauthorizationRequired, Self::Revoked]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// A stored status; an unknown one is an error, never a guess (fails closed).
    pub(super) fn stored(s: &str) -> Result<Self, Error> {
        Self::parse(s).ok_or_else(|| Error::UnknownStored { what: "status", value: s.to_owned() })
    }
}

pub use crate::providers::Grant;

/// A stored grant; an unknown one is an error, never a guess (fails closed).
pub(super) fn stored_grant(s: &str) -> Result<Grant, Error> {
    Grant::parse(s).ok_or_else(|| Error::UnknownStored { what: "grant_type", value: s.to_owned() })
}

/// A connection as listed: no secrets.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// Id.
    pub connection_id: String,
    /// keyledger's client id.
    pub client_id: Uuid,
    /// Status.
    pub status: Status,
    /// Expiry of the access token.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last successful refresh.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Transient refresh failures in a row.
    pub consecutive_failures: i32,
    /// The last refresh error, if the last refresh failed.
    pub last_error: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Extra fields the provider returned (Zoho's `api_domain`, …).
    pub provider_data: Value,
    /// The caller's labels (DESIGN §6.14).
    pub tags: Tags,
    /// How its tokens are obtained.
    pub grant: Grant,
    /// First authorization.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A valid access token of a connection.
#[derive(Debug, Clone)]
pub struct Token {
    /// Connection id.
    pub connection_id: String,
    /// keyledger's client id.
    pub client_id: Uuid,
    /// The token (redacted in `Debug`).
    pub access_token: SecretString,
    /// Token type.
    pub token_type: String,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The captured values of the connection (§6.14: a Zoho caller learns `api_domain`).
    pub provider_data: Value,
}

#[derive(Serialize)]
pub(super) struct TokenBody<'a> {
    connection_id: &'a str,
    client_id: Uuid,
    access_token: &'a str,
    token_type: &'a str,
    expires_at: Option<DateTime<Utc>>,
    expires_in: Option<i64>,
    scopes: &'a [String],
    provider_data: &'a Value,
}

impl Token {
    /// The JSON answer of `GET /v1/tokens/{id}` (DESIGN §6.4), as bytes.
    pub fn to_json(&self, now: DateTime<Utc>) -> Vec<u8> {
        let body = TokenBody {
            connection_id: &self.connection_id,
            client_id: self.client_id,
            access_token: self.access_token.expose_secret(),
            token_type: &self.token_type,
            expires_at: self.expires_at,
            expires_in: self.expires_at.map(|e| (e - now).num_seconds().max(0)),
            scopes: &self.scopes,
            provider_data: &self.provider_data,
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The JSON answer as of now.
    pub fn body(&self) -> Vec<u8> {
        self.to_json(Utc::now())
    }

    pub(super) fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// The names of a token's columns in a statement's result.
pub(super) struct TokenColumns {
    client_id: &'static str,
    access_token: &'static str,
    token_type: &'static str,
    expires_at: &'static str,
    scopes: &'static str,
    provider_data: &'static str,
}

impl TokenColumns {
    /// The `connections` table's own names.
    pub(super) const TABLE: Self = Self {
        client_id: "client_id",
        access_token: "access_token",
        token_type: "token_type",
        expires_at: "expires_at",
        scopes: "scopes",
        provider_data: "provider_data",
    };
    /// The `o_…` names of `token_lookup` (and of `sql/fetch.sql`, which mirrors it).
    pub(super) const LOOKUP: Self = Self {
        client_id: "o_client_id",
        access_token: "o_access_token",
        token_type: "o_token_type",
        expires_at: "o_expires_at",
        scopes: "o_scopes",
        provider_data: "o_provider_data",
    };
}

/// A connection's token as stored: the access token still a ciphertext. One home for
/// reading it off a row and decrypting it, used by the hot path and under the row lock.
#[derive(Debug, Clone)]
pub(super) struct StoredToken {
    pub(super) client_id: Uuid,
    pub(super) access_token: Option<String>,
    pub(super) token_type: String,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) scopes: Vec<String>,
    /// The connection's captured values (`{}` when it has none).
    pub(super) provider_data: Value,
}

impl StoredToken {
    /// Reads the token's columns, named as `columns` says.
    pub(super) fn from_row(row: &Row, columns: &TokenColumns) -> Self {
        Self {
            client_id: row.get(columns.client_id),
            access_token: row.get(columns.access_token),
            token_type: row.get(columns.token_type),
            expires_at: row.get(columns.expires_at),
            scopes: row.get(columns.scopes),
            // NULL from `token_lookup` for an empty object (and for a row without a connection).
            provider_data: row
                .get::<_, Option<Value>>(columns.provider_data)
                .unwrap_or_else(|| Value::Object(Default::default())),
        }
    }

    /// The decrypted token, when the connection has one.
    pub(super) fn decrypt(&self, keyring: &KeyRing, id: &ConnectionId) -> Result<Option<Token>, Error> {
        self.clone().into_token(keyring, id)
    }

    /// [`StoredToken::decrypt`] taking the row's values instead of copying them (the hot path).
    pub(super) fn into_token(self, keyring: &KeyRing, id: &ConnectionId) -> Result<Option<Token>, Error> {
        let Some(ct) = &self.access_token else { return Ok(None) };
        Ok(Some(Token {
            connection_id: id.0.clone(),
            client_id: self.client_id,
            access_token: decrypt(keyring, &id.stream(), "access_token", ct)?,
            token_type: self.token_type,
            expires_at: self.expires_at,
            scopes: self.scopes,
            provider_data: self.provider_data,
        }))
    }
}

/// What one execution environment needs to refresh tokens: the provider client and the
/// in-process gate. The gate only saves pool connections (waiters in one environment queue
/// in memory, not on the row lock); the database lock is what makes refreshes single.
#[derive(Debug, Clone)]
pub struct Refresher {
    /// Outbound HTTP to providers.
    pub provider: Provider,
    pub(super) gate: Arc<RefreshGate>,
}

impl Refresher {
    /// A refresher whose provider client `config` describes (timeout, outbound policy).
    pub fn new(config: &crate::config::Config) -> Self {
        Self { provider: Provider::from_config(config), gate: Arc::default() }
    }
}

/// Per-connection async mutexes, created on demand and dropped with their last user.
#[derive(Debug, Default)]
pub(super) struct RefreshGate {
    slots: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl RefreshGate {
    pub(super) async fn enter(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let slot = {
            let mut map = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(id).and_then(Weak::upgrade) {
                Some(slot) => slot,
                None => {
                    if map.len() >= 1024 {
                        map.retain(|_, w| w.strong_count() > 0);
                    }
                    let slot = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(id.to_owned(), Arc::downgrade(&slot));
                    slot
                }
            }
        };
        slot.lock_owned().await
    }
}

pub(super) fn decrypt(keyring: &KeyRing, stream_id: &str, field: &str, stored: &str) -> Result<SecretString, Error> {
    Ok(keyring.decrypt(Owner::new(stream_id, field), stored)?)
}

pub(super) fn is_due(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>, within: Duration) -> bool {
    expires_at.is_some_and(|e| e <= now + chrono::Duration::from_std(within).unwrap_or_default())
}

pub(super) fn retry_after_throttle(last_failed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let interval = INLINE_RETRY_INTERVAL.as_secs() as i64;
    let elapsed = last_failed_at.map_or(interval, |t| (now - t).num_seconds());
    (interval - elapsed).clamp(1, interval) as u64
}
