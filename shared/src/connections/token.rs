//! `GET /v1/tokens/{id}`, the hot path: one statement reads the API key and the connection
//! together, `auth` decides whether the caller is let in; a due token is refreshed inline;
//! `force_refresh` behind `POST …/refresh`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{Row, types::Type};

use super::{
    ConnectionId, Error, Grant, INLINE_RETRY_INTERVAL, LockMode, RefreshOutcome, RefreshRequest, Refresher, Status,
    StoredToken, Token, TokenColumns, Trigger, is_due, refresh, retry_after_throttle, stored_grant,
};
use crate::{
    auth::{self, Scope},
    context::Context,
    crypto::KeyRing,
    events::Metadata,
};

/// The hot path's one statement: the API key and the connection together, through
/// `token_lookup` (migrations 0001, 0004 and 0005), whose plans the server caches per
/// session. It also returns what decides an inline refresh and what the caller gets with its
/// token: the connection's grant and `provider_data` and its client's expiry buffer (the
/// client joined by primary key). A missing key gives no row; a missing connection gives a
/// row of NULLs after the key's columns; a NULL key hash (the bootstrap admin key, checked in
/// memory) reads the connection alone.
const TOKEN_LOOKUP: &str = "SELECT * FROM token_lookup($1, $2)";

/// The connection alone, for re-reading after waiting for a refresh (the columns of
/// `token_lookup`).
const FETCH: &str = include_str!("sql/fetch.sql");

/// A connection as the token path sees it (the `o_…` columns of `token_lookup`).
struct Snapshot {
    token: StoredToken,
    status: Status,
    grant: Grant,
    last_failed_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    has_refresh_token: bool,
    expiry_buffer_secs: Option<i32>,
}

impl Snapshot {
    fn from_row(row: &Row) -> Result<Option<Self>, Error> {
        if row.get::<_, Option<uuid::Uuid>>("o_client_id").is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            token: StoredToken::from_row(row, &TokenColumns::LOOKUP),
            status: Status::stored(row.get("o_status"))?,
            grant: stored_grant(row.get("o_grant_type"))?,
            last_failed_at: row.get("o_last_failed_at"),
            last_refreshed_at: row.get("o_last_refreshed_at"),
            has_refresh_token: row.get("o_has_refresh_token"),
            expiry_buffer_secs: row.get("o_expiry_buffer_secs"),
        }))
    }

    /// Whether a due token can be renewed without a new authorization: with a refresh token,
    /// or with the client's own credentials.
    fn renewable(&self) -> bool {
        self.has_refresh_token || self.grant == Grant::ClientCredentials
    }

    /// The inline-refresh buffer: the client's own (§6.14) or `global`.
    fn buffer(&self, global: Duration) -> Duration {
        self.expiry_buffer_secs.and_then(|s| u64::try_from(s).ok()).map_or(global, Duration::from_secs)
    }
}

pub(super) fn status_error(id: &ConnectionId, status: Status) -> Option<Error> {
    match status {
        Status::ReauthorizationRequired => Some(Error::ReauthorizationRequired(id.clone())),
        Status::Revoked => Some(Error::Revoked(id.clone())),
        Status::Active | Status::RefreshFailing => None,
    }
}

/// `GET /v1/tokens/{id}`: authenticates the caller and reads the connection in one database
/// round trip; refreshes inline (once, whoever else asks at the same time) only when the
/// token expires within `TOKEN_EXPIRY_BUFFER_SECONDS` (or the client's own expiry buffer).
pub async fn fetch_token(
    ctx: &Context,
    refresher: &Refresher,
    authorization: Option<&str>,
    raw_id: &str,
    request_id: &str,
) -> Result<Token, Error> {
    let since = Utc::now();
    let hash = auth::presented_key(authorization)?;
    // An impossible id cannot exist; the key is still checked first so that 401 wins.
    let id = ConnectionId::parse(raw_id).ok();
    let id_param = id.as_ref().map_or("", |i| i.as_str());
    let (principal, row) = match auth::bootstrap(ctx, &hash, request_id).await? {
        Some(admin) => {
            let no_key: Option<&[u8]> = None;
            let rows = ctx.db().read(TOKEN_LOOKUP, &[(&no_key, Type::BYTEA), (&id_param, Type::TEXT)]).await?;
            (admin, rows.into_iter().next())
        }
        None => {
            let hash_param = hash.as_slice();
            let rows = ctx.db().read(TOKEN_LOOKUP, &[(&hash_param, Type::BYTEA), (&id_param, Type::TEXT)]).await?;
            let row = rows.into_iter().next().ok_or(auth::Error::UnknownKey)?;
            let scopes: Vec<String> = row.get("o_key_scopes");
            (auth::stored_principal(row.get("o_key_id"), &scopes, request_id), Some(row))
        }
    };
    principal.require(Scope::TokensRead)?;
    let (Some(id), Some(row)) = (id, row) else { return Err(Error::NotFound(raw_id.to_owned())) };
    let Some(snapshot) = Snapshot::from_row(&row)? else { return Err(Error::NotFound(raw_id.to_owned())) };
    if let Some(err) = status_error(&id, snapshot.status) {
        return Err(err);
    }
    let keyring = ctx.keyring().await?;
    let token =
        snapshot.token.decrypt(&keyring, &id)?.ok_or(Error::Inconsistent("an active connection without token"))?;
    let now = Utc::now();
    if !is_due(token.expires_at, now, snapshot.buffer(ctx.config().token_expiry_buffer)) {
        return Ok(token);
    }
    if !snapshot.renewable() {
        // Nothing to refresh with: an authorization-code token is good until it expires, then
        // only a new authorization helps (the locked path below says so, after one re-read in
        // case the connection was authorized again meanwhile).
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
    let metadata = Metadata {
        request_id: Some(request_id.to_owned()),
        actor: principal.actor,
        function: ctx.function().to_owned(),
    };
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
) -> Result<Option<Token>, Error> {
    let rows = ctx.db().query(FETCH, &[(&id.as_str(), Type::TEXT)]).await?;
    let Some(snapshot) = rows.first().map(Snapshot::from_row).transpose()?.flatten() else {
        return Err(Error::NotFound(id.to_string()));
    };
    if let Some(err) = status_error(id, snapshot.status) {
        return Err(err);
    }
    let now = Utc::now();
    let refreshed_meanwhile = snapshot.last_refreshed_at.is_some_and(|t| t >= since);
    let live_without_renewal = !snapshot.renewable() && snapshot.token.expires_at.is_none_or(|e| e > now);
    if refreshed_meanwhile
        || live_without_renewal
        || !is_due(snapshot.token.expires_at, now, snapshot.buffer(ctx.config().token_expiry_buffer))
    {
        return snapshot.token.decrypt(keyring, id);
    }
    Ok(None)
}

pub(super) fn usable_or_503(token: Option<Token>, now: DateTime<Utc>, retry_after: u64) -> Result<Token, Error> {
    match token {
        Some(t) if !t.is_expired(now) => Ok(t),
        _ => Err(Error::Expired { retry_after }),
    }
}

/// `POST /v1/tokens/{id}/refresh`: a refresh now, unless somebody else refreshed the
/// connection while this request waited for its lock (then their token is the answer).
pub async fn force_refresh(
    ctx: &Context,
    refresher: &Refresher,
    id: &ConnectionId,
    metadata: &Metadata,
) -> Result<Token, Error> {
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
        RefreshOutcome::Failed { error, retry_after, .. } => {
            Err(Error::RefreshFailed { class: error.class.as_str(), retry_after })
        }
        RefreshOutcome::NoRefreshToken => Err(Error::NoRefreshToken(id.clone())),
        other => other.into_token(id, Utc::now()),
    }
}
