//! Connection values: the id, status, trigger, the listed view, the decrypted token and the
//! per-environment refresher.

#[allow(unused_imports)]
use super::*;

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

/// 404 `connection_not_found`.
pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found("connection_not_found", format!("no connection '{id}'"))
}

/// A path segment as a connection id; an impossible id is simply not found.
pub fn parse_path_id(raw: &str) -> Result<ConnectionId, ApiError> {
    ConnectionId::parse(raw).map_err(|_| not_found(raw))
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
    pub fn new(config: &crate::config::Config) -> Result<Self, reqwest::Error> {
        Ok(Self { provider: Provider::from_config(config)?, gate: Arc::default() })
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

pub(super) fn decrypt(keyring: &KeyRing, stream_id: &str, field: &str, stored: &str) -> Result<SecretString, ApiError> {
    keyring.decrypt(Owner::new(stream_id, field), stored).map_err(ApiError::internal)
}

pub(super) fn is_due(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>, within: Duration) -> bool {
    expires_at.is_some_and(|e| e <= now + chrono::Duration::from_std(within).unwrap_or_default())
}

pub(super) fn retry_after_throttle(last_failed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let interval = INLINE_RETRY_INTERVAL.as_secs() as i64;
    let elapsed = last_failed_at.map_or(interval, |t| (now - t).num_seconds());
    (interval - elapsed).clamp(1, interval) as u64
}
