//! The refresh itself, shared by the inline, forced and scheduled paths: lock the row, let
//! [`decide`] say whether the provider is to be called, call it, record the outcome in the
//! same transaction.
//!
//! [`decide`] is the whole rule of "is a refresh due, throttled, skipped or pointless", as a
//! pure function of the locked row, the trigger, the clock and the [`Policy`]; the I/O
//! around it only reads the row and records what happened.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio_postgres::{Row, Transaction, error::SqlState, types::Type};

use super::{
    ConnectionEvent, ConnectionId, Error, Grant, INLINE_RETRY_INTERVAL, PROJECTOR, Status, StoredToken, Token,
    TokenColumns, Trigger, decrypt, is_due, retry_after_throttle, stored_grant, token::usable_or_503,
};
use crate::{
    clients::{self, AuthMethod},
    config::Config,
    context::Context,
    crypto::{KeyRing, Owner},
    events::{ExpectedVersion, Metadata},
    oauth::{ErrorClass, Provider, ProviderError, TokenEndpoint, TokenSet},
    projections,
};

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
    /// The caller's view of an outcome: a token, or the error DESIGN §6.4 names.
    pub fn into_token(self, id: &ConnectionId, now: DateTime<Utc>) -> Result<Token, Error> {
        match self {
            Self::Refreshed(t) | Self::Current(t) => Ok(t),
            Self::Failed { token, retry_after, .. } | Self::Throttled { token, retry_after } => {
                usable_or_503(token, now, retry_after)
            }
            Self::ReauthorizationRequired => Err(Error::ReauthorizationRequired(id.clone())),
            Self::Revoked => Err(Error::Revoked(id.clone())),
            Self::NoRefreshToken => Err(Error::ExpiredWithoutRefreshToken(id.clone())),
            Self::NotFound | Self::Skipped => Err(Error::NotFound(id.to_string())),
        }
    }
}

/// The limits [`decide`] applies, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// An inline refresh happens when the token expires within this (`TOKEN_EXPIRY_BUFFER_SECONDS`).
    pub expiry_buffer: Duration,
    /// The scheduled refresh takes tokens that expire within this (`REFRESH_WINDOW_MINUTES`).
    pub refresh_window: Duration,
    /// Refresh tokens unused for this long are refreshed anyway (`REFRESH_KEEPALIVE_HOURS`).
    pub keepalive: Option<Duration>,
    /// A refresh recorded at or after this instant (the caller's start) is as good as ours.
    pub since: DateTime<Utc>,
}

impl Policy {
    /// The configured limits, for a caller that started at `since`.
    pub fn new(config: &Config, since: DateTime<Utc>) -> Self {
        Self {
            expiry_buffer: config.token_expiry_buffer,
            refresh_window: config.refresh_window,
            keepalive: config.refresh_keepalive,
            since,
        }
    }
}

/// What to do with a locked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Revoked: nothing to hand out.
    Revoked,
    /// The grant is dead: nothing to hand out until a new authorization.
    ReauthorizationRequired,
    /// Hand out the current token (somebody refreshed it meanwhile, or it is not due).
    Current,
    /// Not due, backing off, or refreshed meanwhile (scheduled only).
    Skip,
    /// A transient failure was recorded less than [`INLINE_RETRY_INTERVAL`] ago.
    Throttled {
        /// Seconds until an attempt is allowed.
        retry_after: u64,
    },
    /// A refresh is wanted but there is no refresh token (and no usable current token).
    NoRefreshToken,
    /// Call the provider.
    Refresh,
}

/// What [`decide`] reads of a connection: the locked row of a refresh, or the token path's
/// snapshot (which has no use for the scheduled-only fields and leaves them `None`).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The stored status.
    pub status: Status,
    /// The grant the connection was made with.
    pub grant: Grant,
    /// When the current access token expires (`None`: it does not).
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether an access token is stored.
    pub has_access_token: bool,
    /// Whether a refresh token is stored.
    pub has_refresh_token: bool,
    /// The last successful refresh.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// The last transient failure.
    pub last_failed_at: Option<DateTime<Utc>>,
    /// The scheduled refresh's backoff (scheduled only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the refresh token was last used (keep-alive, scheduled only).
    pub refresh_token_used_at: Option<DateTime<Utc>>,
    /// The client's own expiry buffer (§6.14), replacing the global ones when set.
    pub own_buffer: Option<Duration>,
}

impl Facts {
    /// Refresh this long before expiry: the client's own buffer, else `global`.
    fn buffer(&self, global: Duration) -> Duration {
        self.own_buffer.unwrap_or(global)
    }
}

impl From<&Locked> for Facts {
    fn from(c: &Locked) -> Self {
        Self {
            status: c.status,
            grant: c.grant,
            expires_at: c.token.expires_at,
            has_access_token: c.token.access_token.is_some(),
            has_refresh_token: c.refresh_token.is_some(),
            last_refreshed_at: c.last_refreshed_at,
            last_failed_at: c.last_failed_at,
            next_attempt_at: c.next_attempt_at,
            refresh_token_used_at: c.refresh_token_used_at,
            own_buffer: c.endpoint.quirks.expiry_buffer_secs.map(Duration::from_secs),
        }
    }
}

/// Decides what a refresh of `c` caused by `trigger` does at `now` (DESIGN §6.4, §6.5). The
/// token path asks it too (on its one-round-trip snapshot) before taking any lock, so the
/// rule of "due, throttled, renewable" has this one home.
pub fn decide(c: impl Into<Facts>, trigger: Trigger, now: DateTime<Utc>, policy: &Policy) -> Decision {
    let c: Facts = c.into();
    match c.status {
        Status::Revoked => return Decision::Revoked,
        Status::ReauthorizationRequired => return Decision::ReauthorizationRequired,
        Status::Active | Status::RefreshFailing => {}
    }
    let expires_at = c.expires_at;
    let refreshed_meanwhile = c.last_refreshed_at.is_some_and(|t| t >= policy.since);
    match trigger {
        Trigger::OnDemand => {
            if refreshed_meanwhile || !is_due(expires_at, now, c.buffer(policy.expiry_buffer)) {
                return Decision::Current;
            }
            if c.status == Status::RefreshFailing
                && c.last_failed_at.is_some_and(|t| now - t < seconds(INLINE_RETRY_INTERVAL))
            {
                return Decision::Throttled { retry_after: retry_after_throttle(c.last_failed_at, now) };
            }
        }
        Trigger::Forced => {
            if refreshed_meanwhile {
                return Decision::Current;
            }
        }
        Trigger::Scheduled => {
            // Keep-alive is for idle refresh tokens; a client-credentials grant has none.
            let keepalive_due = c.has_refresh_token
                && policy
                    .keepalive
                    .is_some_and(|idle| c.refresh_token_used_at.is_none_or(|t| t <= now - seconds(idle)));
            let due = is_due(expires_at, now, c.buffer(policy.refresh_window)) || keepalive_due;
            let backing_off = c.next_attempt_at.is_some_and(|t| t > now);
            if refreshed_meanwhile || !due || backing_off {
                return Decision::Skip;
            }
        }
    }
    if !c.has_refresh_token && c.grant != Grant::ClientCredentials {
        // Nothing to refresh with: an inline caller still gets a token that has not expired.
        let usable = trigger == Trigger::OnDemand && c.has_access_token && expires_at.is_none_or(|e| e > now);
        return if usable { Decision::Current } else { Decision::NoRefreshToken };
    }
    Decision::Refresh
}

fn seconds(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// Transaction-local limits: a lock wait, a statement and an idle transaction (a frozen
/// Lambda holding the lock) all end within the provider timeout plus a margin, so a lock
/// can never outlive the call that holds it.
const LOCAL_TIMEOUTS: &str = include_str!("sql/local_timeouts.sql");
pub(super) const LOCK_WAIT: &str = include_str!("sql/lock.sql");
pub(super) const LOCK_SKIP: &str = concat!(include_str!("sql/lock.sql"), " SKIP LOCKED");

/// A connection row under its lock, with what is needed to call its provider.
#[derive(Debug, Clone)]
pub struct Locked {
    pub(super) token: StoredToken,
    pub(super) status: Status,
    pub(super) grant: Grant,
    pub(super) refresh_token: Option<String>,
    pub(super) last_refreshed_at: Option<DateTime<Utc>>,
    pub(super) last_failed_at: Option<DateTime<Utc>>,
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
    pub(super) consecutive_failures: i32,
    pub(super) refresh_token_used_at: Option<DateTime<Utc>>,
    pub(super) version: i32,
    pub(super) endpoint: TokenEndpoint,
}

impl Locked {
    pub(super) fn from_row(row: &Row, keyring: &KeyRing) -> Result<Self, Error> {
        let auth_method: String = row.get("auth_method");
        let token = StoredToken::from_row(row, &TokenColumns::TABLE);
        Ok(Self {
            status: Status::stored(row.get("status"))?,
            grant: stored_grant(row.get("grant_type"))?,
            refresh_token: row.get("refresh_token"),
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
                client_secret: clients::decrypt_secret(keyring, token.client_id, row.get("client_secret"))?,
                auth_method: AuthMethod::parse(&auth_method)
                    .ok_or(Error::UnknownStored { what: "auth_method", value: auth_method })?,
                redirect_uri: row.get("redirect_uri"),
                capture: clients::stored_capture(&row.get("capture"))
                    .map_err(|e| Error::UnknownStored { what: "capture", value: e.to_string() })?
                    .token
                    .iter()
                    .filter_map(|f| clients::capture_path(f).ok())
                    .collect(),
                // Read as "no quirks", an unreadable value would call the provider the RFC
                // way, which is the one thing its quirks say not to do.
                quirks: serde_json::from_value(row.get("quirks"))
                    .map_err(|e| Error::UnknownStored { what: "quirks", value: e.to_string() })?,
            },
            token,
        })
    }
}

/// Backoff of the scheduled refresh after `failures` transient failures in a row:
/// 1, 2, 4 … minutes, at most an hour.
pub fn backoff(failures: i32) -> Duration {
    let exp = failures.clamp(1, 7) as u32 - 1;
    Duration::from_secs((60u64 << exp).min(3600))
}

fn lock_error(e: tokio_postgres::Error) -> Error {
    let code = e.code();
    if code == Some(&SqlState::LOCK_NOT_AVAILABLE) || code == Some(&SqlState::QUERY_CANCELED) {
        Error::LockBusy
    } else {
        e.into()
    }
}

/// Sets the transaction's limits and takes the row lock. Both statements are sent at once
/// (tokio-postgres pipelines them; the server still runs them in order), which saves a
/// round trip on every refresh.
pub(super) async fn lock_row(
    ctx: &Context,
    tx: &Transaction<'_>,
    sql: &str,
    id: &ConnectionId,
) -> Result<Vec<Row>, Error> {
    let limit = (ctx.config().provider_timeout + Duration::from_secs(5)).as_millis().to_string();
    let id = id.as_str();
    let limits: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] = [(&limit, Type::TEXT)];
    let key: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 1] = [(&id, Type::TEXT)];
    let (_, rows) =
        tokio::try_join!(tx.query_typed(LOCAL_TIMEOUTS, &limits), tx.query_typed(sql, &key)).map_err(lock_error)?;
    Ok(rows)
}

/// Refreshes one connection under its row lock. The provider is called only when, after
/// the lock is taken, [`decide`] says so; the result (new tokens, a failure, or a dead
/// grant) is recorded in the same transaction that holds the lock.
pub async fn refresh(ctx: &Context, provider: &Provider, req: RefreshRequest<'_>) -> Result<RefreshOutcome, Error> {
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
    let current = || c.token.decrypt(&keyring, id);
    match decide(&c, req.trigger, now, &Policy::new(ctx.config(), req.since)) {
        Decision::Revoked => return Ok(RefreshOutcome::Revoked),
        Decision::ReauthorizationRequired => return Ok(RefreshOutcome::ReauthorizationRequired),
        Decision::Current => return Ok(current()?.map_or(RefreshOutcome::NotFound, RefreshOutcome::Current)),
        Decision::Skip => return Ok(RefreshOutcome::Skipped),
        Decision::Throttled { retry_after } => return Ok(RefreshOutcome::Throttled { token: current()?, retry_after }),
        Decision::NoRefreshToken => return Ok(RefreshOutcome::NoRefreshToken),
        Decision::Refresh => {}
    }
    let answer = match (c.grant, &c.refresh_token) {
        // The client's credentials are the grant: ask again for the scopes it holds.
        (Grant::ClientCredentials, _) => provider.client_credentials(&c.endpoint, &c.token.scopes).await,
        (Grant::AuthorizationCode, Some(stored)) => {
            let refresh_token = decrypt(&keyring, &id.stream(), "refresh_token", stored)?;
            provider.refresh(&c.endpoint, &refresh_token).await
        }
        (Grant::AuthorizationCode, None) => return Ok(RefreshOutcome::NoRefreshToken),
    };
    let current = current()?;
    let outcome = record_answer(&tx, &keyring, id, &c, current, answer, req.trigger, req.metadata).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Records a provider's answer to a refresh (or a renewed client-credentials grant) of the
/// locked connection `c`, in the transaction that holds its lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record_answer(
    tx: &Transaction<'_>,
    keyring: &KeyRing,
    id: &ConnectionId,
    c: &Locked,
    current: Option<Token>,
    answer: Result<TokenSet, ProviderError>,
    trigger: Trigger,
    metadata: &Metadata,
) -> Result<RefreshOutcome, Error> {
    let done = Utc::now();
    let stream_id = id.stream();
    let expected = ExpectedVersion::Exact(c.version);
    Ok(match answer {
        Ok(set) => {
            let event = refreshed_event(keyring, &stream_id, c, &set, trigger, done);
            projections::record(tx, &PROJECTOR, &stream_id, expected, &[event], metadata).await?;
            let expires_at = set.expires_at(done);
            RefreshOutcome::Refreshed(Token {
                connection_id: id.as_str().to_owned(),
                client_id: c.token.client_id,
                access_token: set.access_token,
                expires_at,
                token_type: set.token_type,
                scopes: set.scopes.unwrap_or_else(|| c.token.scopes.clone()),
                provider_data: merged(&c.token.provider_data, &set.provider_data),
            })
        }
        Err(error) if is_dead_grant(c.grant, &error) => {
            tracing::warn!(connection_id = %id, error = %error, "grant refused; reauthorization required");
            let event = ConnectionEvent::ReauthorizationRequired {
                trigger,
                error_class: error.class.as_str().to_owned(),
                message: error.message.clone(),
            };
            projections::record(tx, &PROJECTOR, &stream_id, expected, &[event], metadata).await?;
            RefreshOutcome::ReauthorizationRequired
        }
        Err(error) => {
            tracing::warn!(connection_id = %id, error = %error, "refresh failed");
            let failures = c.consecutive_failures + 1;
            let event = ConnectionEvent::TokenRefreshFailed {
                trigger,
                previous_expires_at: c.token.expires_at,
                error_class: error.class.as_str().to_owned(),
                message: error.message.clone(),
                consecutive_failures: failures,
                next_attempt_at: done + seconds(backoff(failures)),
            };
            projections::record(tx, &PROJECTOR, &stream_id, expected, &[event], metadata).await?;
            let retry_after = error.retry_after.unwrap_or(INLINE_RETRY_INTERVAL.as_secs()).clamp(1, 3600);
            RefreshOutcome::Failed { token: current, error, retry_after }
        }
    })
}

/// A refused grant that only a new authorization cures: `invalid_grant`, and for a
/// client-credentials connection (whose grant is the client itself) `invalid_client`.
fn is_dead_grant(grant: Grant, error: &ProviderError) -> bool {
    error.class == ErrorClass::InvalidGrant
        || (grant == Grant::ClientCredentials
            && error.class == ErrorClass::Rejected
            && error.error.as_deref() == Some("invalid_client"))
}

/// `old` with the captured values of a refresh answer laid over it (what the projection's
/// `provider_data || $7` stores).
fn merged(old: &Value, new: &Map<String, Value>) -> Value {
    let mut out = old.as_object().cloned().unwrap_or_default();
    out.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
    Value::Object(out)
}

pub(super) fn refreshed_event(
    keyring: &KeyRing,
    stream_id: &str,
    c: &Locked,
    set: &TokenSet,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> ConnectionEvent {
    ConnectionEvent::TokenRefreshed {
        trigger,
        previous_expires_at: c.token.expires_at,
        expires_at: set.expires_at(now),
        access_token: keyring.encrypt(Owner::new(stream_id, "access_token"), set.access_token.expose_secret()),
        refresh_token: set
            .refresh_token
            .as_ref()
            .map(|r| keyring.encrypt(Owner::new(stream_id, "refresh_token"), r.expose_secret())),
        refresh_token_rotated: set.refresh_token.is_some(),
        token_type: set.token_type.clone(),
        scopes: set.scopes.clone().unwrap_or_else(|| c.token.scopes.clone()),
        provider_data: Value::Object(set.provider_data.clone()),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::connections::fixtures::{at, policy, stored_token};

    /// An active connection whose token expires at `expires` (seconds after `at(0)`).
    fn locked(expires: Option<i64>) -> Locked {
        Locked {
            token: stored_token(expires),
            status: Status::Active,
            grant: Grant::AuthorizationCode,
            refresh_token: Some("rt".into()),
            last_refreshed_at: None,
            last_failed_at: None,
            next_attempt_at: None,
            consecutive_failures: 0,
            refresh_token_used_at: Some(at(-60)),
            version: 1,
            endpoint: TokenEndpoint {
                token_url: "https://p.example/token".into(),
                revoke_url: None,
                client_id: "c".into(),
                client_secret: SecretString::from("s"),
                auth_method: AuthMethod::ClientSecretPost,
                redirect_uri: "https://k.example/cb".into(),
                capture: vec![],
                quirks: clients::Quirks::default(),
            },
        }
    }

    const ALL: [Trigger; 3] = [Trigger::OnDemand, Trigger::Forced, Trigger::Scheduled];

    #[test]
    fn dead_and_revoked_connections_are_never_refreshed() {
        for trigger in ALL {
            let mut c = locked(Some(10));
            c.status = Status::Revoked;
            assert_eq!(decide(&c, trigger, at(0), &policy()), Decision::Revoked);
            c.status = Status::ReauthorizationRequired;
            assert_eq!(decide(&c, trigger, at(0), &policy()), Decision::ReauthorizationRequired);
        }
    }

    #[test]
    fn inline_refreshes_only_within_the_buffer() {
        assert_eq!(decide(&locked(Some(301)), Trigger::OnDemand, at(0), &policy()), Decision::Current);
        assert_eq!(decide(&locked(Some(299)), Trigger::OnDemand, at(0), &policy()), Decision::Refresh);
        assert_eq!(decide(&locked(None), Trigger::OnDemand, at(0), &policy()), Decision::Current, "no expiry");
    }

    #[test]
    fn a_refresh_by_somebody_else_meanwhile_is_reused() {
        let mut c = locked(Some(10));
        c.last_refreshed_at = Some(at(1));
        let p = Policy { since: at(0), ..policy() };
        assert_eq!(decide(&c, Trigger::OnDemand, at(2), &p), Decision::Current);
        assert_eq!(decide(&c, Trigger::Forced, at(2), &p), Decision::Current);
        assert_eq!(decide(&c, Trigger::Scheduled, at(2), &p), Decision::Skip);
        c.last_refreshed_at = Some(at(-1));
        assert_eq!(decide(&c, Trigger::Forced, at(2), &p), Decision::Refresh, "older refreshes do not count");
    }

    #[test]
    fn inline_refreshes_after_a_failure_wait_30_seconds() {
        let mut c = locked(Some(10));
        c.status = Status::RefreshFailing;
        c.last_failed_at = Some(at(-10));
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::Throttled { retry_after: 20 });
        assert_eq!(
            decide(&c, Trigger::Forced, at(0), &policy()),
            Decision::Refresh,
            "a forced refresh is not throttled"
        );
        c.last_failed_at = Some(at(-30));
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::Refresh);
    }

    #[test]
    fn the_schedule_takes_due_tokens_and_respects_backoff() {
        assert_eq!(decide(&locked(Some(901)), Trigger::Scheduled, at(0), &policy()), Decision::Skip);
        assert_eq!(decide(&locked(Some(899)), Trigger::Scheduled, at(0), &policy()), Decision::Refresh);
        let mut c = locked(Some(899));
        c.next_attempt_at = Some(at(1));
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::Skip);
        c.next_attempt_at = Some(at(0));
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::Refresh);
    }

    #[test]
    fn a_clients_own_expiry_buffer_replaces_the_global_ones() {
        let mut c = locked(Some(200));
        // The global buffers (300 s inline, 900 s scheduled) would refresh a 200 s token.
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::Refresh);
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::Refresh);
        c.endpoint.quirks.expiry_buffer_secs = Some(60);
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::Current);
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::Skip);
        assert_eq!(decide(&c, Trigger::OnDemand, at(141), &policy()), Decision::Refresh, "59 s left");
        assert_eq!(decide(&c, Trigger::Scheduled, at(141), &policy()), Decision::Refresh);
        assert_eq!(decide(&c, Trigger::Forced, at(0), &policy()), Decision::Refresh, "forced ignores buffers");
    }

    #[test]
    fn keepalive_refreshes_idle_refresh_tokens() {
        let p = Policy { keepalive: Some(Duration::from_secs(3600)), ..policy() };
        let mut c = locked(None);
        c.refresh_token_used_at = Some(at(-3599));
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &p), Decision::Skip);
        c.refresh_token_used_at = Some(at(-3600));
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &p), Decision::Refresh);
        c.refresh_token_used_at = None;
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &p), Decision::Refresh);
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::Skip, "keep-alive is off by default");
    }

    #[test]
    fn without_a_refresh_token_only_a_live_inline_token_is_handed_out() {
        let mut c = locked(Some(10));
        c.refresh_token = None;
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::Current);
        assert_eq!(decide(&c, Trigger::Forced, at(0), &policy()), Decision::NoRefreshToken);
        assert_eq!(decide(&c, Trigger::Scheduled, at(0), &policy()), Decision::NoRefreshToken);
        assert_eq!(decide(&c, Trigger::OnDemand, at(10), &policy()), Decision::NoRefreshToken, "expired");
        c.token.access_token = None;
        assert_eq!(decide(&c, Trigger::OnDemand, at(0), &policy()), Decision::NoRefreshToken);
    }

    #[test]
    fn client_credentials_are_renewed_without_a_refresh_token() {
        let mut c = locked(Some(10));
        c.grant = Grant::ClientCredentials;
        c.refresh_token = None;
        for trigger in ALL {
            assert_eq!(decide(&c, trigger, at(0), &policy()), Decision::Refresh, "{trigger:?}");
        }
        assert_eq!(decide(&locked(Some(301)), Trigger::OnDemand, at(0), &policy()), Decision::Current);
    }

    #[test]
    fn invalid_client_kills_only_a_client_credentials_grant() {
        let refused = |code: &str, class| ProviderError {
            class,
            error: Some(code.into()),
            message: "no".into(),
            retry_after: None,
        };
        let invalid_client = refused("invalid_client", ErrorClass::Rejected);
        assert!(is_dead_grant(Grant::ClientCredentials, &invalid_client));
        assert!(!is_dead_grant(Grant::AuthorizationCode, &invalid_client));
        for grant in [Grant::AuthorizationCode, Grant::ClientCredentials] {
            assert!(is_dead_grant(grant, &refused("invalid_grant", ErrorClass::InvalidGrant)));
            assert!(!is_dead_grant(grant, &refused("server_error", ErrorClass::ServerError)));
        }
    }
}
