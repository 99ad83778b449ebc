//! `GET /v1/tokens/{id}`, the hot path: one statement reads the API key and the connection
//! together, `auth` decides whether the caller is let in; a due token is refreshed inline;
//! `force_refresh` behind `POST …/refresh`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{Row, types::Type};

use super::{
    ConnectionId, Error, Grant, LockMode, RefreshOutcome, RefreshRequest, Refresher, Status, StoredToken, Token,
    TokenColumns, Trigger, refresh,
    refresh::{Decision, Facts, Policy, decide},
    stored_grant,
};
use crate::{
    auth::{self, Scope},
    context::Context,
    crypto::KeyRing,
    events::Metadata,
};

/// The hot path's one statement: the API key and the connection together, through
/// `token_lookup` (migrations 0001, 0004, 0005 and 0007), whose plans the server caches per
/// session. It also returns what decides an inline refresh and what the caller gets with its
/// token: the connection's grant and `provider_data` and its client's expiry buffer (a copy
/// on the connection row since 0007, so no other table is read). A missing key gives no row;
/// a missing connection gives a row of NULLs after the key's columns; a NULL key hash (the
/// bootstrap admin key, checked in memory) reads the connection alone.
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
}

impl From<&Snapshot> for Facts {
    fn from(s: &Snapshot) -> Self {
        Self {
            status: s.status,
            grant: s.grant,
            expires_at: s.token.expires_at,
            has_access_token: s.token.access_token.is_some(),
            has_refresh_token: s.has_refresh_token,
            last_refreshed_at: s.last_refreshed_at,
            last_failed_at: s.last_failed_at,
            // Read by the scheduled refresh only; `token_lookup` does not return them.
            next_attempt_at: None,
            refresh_token_used_at: None,
            own_buffer: s.expiry_buffer_secs.and_then(|s| u64::try_from(s).ok()).map(Duration::from_secs),
        }
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
    let now = Utc::now();
    let policy = Policy::new(ctx.config(), since);
    let decision = decide(&snapshot, Trigger::OnDemand, now, &policy);
    let token =
        snapshot.token.into_token(&keyring, &id)?.ok_or(Error::Inconsistent("an active connection without token"))?;
    match decision {
        Decision::Current => return Ok(token),
        Decision::Throttled { retry_after } => return usable_or_503(Some(token), now, retry_after),
        // The status was answered above; a dead or revoked row read now is the locked
        // path's to answer.
        Decision::Revoked | Decision::ReauthorizationRequired => {}
        // Nothing to refresh with and expired: only a new authorization helps (the locked
        // path below says so, after one re-read in case the connection was authorized again
        // meanwhile). `Skip` is the schedule's; an inline fetch never gets it.
        Decision::NoRefreshToken | Decision::Skip | Decision::Refresh => {}
    }
    let metadata = Metadata {
        request_id: Some(request_id.to_owned()),
        actor: principal.actor,
        function: ctx.function().to_owned(),
    };
    let _turn = refresher.gate.enter(id.as_str()).await;
    // Whoever held the gate before us may have refreshed it already: one cheap read first.
    if let Some(fresh) = reread(ctx, &keyring, &id, &policy).await? {
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

async fn reread(ctx: &Context, keyring: &KeyRing, id: &ConnectionId, policy: &Policy) -> Result<Option<Token>, Error> {
    let rows = ctx.db().query(FETCH, &[(&id.as_str(), Type::TEXT)]).await?;
    let Some(snapshot) = rows.first().map(Snapshot::from_row).transpose()?.flatten() else {
        return Err(Error::NotFound(id.to_string()));
    };
    if let Some(err) = status_error(id, snapshot.status) {
        return Err(err);
    }
    // Refreshed by whoever held the gate, not due, or live without a way to renew it: the
    // stored token is the answer. Anything else goes to the locked path, which decides again.
    match decide(&snapshot, Trigger::OnDemand, Utc::now(), policy) {
        Decision::Current => snapshot.token.into_token(keyring, id),
        _ => Ok(None),
    }
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

#[cfg(test)]
mod tests {

    use super::*;
    use crate::connections::fixtures::{at, policy, stored_token};

    /// What `token_lookup` returns for an active connection whose token expires at `expires`.
    fn snapshot(expires: Option<i64>) -> Snapshot {
        Snapshot {
            token: stored_token(expires),
            status: Status::Active,
            grant: Grant::AuthorizationCode,
            last_failed_at: None,
            last_refreshed_at: None,
            has_refresh_token: true,
            expiry_buffer_secs: None,
        }
    }

    fn inline(s: &Snapshot, now: i64) -> Decision {
        decide(s, Trigger::OnDemand, at(now), &policy())
    }

    #[test]
    fn the_snapshot_is_decided_by_the_refresh_rule() {
        assert_eq!(inline(&snapshot(Some(301)), 0), Decision::Current);
        assert_eq!(inline(&snapshot(Some(299)), 0), Decision::Refresh);
        let mut failing = snapshot(Some(10));
        failing.status = Status::RefreshFailing;
        failing.last_failed_at = Some(at(-10));
        assert_eq!(inline(&failing, 0), Decision::Throttled { retry_after: 20 });
        assert_eq!(inline(&failing, 20), Decision::Refresh);
    }

    #[test]
    fn the_clients_own_buffer_comes_from_the_lookup_and_a_negative_one_is_ignored() {
        let mut s = snapshot(Some(200));
        s.expiry_buffer_secs = Some(60);
        assert_eq!(inline(&s, 0), Decision::Current);
        assert_eq!(inline(&s, 141), Decision::Refresh);
        s.expiry_buffer_secs = Some(-1);
        assert_eq!(inline(&s, 0), Decision::Refresh, "the global 300 s");
    }

    #[test]
    fn without_a_way_to_renew_a_live_token_is_handed_out_and_an_expired_one_goes_to_the_lock() {
        let mut s = snapshot(Some(10));
        s.has_refresh_token = false;
        assert_eq!(inline(&s, 0), Decision::Current);
        assert_eq!(inline(&s, 10), Decision::NoRefreshToken);
        s.grant = Grant::ClientCredentials;
        assert_eq!(inline(&s, 0), Decision::Refresh, "client credentials renew without a refresh token");
    }
}
