//! API-key authentication and scopes (DESIGN §5, §6.8).
//!
//! Owns turning an `Authorization: Bearer` header into a [`Principal`] and the 401/403
//! rules. Keys are compared by SHA-256 only; a key never reaches a log line or the database.
//!
//! The rules are split in steps so that the token hot path (`connections::fetch_token`),
//! which reads the key and the connection in one round trip, takes the very same decisions:
//! [`presented_key`] → [`bootstrap`] or a stored key row → [`stored_principal`] →
//! [`Principal::require`]. Answers in HTTP terms, and `Principal` as an axum extractor, live
//! in `http::map::auth`.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::{
    context::Context,
    crypto::{constant_time_eq, sha256},
    db::DbError,
    events::Metadata,
    secrets::SecretsError,
};

/// Why a caller is not let in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `Authorization: Bearer` header.
    #[error("an 'Authorization: Bearer <api key>' header is required")]
    MissingKey,
    /// A key that is not the bootstrap key nor a stored, unrevoked one.
    #[error("unknown API key")]
    UnknownKey,
    /// The key is known but lacks the scope.
    #[error("this API key lacks the '{0}' scope")]
    InsufficientScope(Scope),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The bootstrap admin key is configured but could not be read.
    #[error("the bootstrap admin key is unavailable")]
    AdminKey(#[source] SecretsError),
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Scope {
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
    /// `GET /v1/tokens/{id}`.
    #[serde(rename = "tokens:read")]
    TokensRead,
    /// `POST /v1/tokens/{id}/refresh`.
    #[serde(rename = "tokens:refresh")]
    TokensRefresh,
    /// Connection status and history.
    #[serde(rename = "connections:read")]
    ConnectionsRead,
    /// Start authorizations, revoke connections.
    #[serde(rename = "connections:write")]
    ConnectionsWrite,
    /// Read licenses.
    #[serde(rename = "licenses:read")]
    LicensesRead,
    /// Issue and change licenses.
    #[serde(rename = "licenses:write")]
    LicensesWrite,
    /// Browse the request log.
    #[serde(rename = "requests:read")]
    RequestsRead,
    /// Write to the request log.
    #[serde(rename = "requests:write")]
    RequestsWrite,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 9] = [
        Scope::Admin,
        Scope::TokensRead,
        Scope::TokensRefresh,
        Scope::ConnectionsRead,
        Scope::ConnectionsWrite,
        Scope::LicensesRead,
        Scope::LicensesWrite,
        Scope::RequestsRead,
        Scope::RequestsWrite,
    ];

    /// The scope's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::TokensRead => "tokens:read",
            Scope::TokensRefresh => "tokens:refresh",
            Scope::ConnectionsRead => "connections:read",
            Scope::ConnectionsWrite => "connections:write",
            Scope::LicensesRead => "licenses:read",
            Scope::LicensesWrite => "licenses:write",
            Scope::RequestsRead => "requests:read",
            Scope::RequestsWrite => "requests:write",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `apikey:<uuid>` or `admin:bootstrap`.
    pub actor: String,
    /// The key's scopes.
    pub scopes: Vec<Scope>,
    /// The request id, for event metadata.
    pub request_id: String,
}

impl Principal {
    /// True when the key holds `scope` (or `admin`).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| *s == scope || *s == Scope::Admin)
    }

    /// [`Error::InsufficientScope`] unless the key holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), Error> {
        if self.allows(scope) { Ok(()) } else { Err(Error::InsufficientScope(scope)) }
    }

    /// Event metadata naming this caller.
    pub fn metadata(&self, function: &str) -> Metadata {
        Metadata { request_id: Some(self.request_id.clone()), actor: self.actor.clone(), function: function.to_owned() }
    }
}

/// The `kl_` prefix every API key carries.
pub const KEY_PREFIX: &str = "kl_";

/// Extracts the bearer key from an `Authorization` header value.
pub fn bearer(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim()).filter(|k| !k.is_empty())
}

/// A key presented longer than this is unknown without hashing it.
const MAX_KEY_LEN: usize = 256;

/// The SHA-256 of the key an `Authorization` header presents: [`Error::MissingKey`] without
/// one, [`Error::UnknownKey`] for one no key can be.
pub fn presented_key(authorization: Option<&str>) -> Result<[u8; 32], Error> {
    let key = bearer(authorization).ok_or(Error::MissingKey)?;
    if key.len() > MAX_KEY_LEN {
        return Err(Error::UnknownKey);
    }
    Ok(sha256(key.as_bytes()))
}

/// The bootstrap admin principal, when `hash` is the configured bootstrap key's (compared in
/// constant time); `None` means "look the key up in `api_keys`".
pub async fn bootstrap(ctx: &Context, hash: &[u8; 32], request_id: &str) -> Result<Option<Principal>, Error> {
    let is_admin = ctx
        .admin_key_hash()
        .await
        .map_err(Error::AdminKey)?
        .is_some_and(|admin| constant_time_eq(hash, admin.as_slice()));
    Ok(is_admin.then(|| Principal {
        actor: "admin:bootstrap".into(),
        scopes: vec![Scope::Admin],
        request_id: request_id.to_owned(),
    }))
}

/// The principal of a stored, unrevoked key. A stored scope this build does not know grants
/// nothing (fails closed).
pub fn stored_principal(id: Uuid, scopes: &[String], request_id: &str) -> Principal {
    Principal {
        actor: format!("apikey:{id}"),
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        request_id: request_id.to_owned(),
    }
}

const LOOKUP: &str = "SELECT id, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL";

/// Authenticates `authorization`: the bootstrap admin key, or a stored, unrevoked key.
pub async fn authenticate(ctx: &Context, authorization: Option<&str>, request_id: String) -> Result<Principal, Error> {
    let hash = presented_key(authorization)?;
    if let Some(admin) = bootstrap(ctx, &hash, &request_id).await? {
        return Ok(admin);
    }
    let hash_param = hash.as_slice();
    let row =
        ctx.db().read(LOOKUP, &[(&hash_param, Type::BYTEA)]).await?.into_iter().next().ok_or(Error::UnknownKey)?;
    Ok(stored_principal(row.get("id"), &row.get::<_, Vec<String>>("scopes"), &request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer kl_abc")), Some("kl_abc"));
        assert_eq!(bearer(Some("bearer   kl_abc ")), Some("kl_abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn admin_allows_everything_and_others_only_their_scopes() {
        let p = |scopes: Vec<Scope>| Principal { actor: "t".into(), scopes, request_id: "r".into() };
        let admin = p(vec![Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let reader = p(vec![Scope::TokensRead]);
        assert!(reader.require(Scope::TokensRead).is_ok());
        assert!(matches!(reader.require(Scope::TokensRefresh), Err(Error::InsufficientScope(Scope::TokensRefresh))));
        assert!(reader.require(Scope::Admin).is_err());
    }

    #[test]
    fn scope_names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        assert_eq!(Scope::parse("tokens:write"), None);
    }
}
