//! `GET /v1/tokens/{id}`, the hot path: one statement reads the API key and the connection
//! together; a due token is refreshed inline; `force_refresh` behind `POST …/refresh`.

#[allow(unused_imports)]
use super::*;

/// The hot path's one statement: the API key and the connection together, through
/// `token_lookup` (migrations 0001 and 0004), whose plans the server caches per session. A missing key
/// gives no row; a missing connection gives a row of NULLs after the key's columns; a NULL
/// key hash (the bootstrap admin key, checked in memory) reads the connection alone.
pub(super) const TOKEN_LOOKUP: &str = "SELECT * FROM token_lookup($1, $2)";

/// The connection alone, for re-reading after waiting for a refresh.
pub(super) const FETCH: &str = "
SELECT NULL::uuid, NULL::text[], c.client_id, c.status, c.access_token, c.token_type, c.expires_at, c.scopes,
       c.last_failed_at, c.last_refreshed_at, c.refresh_token IS NOT NULL, c.provider_data,
       (cl.quirks->>'expiry_buffer_secs')::integer
FROM connections c LEFT JOIN clients cl ON cl.id = c.client_id WHERE c.connection_id = $1";

/// A connection as the token path sees it.
pub(super) struct Snapshot {
    client_id: Uuid,
    status: Status,
    access_token: Option<String>,
    token_type: String,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    last_failed_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    has_refresh_token: bool,
    provider_data: Value,
    expiry_buffer_secs: Option<i32>,
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
            provider_data: row.get::<_, Option<Value>>(11).unwrap_or_else(|| Value::Object(Map::new())),
            expiry_buffer_secs: row.get(12),
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
            provider_data: self.provider_data.clone(),
        }))
    }

    /// The inline-refresh buffer: the client's own (§6.14) or `global`.
    fn buffer(&self, global: Duration) -> Duration {
        self.expiry_buffer_secs.and_then(|s| u64::try_from(s).ok()).map_or(global, Duration::from_secs)
    }
}

pub(super) fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

pub(super) fn status_error(id: &ConnectionId, status: Status) -> Option<ApiError> {
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
    if !is_due(snapshot.expires_at, now, snapshot.buffer(ctx.config().token_expiry_buffer)) {
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

pub(super) async fn reread(
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
    if refreshed_meanwhile
        || !is_due(snapshot.expires_at, Utc::now(), snapshot.buffer(ctx.config().token_expiry_buffer))
    {
        return snapshot.token(keyring, id);
    }
    Ok(None)
}

pub(super) fn usable_or_503(token: Option<Token>, now: DateTime<Utc>, retry_after: u64) -> Result<Token, ApiError> {
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
