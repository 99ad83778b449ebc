//! Pending authorizations (the `oauth_states` table: only the SHA-256 of a state, the PKCE
//! verifier encrypted), PKCE pairs and the provider's authorize URL.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_postgres::types::Type;
use url::Url;
use uuid::Uuid;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::STATE_TTL;
use crate::{
    clients::ProviderClient,
    context::Context,
    crypto::{CryptoError, KeyRing, Owner, random_token, sha256},
    db::DbError,
};

/// A pending authorization that could not be stored, read back or turned into a URL.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored PKCE verifier could not be decrypted.
    #[error("the pending authorization's code_verifier could not be decrypted")]
    Verifier(#[source] CryptoError),
    /// The client's stored `authorize_url` is not a URL.
    #[error("the client's authorize_url is not a URL")]
    AuthorizeUrl(#[source] url::ParseError),
}

/// A PKCE pair (RFC 7636): the verifier stays with us, the S256 challenge goes to the provider.
pub struct Pkce {
    /// 256 random bits, base64url (43 characters).
    pub verifier: SecretString,
    /// `base64url(sha256(verifier))`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair.
    pub fn generate() -> Self {
        let verifier = random_token::<32>();
        let challenge = challenge_of(&verifier);
        Self { verifier: SecretString::from(verifier), challenge }
    }
}

/// The S256 code challenge of `verifier`.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// The provider's authorize URL for `client`, carrying `state` and, with PKCE, the challenge.
pub fn authorize_url(client: &ProviderClient, state: &str, code_challenge: Option<&str>) -> Result<Url, StateError> {
    let s = &client.settings;
    let mut url = Url::parse(&s.authorize_url).map_err(StateError::AuthorizeUrl)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &s.client_id)
            .append_pair("redirect_uri", &s.redirect_uri);
        if !s.scopes.is_empty() {
            q.append_pair("scope", &s.quirks.scope_separator.join(&s.scopes));
        }
        q.append_pair("state", state);
        if let Some(challenge) = code_challenge {
            q.append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
        }
        for (k, v) in &s.extra_authorize_params {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// A pending authorization, as the callback finds it.
#[derive(Debug)]
pub struct PendingState {
    /// The client being authorized.
    pub client_id: Uuid,
    /// The connection being authorized.
    pub connection_id: String,
    /// The PKCE verifier, when the client uses PKCE.
    pub code_verifier: Option<SecretString>,
    /// Where to send the browser afterwards.
    pub return_to: Option<String>,
    /// The connection's tags, as given when the authorization started (a jsonb object).
    pub tags: Option<Value>,
}

/// A pending authorization to store.
#[derive(Debug)]
pub struct NewState<'a> {
    /// The client being authorized.
    pub client_id: Uuid,
    /// The connection being authorized.
    pub connection_id: &'a str,
    /// Whether to use PKCE.
    pub pkce: bool,
    /// Where to send the browser afterwards.
    pub return_to: Option<&'a str>,
    /// The connection's tags (checked by `connections`).
    pub tags: Option<Value>,
}

fn state_owner(hash: &[u8; 32]) -> String {
    format!("oauth-state-{}", hex::encode(hash))
}

const INSERT_STATE: &str = "
WITH expired AS (DELETE FROM oauth_states WHERE expires_at < now())
INSERT INTO oauth_states (state_hash, client_id, connection_id, code_verifier, return_to, expires_at, tags)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)
RETURNING expires_at";

/// Stores a new pending authorization (and drops expired ones); returns the state to put in
/// the authorize URL, the PKCE challenge (when asked for) and the expiry.
pub async fn create_state(
    ctx: &Context,
    keyring: &KeyRing,
    new: NewState<'_>,
) -> Result<(String, Option<String>, DateTime<Utc>), StateError> {
    let NewState { client_id, connection_id, pkce, return_to, tags } = new;
    let state = random_token::<32>();
    let hash = sha256(state.as_bytes());
    let pair = pkce.then(Pkce::generate);
    let verifier = pair
        .as_ref()
        .map(|p| keyring.encrypt(Owner::new(&state_owner(&hash), "code_verifier"), p.verifier.expose_secret()));
    let hash_param = hash.as_slice();
    let ttl = STATE_TTL.as_secs_f64();
    let rows = ctx
        .db()
        .query(
            INSERT_STATE,
            &[
                (&hash_param, Type::BYTEA),
                (&client_id, Type::UUID),
                (&connection_id, Type::TEXT),
                (&verifier, Type::TEXT),
                (&return_to, Type::TEXT),
                (&ttl, Type::FLOAT8),
                (&tags, Type::JSONB),
            ],
        )
        .await?;
    let expires_at: DateTime<Utc> = rows[0].get(0);
    Ok((state, pair.map(|p| p.challenge), expires_at))
}

const CONSUME_STATE: &str = "
DELETE FROM oauth_states WHERE state_hash = $1
RETURNING client_id, connection_id, code_verifier, return_to, expires_at > now() AS live, tags";

/// Takes a pending authorization for good. Unknown, already used and expired states are all
/// `None`: the `DELETE … RETURNING` makes a state single-use even under concurrent callbacks.
pub async fn consume_state(ctx: &Context, keyring: &KeyRing, state: &str) -> Result<Option<PendingState>, StateError> {
    if state.is_empty() || state.len() > 512 {
        return Ok(None);
    }
    let hash = sha256(state.as_bytes());
    let hash_param = hash.as_slice();
    let rows = ctx.db().query(CONSUME_STATE, &[(&hash_param, Type::BYTEA)]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    if !row.get::<_, bool>("live") {
        return Ok(None);
    }
    let code_verifier = row
        .get::<_, Option<String>>("code_verifier")
        .map(|ct| keyring.decrypt(Owner::new(&state_owner(&hash), "code_verifier"), &ct))
        .transpose()
        .map_err(StateError::Verifier)?;
    Ok(Some(PendingState {
        client_id: row.get("client_id"),
        connection_id: row.get("connection_id"),
        code_verifier,
        return_to: row.get("return_to"),
        tags: row.get("tags"),
    }))
}
