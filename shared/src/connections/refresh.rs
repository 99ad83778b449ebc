//! The refresh itself, shared by the inline, forced and scheduled paths: lock the row, call the
//! provider, record the outcome in the same transaction.

#[allow(unused_imports)]
use super::*;

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
pub(super) const LOCAL_TIMEOUTS: &str = "
SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true),
       set_config('idle_in_transaction_session_timeout', $1, true)";

macro_rules! lock_sql {
    ($suffix:literal) => {
        concat!(
            "SELECT c.client_id, c.status, c.access_token, c.refresh_token, c.token_type, c.expires_at, c.scopes,
                    c.last_refreshed_at, c.last_failed_at, c.next_attempt_at, c.consecutive_failures,
                    c.refresh_token_used_at, c.version, c.provider_data,
                    cl.token_url, cl.revoke_url, cl.client_id AS provider_client_id, cl.client_secret, cl.auth_method,
                    cl.redirect_uri, cl.capture, cl.quirks
             FROM connections c JOIN clients cl ON cl.id = c.client_id
             WHERE c.connection_id = $1
             FOR UPDATE OF c",
            $suffix
        )
    };
}
pub(super) const LOCK_WAIT: &str = lock_sql!("");
pub(super) const LOCK_SKIP: &str = lock_sql!(" SKIP LOCKED");

/// A connection row under its lock, with what is needed to call its provider.
pub(super) struct Locked {
    pub(super) client_id: Uuid,
    pub(super) status: Status,
    pub(super) access_token: Option<String>,
    pub(super) refresh_token: Option<String>,
    pub(super) token_type: String,
    pub(super) expires_at: Option<DateTime<Utc>>,
    pub(super) scopes: Vec<String>,
    pub(super) last_refreshed_at: Option<DateTime<Utc>>,
    pub(super) last_failed_at: Option<DateTime<Utc>>,
    pub(super) next_attempt_at: Option<DateTime<Utc>>,
    pub(super) consecutive_failures: i32,
    pub(super) refresh_token_used_at: Option<DateTime<Utc>>,
    pub(super) version: i32,
    pub(super) provider_data: Value,
    pub(super) endpoint: TokenEndpoint,
}

impl Locked {
    pub(super) fn from_row(row: &Row, keyring: &KeyRing) -> Result<Self, ApiError> {
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
            provider_data: row.get("provider_data"),
            endpoint: TokenEndpoint {
                token_url: row.get("token_url"),
                revoke_url: row.get("revoke_url"),
                client_id: row.get("provider_client_id"),
                client_secret: clients::decrypt_secret(keyring, client_id, row.get("client_secret"))?,
                auth_method: AuthMethod::parse(&auth_method)
                    .ok_or_else(|| ApiError::internal(format!("stored auth_method '{auth_method}'")))?,
                redirect_uri: row.get("redirect_uri"),
                capture: clients::stored_capture(&row.get("capture"))
                    .token
                    .iter()
                    .filter_map(|f| clients::capture_path(f).ok())
                    .collect(),
                quirks: serde_json::from_value(row.get("quirks")).unwrap_or_default(),
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
            provider_data: self.provider_data.clone(),
        }))
    }

    /// Refresh this long before expiry: the client's own buffer where its provider refuses
    /// early refreshes (§6.14), else `global`.
    pub(super) fn buffer(&self, global: Duration) -> Duration {
        self.endpoint.quirks.expiry_buffer_secs.map_or(global, Duration::from_secs)
    }
}

/// Backoff of the scheduled refresh after `failures` transient failures in a row:
/// 1, 2, 4 … minutes, at most an hour.
pub fn backoff(failures: i32) -> Duration {
    let exp = failures.clamp(1, 7) as u32 - 1;
    Duration::from_secs((60u64 << exp).min(3600))
}

pub(super) fn lock_error(e: tokio_postgres::Error) -> ApiError {
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
pub(super) async fn lock_row(
    ctx: &Context,
    tx: &Transaction<'_>,
    sql: &str,
    id: &ConnectionId,
) -> Result<Vec<Row>, ApiError> {
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
            if refreshed_meanwhile || !is_due(c.expires_at, now, c.buffer(ctx.config().token_expiry_buffer)) {
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
            let due = is_due(c.expires_at, now, c.buffer(ctx.config().refresh_window)) || keepalive_due;
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
            projections::record(&tx, &PROJECTOR, &stream_id, expected, &[event], req.metadata).await?;
            let expires_at = set.expires_at(done);
            RefreshOutcome::Refreshed(Token {
                connection_id: id.0.clone(),
                client_id: c.client_id,
                access_token: set.access_token,
                expires_at,
                token_type: set.token_type,
                scopes: set.scopes.unwrap_or(c.scopes),
                provider_data: merged(&c.provider_data, &set.provider_data),
            })
        }
        Err(error) if error.class == ErrorClass::InvalidGrant => {
            tracing::warn!(connection_id = %id, error = %error, "refresh token refused; reauthorization required");
            let event = ConnectionEvent::ReauthorizationRequired {
                trigger: req.trigger,
                error_class: error.class.as_str().to_owned(),
                message: error.message.clone(),
            };
            projections::record(&tx, &PROJECTOR, &stream_id, expected, &[event], req.metadata).await?;
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
            projections::record(&tx, &PROJECTOR, &stream_id, expected, &[event], req.metadata).await?;
            let retry_after = error.retry_after.unwrap_or(INLINE_RETRY_INTERVAL.as_secs()).clamp(1, 3600);
            RefreshOutcome::Failed { token: current, error, retry_after }
        }
    };
    tx.commit().await?;
    Ok(outcome)
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
