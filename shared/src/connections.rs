//! OAuth connections as event-sourced streams `connection-<connection_id>` (DESIGN §6.2–§6.5)
//! and their projection: starting and completing authorizations, handing out valid tokens,
//! refreshing them exactly once at a time, status, history and revocation.
//!
//! Owns the rule that one connection is refreshed by one caller at a time, across execution
//! environments: the refresher holds the connection's row lock (`SELECT … FOR UPDATE`, in a
//! transaction whose timeouts bound it) while it calls the provider, stores the rotated
//! refresh token in that same transaction, and everyone who waited reads the winner's token.
//! Tokens are encrypted bound to `connection-<id>`/`access_token` and `…/refresh_token`
//! before they reach an event or a row. Nothing here formats a token into a log line or an
//! error; the only plaintext that leaves is the access token of `GET /v1/tokens/{id}`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::{Row, Transaction, error::SqlState, types::Type};
use uuid::Uuid;

use crate::{
    auth::{Scope, bearer},
    clients::{self, AuthMethod},
    context::Context,
    crypto::{KeyRing, Owner, constant_time_eq, sha256},
    events::{self, EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
    http::{ApiError, Page, decode_cursor, encode_cursor, page_limit},
    oauth::{self, ErrorClass, Provider, ProviderError, TokenEndpoint, TokenSet},
    projections,
};

/// After a transient failure, inline refreshes of a connection are tried at most this often.
pub const INLINE_RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// A caller's name for one connection: 1–128 characters of `A-Z a-z 0-9 . _ : -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(String);

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

fn stream(id: &str) -> String {
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

/// Events of a `connection-<id>` stream. Token fields hold ciphertexts only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ConnectionEvent {
    /// An authorization completed: new tokens (replacing any old ones).
    ConnectionAuthorized {
        /// keyledger's client id.
        client_id: Uuid,
        /// Ciphertext.
        access_token: String,
        /// Ciphertext, when the provider issued a refresh token.
        refresh_token: Option<String>,
        /// Usually `Bearer`.
        token_type: String,
        /// None when the provider gave no `expires_in`.
        expires_at: Option<DateTime<Utc>>,
        /// Granted scopes.
        scopes: Vec<String>,
        /// Extra fields of the token response.
        provider_data: Value,
    },
    /// An authorization ended with a provider error or a failed code exchange.
    AuthorizationFailed {
        /// keyledger's client id.
        client_id: Uuid,
        /// OAuth error code.
        error: String,
        /// Explanation.
        error_description: Option<String>,
    },
    /// A refresh succeeded.
    TokenRefreshed {
        /// What caused it.
        trigger: Trigger,
        /// Expiry before.
        previous_expires_at: Option<DateTime<Utc>>,
        /// Expiry now.
        expires_at: Option<DateTime<Utc>>,
        /// Ciphertext of the new access token.
        access_token: String,
        /// Ciphertext of the rotated refresh token; None keeps the old one.
        refresh_token: Option<String>,
        /// Whether the provider rotated the refresh token.
        refresh_token_rotated: bool,
        /// Token type.
        token_type: String,
        /// Granted scopes (the old ones when the provider did not list them).
        scopes: Vec<String>,
        /// Extra fields of the answer, merged over the old ones.
        provider_data: Value,
    },
    /// A refresh failed transiently; retried later.
    TokenRefreshFailed {
        /// What caused it.
        trigger: Trigger,
        /// Expiry of the current token.
        previous_expires_at: Option<DateTime<Utc>>,
        /// Error class (`timeout`, `server_error`, …).
        error_class: String,
        /// Explanation.
        message: String,
        /// Failures in a row, this one included.
        consecutive_failures: i32,
        /// Earliest scheduled retry.
        next_attempt_at: DateTime<Utc>,
    },
    /// The grant is dead (`invalid_grant`); a new authorization is needed.
    ReauthorizationRequired {
        /// What found out.
        trigger: Trigger,
        /// Error class.
        error_class: String,
        /// Explanation.
        message: String,
    },
    /// Revoked by a caller.
    ConnectionRevoked {
        /// `revoked`, `failed` or `not_supported` (no `revoke_url`).
        provider_revocation: String,
        /// The provider's error, when revocation failed.
        message: Option<String>,
    },
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
}

#[derive(Serialize)]
struct TokenBody<'a> {
    connection_id: &'a str,
    client_id: Uuid,
    access_token: &'a str,
    token_type: &'a str,
    expires_at: Option<DateTime<Utc>>,
    expires_in: Option<i64>,
    scopes: &'a [String],
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
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The JSON answer as of now.
    pub fn body(&self) -> Vec<u8> {
        self.to_json(Utc::now())
    }

    fn is_expired(&self, now: DateTime<Utc>) -> bool {
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
    gate: Arc<RefreshGate>,
}

impl Refresher {
    /// A refresher whose provider client `config` describes (timeout, outbound policy).
    pub fn new(config: &crate::config::Config) -> Result<Self, reqwest::Error> {
        Ok(Self { provider: Provider::from_config(config)?, gate: Arc::default() })
    }
}

/// Per-connection async mutexes, created on demand and dropped with their last user.
#[derive(Debug, Default)]
struct RefreshGate {
    slots: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl RefreshGate {
    async fn enter(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
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

fn decrypt(keyring: &KeyRing, stream_id: &str, field: &str, stored: &str) -> Result<SecretString, ApiError> {
    keyring.decrypt(Owner::new(stream_id, field), stored).map_err(ApiError::internal)
}

fn is_due(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>, within: Duration) -> bool {
    expires_at.is_some_and(|e| e <= now + chrono::Duration::from_std(within).unwrap_or_default())
}

fn retry_after_throttle(last_failed_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let interval = INLINE_RETRY_INTERVAL.as_secs() as i64;
    let elapsed = last_failed_at.map_or(interval, |t| (now - t).num_seconds());
    (interval - elapsed).clamp(1, interval) as u64
}

// ---------------------------------------------------------------------------------------
// GET /v1/tokens/{id}: the hot path.

/// The hot path's one statement: the API key and the connection together, through
/// `token_lookup` (migration 0001), whose plans the server caches per session. A missing key
/// gives no row; a missing connection gives a row of NULLs after the key's columns; a NULL
/// key hash (the bootstrap admin key, checked in memory) reads the connection alone.
const TOKEN_LOOKUP: &str = "SELECT * FROM token_lookup($1, $2)";

/// The connection alone, for re-reading after waiting for a refresh.
const FETCH: &str = "
SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at, c.scopes,
       c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL
FROM connections c WHERE c.connection_id = $1";

/// A connection as the token path sees it.
struct Snapshot {
    client_id: Uuid,
    status: Status,
    access_token: Option<String>,
    token_type: String,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    last_failed_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    has_refresh_token: bool,
}

impl Snapshot {
    fn from_row(row: &Row) -> Result<Option<Self>, ApiError> {
        let Some(client_id) = row.get::<_, Option<Uuid>>(2) else { return Ok(None) };
        let status: String = row.get(3);
        Ok(Some(Self {
            client_id,
            status: Status::parse(&status).ok_or_else(|| ApiError::internal(format!("stored status '{status}'")))?,
            access_token: row.get(4),
            token_type: row.get(5),
            expires_at: row.get(6),
            scopes: row.get(7),
            last_failed_at: row.get(8),
            last_refreshed_at: row.get(9),
            has_refresh_token: row.get(10),
        }))
    }

    fn token(&self, keyring: &KeyRing, id: &ConnectionId) -> Result<Option<Token>, ApiError> {
        let Some(ct) = &self.access_token else { return Ok(None) };
        Ok(Some(Token {
            connection_id: id.0.clone(),
            client_id: self.client_id,
            access_token: decrypt(keyring, &id.stream(), "access_token", ct)?,
            token_type: self.token_type.clone(),
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
        }))
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

fn status_error(id: &ConnectionId, status: Status) -> Option<ApiError> {
    match status {
        Status::ReauthorizationRequired => Some(ApiError::conflict(
            "reauthorization_required",
            format!("connection '{id}' must be authorized again (its grant was refused by the provider)"),
        )),
        Status::Revoked => Some(ApiError::conflict("connection_revoked", format!("connection '{id}' was revoked"))),
        Status::Active | Status::RefreshFailing => None,
    }
}

/// `GET /v1/tokens/{id}`: authenticates the caller and reads the connection in one database
/// round trip; refreshes inline (once, whoever else asks at the same time) only when the
/// token expires within `TOKEN_EXPIRY_BUFFER_SECONDS`.
pub async fn fetch_token(
    ctx: &Context,
    refresher: &Refresher,
    authorization: Option<&str>,
    raw_id: &str,
    request_id: &str,
) -> Result<Token, ApiError> {
    let since = Utc::now();
    let key =
        bearer(authorization).ok_or_else(|| unauthorized("an 'Authorization: Bearer <api key>' header is required"))?;
    if key.len() > 256 {
        return Err(unauthorized("unknown API key"));
    }
    let hash = sha256(key.as_bytes());
    // An impossible id cannot exist; the key is still checked first so that 401 wins.
    let id = ConnectionId::parse(raw_id).ok();
    let id_param = id.as_ref().map_or("", |i| i.as_str());
    let is_admin = ctx.admin_key_hash().await?.is_some_and(|admin| constant_time_eq(&hash, admin.as_slice()));
    let (actor, row) = if is_admin {
        let no_key: Option<&[u8]> = None;
        let rows = ctx.db().read(TOKEN_LOOKUP, &[(&no_key, Type::BYTEA), (&id_param, Type::TEXT)]).await?;
        ("admin:bootstrap".to_owned(), rows.into_iter().next())
    } else {
        let hash_param = hash.as_slice();
        let rows = ctx.db().read(TOKEN_LOOKUP, &[(&hash_param, Type::BYTEA), (&id_param, Type::TEXT)]).await?;
        let row = rows.into_iter().next().ok_or_else(|| unauthorized("unknown API key"))?;
        let scopes: Vec<String> = row.get(1);
        let allowed = scopes.iter().any(|s| s == Scope::TokensRead.as_str() || s == Scope::Admin.as_str());
        if !allowed {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the '{}' scope", Scope::TokensRead),
            ));
        }
        (format!("apikey:{}", row.get::<_, Uuid>(0)), Some(row))
    };
    let (Some(id), Some(row)) = (id, row) else { return Err(not_found(raw_id)) };
    let Some(snapshot) = Snapshot::from_row(&row)? else { return Err(not_found(raw_id)) };
    if let Some(err) = status_error(&id, snapshot.status) {
        return Err(err);
    }
    let keyring = ctx.keyring().await?;
    let token =
        snapshot.token(&keyring, &id)?.ok_or_else(|| ApiError::internal("an active connection without token"))?;
    let now = Utc::now();
    if !is_due(snapshot.expires_at, now, ctx.config().token_expiry_buffer) {
        return Ok(token);
    }
    if !snapshot.has_refresh_token {
        // Nothing to refresh with: the token is good until it expires, then only a new
        // authorization helps.
        if !token.is_expired(now) {
            return Ok(token);
        }
    } else if snapshot.status == Status::RefreshFailing
        && snapshot
            .last_failed_at
            .is_some_and(|t| now - t < chrono::Duration::from_std(INLINE_RETRY_INTERVAL).unwrap_or_default())
    {
        return usable_or_503(Some(token), now, retry_after_throttle(snapshot.last_failed_at, now));
    }
    let metadata = Metadata { request_id: Some(request_id.to_owned()), actor, function: ctx.function().to_owned() };
    let _turn = refresher.gate.enter(id.as_str()).await;
    // Whoever held the gate before us may have refreshed it already: one cheap read first.
    if let Some(fresh) = reread(ctx, &keyring, &id, since).await? {
        return Ok(fresh);
    }
    let outcome = refresh(
        ctx,
        &refresher.provider,
        RefreshRequest {
            connection_id: &id,
            trigger: Trigger::OnDemand,
            lock: LockMode::Wait,
            since,
            metadata: &metadata,
        },
    )
    .await?;
    outcome.into_token(&id, Utc::now())
}

async fn reread(
    ctx: &Context,
    keyring: &KeyRing,
    id: &ConnectionId,
    since: DateTime<Utc>,
) -> Result<Option<Token>, ApiError> {
    let rows = ctx.db().query(FETCH, &[(&id.as_str(), Type::TEXT)]).await?;
    let Some(snapshot) = rows.first().map(Snapshot::from_row).transpose()?.flatten() else {
        return Err(not_found(id.as_str()));
    };
    if let Some(err) = status_error(id, snapshot.status) {
        return Err(err);
    }
    let refreshed_meanwhile = snapshot.last_refreshed_at.is_some_and(|t| t >= since);
    if refreshed_meanwhile || !is_due(snapshot.expires_at, Utc::now(), ctx.config().token_expiry_buffer) {
        return snapshot.token(keyring, id);
    }
    Ok(None)
}

fn usable_or_503(token: Option<Token>, now: DateTime<Utc>, retry_after: u64) -> Result<Token, ApiError> {
    match token {
        Some(t) if !t.is_expired(now) => Ok(t),
        _ => Err(ApiError::unavailable(
            "refresh_failed",
            "the token has expired and the provider could not refresh it; try again later",
            retry_after,
        )),
    }
}

/// `POST /v1/tokens/{id}/refresh`: a refresh now, unless somebody else refreshed the
/// connection while this request waited for its lock (then their token is the answer).
pub async fn force_refresh(
    ctx: &Context,
    refresher: &Refresher,
    id: &ConnectionId,
    metadata: &Metadata,
) -> Result<Token, ApiError> {
    let since = Utc::now();
    let _turn = refresher.gate.enter(id.as_str()).await;
    let outcome = refresh(
        ctx,
        &refresher.provider,
        RefreshRequest { connection_id: id, trigger: Trigger::Forced, lock: LockMode::Wait, since, metadata },
    )
    .await?;
    match outcome {
        // A forced refresh that did not happen is a failure even while the old token lives.
        RefreshOutcome::Failed { error, retry_after, .. } => Err(ApiError::unavailable(
            "refresh_failed",
            format!("the provider could not refresh the token ({})", error.class.as_str()),
            retry_after,
        )),
        RefreshOutcome::NoRefreshToken => Err(ApiError::conflict(
            "no_refresh_token",
            format!("connection '{id}' has no refresh token; authorize it again for a new token"),
        )),
        other => other.into_token(id, Utc::now()),
    }
}

// ---------------------------------------------------------------------------------------
// The refresh itself, shared by the inline, forced and scheduled paths.

/// How to take a connection's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Wait for a concurrent refresher, then reuse its result.
    Wait,
    /// Skip a connection somebody else holds (the scheduled refresh).
    SkipLocked,
}

/// One refresh to attempt.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRequest<'a> {
    /// Which connection.
    pub connection_id: &'a ConnectionId,
    /// Why.
    pub trigger: Trigger,
    /// How to lock.
    pub lock: LockMode,
    /// When the caller started: a refresh recorded after this instant is as good as ours.
    pub since: DateTime<Utc>,
    /// Event metadata.
    pub metadata: &'a Metadata,
}

/// What [`refresh`] did.
#[derive(Debug)]
pub enum RefreshOutcome {
    /// The provider issued a new token; it is stored.
    Refreshed(Token),
    /// Nothing to do (somebody else refreshed it, or it is not due): the current token.
    Current(Token),
    /// Another refresher holds the connection, or it is not due (scheduled only).
    Skipped,
    /// A transient failure, recorded; the current token, which may have expired.
    Failed {
        /// The current token.
        token: Option<Token>,
        /// The failure.
        error: ProviderError,
        /// Seconds after which trying again makes sense.
        retry_after: u64,
    },
    /// Not tried: a transient failure happened less than 30 s ago.
    Throttled {
        /// The current token.
        token: Option<Token>,
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// The provider refused the grant (now, or earlier); recorded.
    ReauthorizationRequired,
    /// The connection is revoked.
    Revoked,
    /// The connection has no refresh token.
    NoRefreshToken,
    /// No such connection.
    NotFound,
}

impl RefreshOutcome {
    /// The HTTP view of an outcome: a token, or the error DESIGN §6.4 names.
    pub fn into_token(self, id: &ConnectionId, now: DateTime<Utc>) -> Result<Token, ApiError> {
        match self {
            Self::Refreshed(t) | Self::Current(t) => Ok(t),
            Self::Failed { token, retry_after, .. } | Self::Throttled { token, retry_after } => {
                usable_or_503(token, now, retry_after)
            }
            Self::ReauthorizationRequired => {
                Err(status_error(id, Status::ReauthorizationRequired).unwrap_or_else(|| not_found(id.as_str())))
            }
            Self::Revoked => Err(status_error(id, Status::Revoked).unwrap_or_else(|| not_found(id.as_str()))),
            Self::NoRefreshToken => Err(ApiError::conflict(
                "reauthorization_required",
                format!("connection '{id}' has expired and has no refresh token; authorize it again"),
            )),
            Self::NotFound | Self::Skipped => Err(not_found(id.as_str())),
        }
    }
}

/// Transaction-local limits: a lock wait, a statement and an idle transaction (a frozen
/// Lambda holding the lock) all end within the provider timeout plus a margin, so a lock
/// can never outlive the call that holds it.
const LOCAL_TIMEOUTS: &str = "
SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true),
       set_config('idle_in_transaction_session_timeout', $1, true)";

macro_rules! lock_sql {
    ($suffix:literal) => {
        concat!(
            "SELECT c.client_id, c.status, c.access_token, c.refresh_token, c.token_type, c.expires_at, c.scopes,
                    c.last_refreshed_at, c.last_failed_at, c.next_attempt_at, c.consecutive_failures,
                    c.refresh_token_used_at, c.version,
                    cl.token_url, cl.revoke_url, cl.client_id AS provider_client_id, cl.client_secret, cl.auth_method,
                    cl.redirect_uri
             FROM connections c JOIN clients cl ON cl.id = c.client_id
             WHERE c.connection_id = $1
             FOR UPDATE OF c",
            $suffix
        )
    };
}
const LOCK_WAIT: &str = lock_sql!("");
const LOCK_SKIP: &str = lock_sql!(" SKIP LOCKED");

/// A connection row under its lock, with what is needed to call its provider.
struct Locked {
    client_id: Uuid,
    status: Status,
    access_token: Option<String>,
    refresh_token: Option<String>,
    token_type: String,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    last_refreshed_at: Option<DateTime<Utc>>,
    last_failed_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    consecutive_failures: i32,
    refresh_token_used_at: Option<DateTime<Utc>>,
    version: i32,
    endpoint: TokenEndpoint,
}

impl Locked {
    fn from_row(row: &Row, keyring: &KeyRing) -> Result<Self, ApiError> {
        let status: String = row.get("status");
        let auth_method: String = row.get("auth_method");
        let client_id: Uuid = row.get("client_id");
        Ok(Self {
            client_id,
            status: Status::parse(&status).ok_or_else(|| ApiError::internal(format!("stored status '{status}'")))?,
            access_token: row.get("access_token"),
            refresh_token: row.get("refresh_token"),
            token_type: row.get("token_type"),
            expires_at: row.get("expires_at"),
            scopes: row.get("scopes"),
            last_refreshed_at: row.get("last_refreshed_at"),
            last_failed_at: row.get("last_failed_at"),
            next_attempt_at: row.get("next_attempt_at"),
            consecutive_failures: row.get("consecutive_failures"),
            refresh_token_used_at: row.get("refresh_token_used_at"),
            version: row.get("version"),
            endpoint: TokenEndpoint {
                token_url: row.get("token_url"),
                revoke_url: row.get("revoke_url"),
                client_id: row.get("provider_client_id"),
                client_secret: clients::decrypt_secret(keyring, client_id, row.get("client_secret"))?,
                auth_method: AuthMethod::parse(&auth_method)
                    .ok_or_else(|| ApiError::internal(format!("stored auth_method '{auth_method}'")))?,
                redirect_uri: row.get("redirect_uri"),
                capture: Vec::new(), // the client's `capture.token` list, once clients have one (§6.14)
            },
        })
    }

    fn token(&self, keyring: &KeyRing, id: &ConnectionId) -> Result<Option<Token>, ApiError> {
        let Some(ct) = &self.access_token else { return Ok(None) };
        Ok(Some(Token {
            connection_id: id.0.clone(),
            client_id: self.client_id,
            access_token: decrypt(keyring, &id.stream(), "access_token", ct)?,
            token_type: self.token_type.clone(),
            expires_at: self.expires_at,
            scopes: self.scopes.clone(),
        }))
    }
}

/// Backoff of the scheduled refresh after `failures` transient failures in a row:
/// 1, 2, 4 … minutes, at most an hour.
pub fn backoff(failures: i32) -> Duration {
    let exp = failures.clamp(1, 7) as u32 - 1;
    Duration::from_secs((60u64 << exp).min(3600))
}

fn lock_error(e: tokio_postgres::Error) -> ApiError {
    let code = e.code();
    if code == Some(&SqlState::LOCK_NOT_AVAILABLE) || code == Some(&SqlState::QUERY_CANCELED) {
        ApiError::unavailable("refresh_failed", "another refresh of this connection is taking too long; try again", 1)
    } else {
        e.into()
    }
}

/// Sets the transaction's limits and takes the row lock. Both statements are sent at once
/// (tokio-postgres pipelines them; the server still runs them in order), which saves a
/// round trip on every refresh.
async fn lock_row(ctx: &Context, tx: &Transaction<'_>, sql: &str, id: &ConnectionId) -> Result<Vec<Row>, ApiError> {
    let limit = (ctx.config().provider_timeout + Duration::from_secs(5)).as_millis().to_string();
    let id = id.as_str();
    let limits: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] = [(&limit, Type::TEXT)];
    let key: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] = [(&id, Type::TEXT)];
    let (_, rows) =
        tokio::try_join!(tx.query_typed(LOCAL_TIMEOUTS, &limits), tx.query_typed(sql, &key)).map_err(lock_error)?;
    Ok(rows)
}

/// Refreshes one connection under its row lock. The provider is called only when, after
/// the lock is taken, the connection still needs it; the result (new tokens, a failure,
/// or a dead grant) is recorded in the same transaction that holds the lock.
pub async fn refresh(ctx: &Context, provider: &Provider, req: RefreshRequest<'_>) -> Result<RefreshOutcome, ApiError> {
    let id = req.connection_id;
    let keyring = ctx.keyring().await?;
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let sql = match req.lock {
        LockMode::Wait => LOCK_WAIT,
        LockMode::SkipLocked => LOCK_SKIP,
    };
    let rows = lock_row(ctx, &tx, sql, id).await?;
    let Some(row) = rows.first() else {
        return Ok(match req.lock {
            LockMode::Wait => RefreshOutcome::NotFound,
            LockMode::SkipLocked => RefreshOutcome::Skipped,
        });
    };
    let c = Locked::from_row(row, &keyring)?;
    let now = Utc::now();
    match c.status {
        Status::Revoked => return Ok(RefreshOutcome::Revoked),
        Status::ReauthorizationRequired => return Ok(RefreshOutcome::ReauthorizationRequired),
        Status::Active | Status::RefreshFailing => {}
    }
    let current = c.token(&keyring, id)?;
    let refreshed_meanwhile = c.last_refreshed_at.is_some_and(|t| t >= req.since);
    match req.trigger {
        Trigger::OnDemand => {
            if refreshed_meanwhile || !is_due(c.expires_at, now, ctx.config().token_expiry_buffer) {
                return Ok(current.map_or(RefreshOutcome::NotFound, RefreshOutcome::Current));
            }
            if c.status == Status::RefreshFailing
                && c.last_failed_at
                    .is_some_and(|t| now - t < chrono::Duration::from_std(INLINE_RETRY_INTERVAL).unwrap_or_default())
            {
                return Ok(RefreshOutcome::Throttled {
                    token: current,
                    retry_after: retry_after_throttle(c.last_failed_at, now),
                });
            }
        }
        Trigger::Forced => {
            if refreshed_meanwhile {
                return Ok(current.map_or(RefreshOutcome::NotFound, RefreshOutcome::Current));
            }
        }
        Trigger::Scheduled => {
            let keepalive_due = ctx.config().refresh_keepalive.is_some_and(|idle| {
                c.refresh_token_used_at.is_none_or(|t| t <= now - chrono::Duration::from_std(idle).unwrap_or_default())
            });
            let due = is_due(c.expires_at, now, ctx.config().refresh_window) || keepalive_due;
            let backing_off = c.next_attempt_at.is_some_and(|t| t > now);
            if refreshed_meanwhile || !due || backing_off {
                return Ok(RefreshOutcome::Skipped);
            }
        }
    }
    let Some(stored_refresh) = &c.refresh_token else {
        let usable = current.filter(|t| req.trigger == Trigger::OnDemand && !t.is_expired(now));
        return Ok(usable.map_or(RefreshOutcome::NoRefreshToken, RefreshOutcome::Current));
    };
    let stream_id = id.stream();
    let refresh_token = decrypt(&keyring, &stream_id, "refresh_token", stored_refresh)?;
    let answer = provider.refresh(&c.endpoint, &refresh_token).await;
    let done = Utc::now();
    let expected = ExpectedVersion::Exact(c.version);
    let outcome = match answer {
        Ok(set) => {
            let event = refreshed_event(&keyring, &stream_id, &c, &set, req.trigger, done);
            projections::record(&tx, &stream_id, expected, &[event], req.metadata).await?;
            let expires_at = set.expires_at(done);
            RefreshOutcome::Refreshed(Token {
                connection_id: id.0.clone(),
                client_id: c.client_id,
                access_token: set.access_token,
                expires_at,
                token_type: set.token_type,
                scopes: set.scopes.unwrap_or(c.scopes),
            })
        }
        Err(error) if error.class == ErrorClass::InvalidGrant => {
            tracing::warn!(connection_id = %id, error = %error, "refresh token refused; reauthorization required");
            let event = ConnectionEvent::ReauthorizationRequired {
                trigger: req.trigger,
                error_class: error.class.as_str().to_owned(),
                message: error.message.clone(),
            };
            projections::record(&tx, &stream_id, expected, &[event], req.metadata).await?;
            RefreshOutcome::ReauthorizationRequired
        }
        Err(error) => {
            tracing::warn!(connection_id = %id, error = %error, "refresh failed");
            let failures = c.consecutive_failures + 1;
            let event = ConnectionEvent::TokenRefreshFailed {
                trigger: req.trigger,
                previous_expires_at: c.expires_at,
                error_class: error.class.as_str().to_owned(),
                message: error.message.clone(),
                consecutive_failures: failures,
                next_attempt_at: done + chrono::Duration::from_std(backoff(failures)).unwrap_or_default(),
            };
            projections::record(&tx, &stream_id, expected, &[event], req.metadata).await?;
            let retry_after = error.retry_after.unwrap_or(INLINE_RETRY_INTERVAL.as_secs()).clamp(1, 3600);
            RefreshOutcome::Failed { token: current, error, retry_after }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

fn refreshed_event(
    keyring: &KeyRing,
    stream_id: &str,
    c: &Locked,
    set: &TokenSet,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> ConnectionEvent {
    ConnectionEvent::TokenRefreshed {
        trigger,
        previous_expires_at: c.expires_at,
        expires_at: set.expires_at(now),
        access_token: keyring.encrypt(Owner::new(stream_id, "access_token"), set.access_token.expose_secret()),
        refresh_token: set
            .refresh_token
            .as_ref()
            .map(|r| keyring.encrypt(Owner::new(stream_id, "refresh_token"), r.expose_secret())),
        refresh_token_rotated: set.refresh_token.is_some(),
        token_type: set.token_type.clone(),
        scopes: set.scopes.clone().unwrap_or_else(|| c.scopes.clone()),
        provider_data: Value::Object(set.provider_data.clone()),
    }
}

// ---------------------------------------------------------------------------------------
// Starting and completing authorizations.

/// The body of `POST /v1/connections/authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// keyledger's client id.
    pub client_id: Uuid,
    /// The connection to authorize (new, or existing to re-authorize).
    pub connection_id: String,
    /// Where the browser goes after the callback.
    #[serde(default)]
    pub return_to: Option<String>,
}

/// The answer of `POST /v1/connections/authorize`.
#[derive(Debug, Serialize)]
pub struct AuthorizeStart {
    /// Send the user's browser here.
    pub authorize_url: String,
    /// The pending authorization is valid until then.
    pub expires_at: DateTime<Utc>,
}

const OWNER_OF: &str = "SELECT client_id, status FROM connections WHERE connection_id = $1";

/// Starts an authorization: a random single-use state (10 minutes) remembering the client,
/// connection, PKCE verifier and `return_to`.
pub async fn start_authorization(ctx: &Context, req: AuthorizeRequest) -> Result<AuthorizeStart, ApiError> {
    let id =
        ConnectionId::parse(&req.connection_id).map_err(|e| ApiError::invalid_field("connection_id", e.to_string()))?;
    let return_to = match req.return_to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(clients::parse_endpoint("return_to", raw)?.to_string()),
    };
    let client = clients::provider(ctx, req.client_id).await?;
    let rows = ctx.db().query(OWNER_OF, &[(&id.as_str(), Type::TEXT)]).await?;
    if let Some(row) = rows.first() {
        let owner: Uuid = row.get(0);
        let status: String = row.get(1);
        if owner != client.id && status != Status::Revoked.as_str() {
            return Err(ApiError::conflict(
                "connection_exists",
                format!("connection '{id}' belongs to another client; revoke it first or choose another id"),
            ));
        }
    }
    let keyring = ctx.keyring().await?;
    let (state, challenge, expires_at) =
        oauth::create_state(ctx, &keyring, client.id, id.as_str(), client.settings.pkce, return_to.as_deref()).await?;
    let url = oauth::authorize_url(&client, &state, challenge.as_deref())?;
    Ok(AuthorizeStart { authorize_url: url.to_string(), expires_at })
}

/// The query of `GET /oauth/callback`.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<String>,
    /// Our state.
    pub state: Option<String>,
    /// Provider error code.
    pub error: Option<String>,
    /// Provider error text.
    pub error_description: Option<String>,
}

/// How a callback ended (an unknown state is an error, not an outcome).
#[derive(Debug)]
pub enum CallbackOutcome {
    /// Tokens stored.
    Connected {
        /// The connection.
        connection_id: String,
        /// Where to send the browser.
        return_to: Option<String>,
    },
    /// The provider refused, or the code exchange failed; recorded as AuthorizationFailed.
    Failed {
        /// The connection.
        connection_id: String,
        /// OAuth error code.
        error: String,
        /// Explanation.
        description: String,
        /// Where to send the browser.
        return_to: Option<String>,
    },
}

/// 400 `invalid_state`.
pub fn invalid_state() -> ApiError {
    ApiError::bad_request(
        "invalid_state",
        "this authorization link is unknown, expired or already used; start the connection again",
    )
}

/// Completes an authorization: consumes the state (unknown, expired, reused → `invalid_state`,
/// nothing stored), records a provider error, or exchanges the code and stores the tokens.
pub async fn complete_authorization(
    ctx: &Context,
    provider: &Provider,
    params: CallbackParams,
    metadata: &Metadata,
) -> Result<CallbackOutcome, ApiError> {
    let state = params.state.as_deref().unwrap_or("");
    let keyring = ctx.keyring().await?;
    let pending = oauth::consume_state(ctx, &keyring, state).await?.ok_or_else(invalid_state)?;
    let id = ConnectionId::parse(&pending.connection_id).map_err(ApiError::internal)?;
    let stream_id = id.stream();
    let failed = Failure {
        ctx,
        stream_id: &stream_id,
        client_id: pending.client_id,
        id: &id,
        return_to: &pending.return_to,
        metadata,
    };
    if let Some(error) = params.error.as_deref().filter(|e| !e.is_empty()) {
        let error = clip_code(error);
        let description = params.error_description.as_deref().map(clip_text).unwrap_or_else(|| error.clone());
        return failed.record(error, description).await;
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return failed.record("invalid_request".into(), "the provider sent neither a code nor an error".into()).await;
    };
    let client = match clients::provider(ctx, pending.client_id).await {
        Ok(c) => c,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            return failed
                .record("client_not_found".into(), "the client was deleted during the authorization".into())
                .await;
        }
        Err(e) => return Err(e),
    };
    let endpoint = TokenEndpoint::from(&client);
    let set = match provider.exchange_code(&endpoint, code, pending.code_verifier.as_ref()).await {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(connection_id = %id, error = %e, "code exchange failed");
            return failed.record(e.code().to_owned(), e.message.clone()).await;
        }
    };
    let now = Utc::now();
    let event = ConnectionEvent::ConnectionAuthorized {
        client_id: client.id,
        access_token: keyring.encrypt(Owner::new(&stream_id, "access_token"), set.access_token.expose_secret()),
        refresh_token: set
            .refresh_token
            .as_ref()
            .map(|r| keyring.encrypt(Owner::new(&stream_id, "refresh_token"), r.expose_secret())),
        token_type: set.token_type.clone(),
        expires_at: set.expires_at(now),
        scopes: set.scopes.clone().unwrap_or_else(|| client.settings.scopes.clone()),
        provider_data: Value::Object(set.provider_data.clone()),
    };
    record_any(ctx, &stream_id, event, metadata).await?;
    Ok(CallbackOutcome::Connected { connection_id: id.0.clone(), return_to: pending.return_to })
}

/// Records AuthorizationFailed for a consumed state.
struct Failure<'a> {
    ctx: &'a Context,
    stream_id: &'a str,
    client_id: Uuid,
    id: &'a ConnectionId,
    return_to: &'a Option<String>,
    metadata: &'a Metadata,
}

impl Failure<'_> {
    async fn record(&self, error: String, description: String) -> Result<CallbackOutcome, ApiError> {
        let event = ConnectionEvent::AuthorizationFailed {
            client_id: self.client_id,
            error: error.clone(),
            error_description: Some(description.clone()),
        };
        record_any(self.ctx, self.stream_id, event, self.metadata).await?;
        Ok(CallbackOutcome::Failed {
            connection_id: self.id.0.clone(),
            error,
            description,
            return_to: self.return_to.clone(),
        })
    }
}

fn clip_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

fn clip_text(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

async fn record_any(
    ctx: &Context,
    stream_id: &str,
    event: ConnectionEvent,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    // Take the row lock when there is a row, so an authorization never interleaves with a
    // refresh of the same connection.
    let id = stream_id.trim_start_matches("connection-");
    tx.query_typed("SELECT 1 FROM connections WHERE connection_id = $1 FOR UPDATE", &[(&id, Type::TEXT)]).await?;
    projections::record(&tx, stream_id, ExpectedVersion::Any, &[event], metadata).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Status, listing, history and revocation.

const VIEW_COLUMNS: &str = "connection_id, client_id, status, expires_at, last_refreshed_at, consecutive_failures, \
                            last_error, scopes, provider_data, created_at, updated_at";

fn view(row: &Row) -> Result<Connection, ApiError> {
    let status: String = row.get("status");
    Ok(Connection {
        connection_id: row.get("connection_id"),
        client_id: row.get("client_id"),
        status: Status::parse(&status).ok_or_else(|| ApiError::internal(format!("stored status '{status}'")))?,
        expires_at: row.get("expires_at"),
        last_refreshed_at: row.get("last_refreshed_at"),
        consecutive_failures: row.get("consecutive_failures"),
        last_error: row.get("last_error"),
        scopes: row.get("scopes"),
        provider_data: row.get("provider_data"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// One connection's status.
pub async fn get(ctx: &Context, id: &ConnectionId) -> Result<Connection, ApiError> {
    let sql = format!("SELECT {VIEW_COLUMNS} FROM connections WHERE connection_id = $1");
    let rows = ctx.db().query(&sql, &[(&id.as_str(), Type::TEXT)]).await?;
    rows.first().map(view).transpose()?.ok_or_else(|| not_found(id.as_str()))
}

/// Filters of `GET /v1/connections`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this client's connections.
    pub client_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<String>,
    /// Page size.
    pub limit: Option<i64>,
    /// Opaque cursor.
    pub cursor: Option<String>,
}

/// Connections in id order.
pub async fn list(ctx: &Context, params: ListParams) -> Result<Page<Connection>, ApiError> {
    let limit = page_limit(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::invalid_field(
                    "status",
                    "status must be active, refresh_failing, reauthorization_required or revoked",
                )
            })
        })
        .transpose()?
        .map(Status::as_str);
    let after: Option<String> = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    let sql = format!(
        "SELECT {VIEW_COLUMNS} FROM connections
         WHERE ($1::uuid IS NULL OR client_id = $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR connection_id > $3)
         ORDER BY connection_id LIMIT $4"
    );
    let rows = ctx
        .db()
        .query(
            &sql,
            &[(&params.client_id, Type::UUID), (&status, Type::TEXT), (&after, Type::TEXT), (&fetch, Type::INT8)],
        )
        .await?;
    let mut items = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|c| c.connection_id.clone()))
    });
    Ok(Page { items, next_cursor })
}

/// One event of a connection's history, without secrets.
#[derive(Debug, Serialize)]
pub struct HistoryItem {
    /// Version in the stream.
    pub version: i32,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Its data, token fields removed.
    pub data: Value,
}

/// Fields that never leave the service, even as ciphertexts.
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token"];

/// A connection's stream, oldest first, without token fields.
pub async fn history(
    ctx: &Context,
    id: &ConnectionId,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<HistoryItem>, ApiError> {
    let limit = page_limit(limit)?;
    let after: i32 = cursor.map(decode_cursor).transpose()?.unwrap_or(0);
    let db = ctx.db().get().await?;
    let recorded = events::read_stream(&**db, &id.stream(), after, limit + 1).await?;
    if recorded.is_empty() && after == 0 {
        return Err(not_found(id.as_str()));
    }
    let mut items: Vec<HistoryItem> = recorded
        .into_iter()
        .map(|e| {
            let data = oauth::capture::public_event_data::<ConnectionEvent>(&e, SECRET_FIELDS, &[]);
            HistoryItem { version: e.version, event_type: e.event_type, recorded_at: e.recorded_at, data }
        })
        .collect();
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map_or(0, |i| i.version))
    });
    Ok(Page { items, next_cursor })
}

/// Revokes a connection: the provider's `revoke_url` is called when the client has one
/// (best effort; the outcome is recorded), then ConnectionRevoked wipes the tokens from the
/// projection. Revoking a revoked connection changes nothing.
pub async fn revoke(
    ctx: &Context,
    provider: &Provider,
    id: &ConnectionId,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let keyring = ctx.keyring().await?;
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let rows = lock_row(ctx, &tx, LOCK_WAIT, id).await?;
    let row = rows.first().ok_or_else(|| not_found(id.as_str()))?;
    let c = Locked::from_row(row, &keyring)?;
    if c.status == Status::Revoked {
        return Ok(());
    }
    let stream_id = id.stream();
    let token = match (&c.refresh_token, &c.access_token) {
        (Some(rt), _) => Some((decrypt(&keyring, &stream_id, "refresh_token", rt)?, "refresh_token")),
        (None, Some(at)) => Some((decrypt(&keyring, &stream_id, "access_token", at)?, "access_token")),
        (None, None) => None,
    };
    let (provider_revocation, message) = match (&c.endpoint.revoke_url, token) {
        (Some(url), Some((token, hint))) => match provider.revoke(&c.endpoint, url, &token, hint).await {
            Ok(()) => ("revoked", None),
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %e, "provider revocation failed");
                ("failed", Some(e.to_string()))
            }
        },
        _ => ("not_supported", None),
    };
    let event = ConnectionEvent::ConnectionRevoked { provider_revocation: provider_revocation.to_owned(), message };
    projections::record(&tx, &stream_id, ExpectedVersion::Exact(c.version), &[event], metadata).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Projection.

const AUTHORIZED: &str = "
INSERT INTO connections (connection_id, client_id, status, access_token, refresh_token, token_type, expires_at, scopes,
                         provider_data, refresh_token_used_at, consecutive_failures, created_at, updated_at, version)
VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, 0, $9, $9, $10)
ON CONFLICT (connection_id) DO UPDATE SET
    client_id = EXCLUDED.client_id, status = 'active', access_token = EXCLUDED.access_token,
    refresh_token = EXCLUDED.refresh_token, token_type = EXCLUDED.token_type, expires_at = EXCLUDED.expires_at,
    scopes = EXCLUDED.scopes, provider_data = EXCLUDED.provider_data,
    refresh_token_used_at = EXCLUDED.refresh_token_used_at, consecutive_failures = 0, next_attempt_at = NULL,
    last_failed_at = NULL, last_error = NULL, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version";
const TOUCH: &str = "UPDATE connections SET updated_at = $2, version = $3 WHERE connection_id = $1";
const REFRESHED: &str = "
UPDATE connections SET status = 'active', access_token = $2, refresh_token = coalesce($3, refresh_token),
    token_type = $4, expires_at = $5, scopes = $6, provider_data = provider_data || $7, last_refreshed_at = $8,
    refresh_token_used_at = $8, consecutive_failures = 0, next_attempt_at = NULL, last_failed_at = NULL,
    last_error = NULL, updated_at = $8, version = $9
WHERE connection_id = $1";
const REFRESH_FAILED: &str = "
UPDATE connections SET status = 'refresh_failing', consecutive_failures = $2, next_attempt_at = $3,
    last_failed_at = $4, last_error = $5, updated_at = $4, version = $6
WHERE connection_id = $1";
const REAUTHORIZATION: &str = "
UPDATE connections SET status = 'reauthorization_required', access_token = NULL, refresh_token = NULL,
    next_attempt_at = NULL, last_failed_at = $2, last_error = $3, updated_at = $2, version = $4
WHERE connection_id = $1";
const REVOKED: &str = "
UPDATE connections SET status = 'revoked', access_token = NULL, refresh_token = NULL, next_attempt_at = NULL,
    updated_at = $2, version = $3
WHERE connection_id = $1";

/// Applies one `connection-` event to the `connections` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let id = event
        .stream_id
        .strip_prefix("connection-")
        .ok_or_else(|| EventStoreError::Payload(format!("stream '{}' is not a connection", event.stream_id)))?;
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<ConnectionEvent>()? {
        ConnectionEvent::ConnectionAuthorized {
            client_id,
            access_token,
            refresh_token,
            token_type,
            expires_at,
            scopes,
            provider_data,
        } => {
            tx.query_typed(
                AUTHORIZED,
                &[
                    (&id, Type::TEXT),
                    (&client_id, Type::UUID),
                    (&access_token, Type::TEXT),
                    (&refresh_token, Type::TEXT),
                    (&token_type, Type::TEXT),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&scopes, Type::TEXT_ARRAY),
                    (&provider_data, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ConnectionEvent::AuthorizationFailed { .. } => {
            tx.query_typed(TOUCH, &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (version, Type::INT4)]).await?;
        }
        ConnectionEvent::TokenRefreshed {
            expires_at,
            access_token,
            refresh_token,
            token_type,
            scopes,
            provider_data,
            ..
        } => {
            let provider_data = if provider_data.is_object() { provider_data } else { Value::Object(Map::new()) };
            tx.query_typed(
                REFRESHED,
                &[
                    (&id, Type::TEXT),
                    (&access_token, Type::TEXT),
                    (&refresh_token, Type::TEXT),
                    (&token_type, Type::TEXT),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&scopes, Type::TEXT_ARRAY),
                    (&provider_data, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ConnectionEvent::TokenRefreshFailed { consecutive_failures, next_attempt_at, error_class, message, .. } => {
            let last_error = format!("{error_class}: {message}");
            tx.query_typed(
                REFRESH_FAILED,
                &[
                    (&id, Type::TEXT),
                    (&consecutive_failures, Type::INT4),
                    (&next_attempt_at, Type::TIMESTAMPTZ),
                    (at, Type::TIMESTAMPTZ),
                    (&last_error, Type::TEXT),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ConnectionEvent::ReauthorizationRequired { error_class, message, .. } => {
            let last_error = format!("{error_class}: {message}");
            tx.query_typed(
                REAUTHORIZATION,
                &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (&last_error, Type::TEXT), (version, Type::INT4)],
            )
            .await?;
        }
        ConnectionEvent::ConnectionRevoked { .. } => {
            tx.query_typed(REVOKED, &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (version, Type::INT4)]).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_follow_the_design() {
        for ok in ["branch-42", "branch-42-google", "a", "A.b_c:d-e", &"x".repeat(128)] {
            assert!(ConnectionId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(129), "a%2F"] {
            assert!(ConnectionId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ConnectionId::parse("b-1").unwrap().stream(), "connection-b-1");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(240));
        assert_eq!(backoff(50), Duration::from_secs(3600));
    }

    #[test]
    fn due_means_within_the_buffer() {
        let now = Utc::now();
        let buffer = Duration::from_secs(300);
        assert!(!is_due(None, now, buffer));
        assert!(is_due(Some(now + chrono::Duration::seconds(299)), now, buffer));
        assert!(!is_due(Some(now + chrono::Duration::seconds(301)), now, buffer));
    }

    #[test]
    fn the_token_body_follows_the_design() {
        let now = Utc::now();
        let t = Token {
            connection_id: "b-42".into(),
            client_id: Uuid::nil(),
            access_token: SecretString::from("tok"),
            token_type: "Bearer".into(),
            expires_at: Some(now + chrono::Duration::seconds(100)),
            scopes: vec!["a".into()],
        };
        let v: Value = serde_json::from_slice(&t.to_json(now)).unwrap();
        assert_eq!(v["access_token"], "tok");
        assert_eq!(v["expires_in"], 100);
        assert_eq!(v["scopes"], serde_json::json!(["a"]));
        assert!(!format!("{t:?}").contains("tok\""));
    }
}
