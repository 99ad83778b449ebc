//! OAuth clients as event-sourced streams `client-<uuid>` (DESIGN §6.1) and their projection.
//!
//! Owns registering, listing, changing and deleting the provider settings keyledger uses to
//! authorize connections, and the rules for their URLs. The client secret is encrypted
//! bound to `client-<id>`/`client_secret` before it reaches an event; it is never returned
//! by any route and never formatted into a log line ([`SecretString`] redacts itself).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio_postgres::{Row, Transaction, types::Type};
use url::{Host, Url};
use uuid::Uuid;

use crate::{
    context::Context,
    crypto::{KeyRing, Owner},
    events::{EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
    http::{ApiError, Page, decode_cursor, encode_cursor, page_limit},
    projections,
};

/// How keyledger authenticates itself at the provider's token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded `client_id:client_secret`.
    ClientSecretBasic,
}

impl AuthMethod {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    /// Parses a wire name as stored in the projection.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            _ => None,
        }
    }
}

/// Every setting of a client except its secret; events carry it whole so that a replay
/// never has to merge partial changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientSettings {
    /// Operator-chosen name, e.g. `zoho-crm`.
    pub name: String,
    /// The provider's authorization endpoint.
    pub authorize_url: String,
    /// The provider's token endpoint.
    pub token_url: String,
    /// The provider's revocation endpoint (RFC 7009), if it has one.
    pub revoke_url: Option<String>,
    /// keyledger's client id at the provider.
    pub client_id: String,
    /// Where the provider sends the browser back (keyledger's `/oauth/callback`).
    pub redirect_uri: String,
    /// Scopes requested on authorization.
    pub scopes: Vec<String>,
    /// Client authentication at the token endpoint.
    pub auth_method: AuthMethod,
    /// Whether authorizations use PKCE (S256).
    pub pkce: bool,
    /// Extra query parameters of the authorize URL (`access_type=offline`, `prompt=consent`).
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Free-form operator data.
    pub metadata: Value,
}

/// Events of a `client-<uuid>` stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// A client was registered; `client_secret` is a ciphertext.
    ClientRegistered {
        /// Client id (keyledger's).
        id: Uuid,
        /// Its settings.
        settings: ClientSettings,
        /// Ciphertext bound to `client-<id>`/`client_secret`.
        client_secret: String,
    },
    /// Settings changed; carries all of them as they are after the change.
    ClientUpdated {
        /// Client id.
        id: Uuid,
        /// The settings after the change.
        settings: ClientSettings,
    },
    /// A new secret replaced the old one.
    ClientSecretRotated {
        /// Client id.
        id: Uuid,
        /// Ciphertext bound to `client-<id>`/`client_secret`.
        client_secret: String,
    },
    /// The client was deleted (kept in the log; hidden from the API).
    ClientDeleted {
        /// Client id.
        id: Uuid,
    },
}

/// The body of `POST /v1/clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Name.
    pub name: String,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    #[serde(default)]
    pub revoke_url: Option<String>,
    /// Client id at the provider.
    pub client_id: String,
    /// Client secret at the provider.
    pub client_secret: SecretString,
    /// Redirect URI registered at the provider.
    pub redirect_uri: String,
    /// Requested scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Client authentication method.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// Use PKCE.
    #[serde(default)]
    pub pkce: bool,
    /// Extra authorize parameters.
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Operator data (an object).
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// The body of `PATCH /v1/clients/{id}`: every field optional; `revoke_url: null` removes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// Name.
    pub name: Option<String>,
    /// Authorization endpoint.
    pub authorize_url: Option<String>,
    /// Token endpoint.
    pub token_url: Option<String>,
    /// Revocation endpoint; `Some(None)` removes it.
    #[serde(default, deserialize_with = "present")]
    pub revoke_url: Option<Option<String>>,
    /// Client id at the provider.
    pub client_id: Option<String>,
    /// A new client secret.
    pub client_secret: Option<SecretString>,
    /// Redirect URI.
    pub redirect_uri: Option<String>,
    /// Requested scopes.
    pub scopes: Option<Vec<String>>,
    /// Client authentication method.
    pub auth_method: Option<AuthMethod>,
    /// Use PKCE.
    pub pkce: Option<bool>,
    /// Extra authorize parameters (replaces the old set).
    pub extra_authorize_params: Option<BTreeMap<String, String>>,
    /// Operator data (replaces the old value).
    pub metadata: Option<Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A client as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    /// keyledger's id of the client.
    pub id: Uuid,
    /// Settings.
    #[serde(flatten)]
    pub settings: ClientSettings,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A client with its decrypted secret, for talking to the provider; never serialized.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    /// keyledger's id of the client.
    pub id: Uuid,
    /// Settings.
    pub settings: ClientSettings,
    /// The client secret.
    pub client_secret: SecretString,
}

/// The stream of client `id`.
pub fn stream(id: Uuid) -> String {
    format!("client-{id}")
}

const SECRET_FIELD: &str = "client_secret";

/// The parameters keyledger itself sets on an authorize URL; extra parameters may not override them.
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

/// True for hosts on which plain `http` is allowed (a provider on this machine, in tests).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a provider or redirect URL: absolute, `https` (or `http` on a loopback host), no
/// credentials and no fragment. Tokens and secrets travel to these URLs, so plain `http`
/// across a network is refused.
pub fn parse_endpoint(field: &str, value: &str) -> Result<Url, ApiError> {
    let url = Url::parse(value.trim())
        .map_err(|e| ApiError::invalid_field(field, format!("{field} is not an absolute URL: {e}")))?;
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !scheme_ok {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must use https (plain http only on 127.0.0.1, ::1 or localhost)"),
        ));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid_field(field, format!("{field} needs a host and no user information")));
    }
    if url.fragment().is_some() {
        return Err(ApiError::invalid_field(field, format!("{field} must not have a fragment")));
    }
    Ok(url)
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_field(field, format!("{field} must be 1 to {max} characters")));
    }
    Ok(value.to_owned())
}

impl ClientSettings {
    /// Checks every field and normalises the text ones; 400 naming the first bad field.
    pub fn validate(mut self) -> Result<Self, ApiError> {
        self.name = check_text("name", &self.name, 100)?;
        self.client_id = check_text("client_id", &self.client_id, 500)?;
        self.authorize_url = parse_endpoint("authorize_url", &self.authorize_url)?.to_string();
        self.token_url = parse_endpoint("token_url", &self.token_url)?.to_string();
        self.redirect_uri = parse_endpoint("redirect_uri", &self.redirect_uri)?.to_string();
        self.revoke_url = match self.revoke_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(parse_endpoint("revoke_url", url)?.to_string()),
        };
        let mut scopes = Vec::with_capacity(self.scopes.len());
        for (i, scope) in self.scopes.iter().enumerate() {
            let scope = scope.trim();
            if scope.is_empty() || scope.len() > 500 || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::invalid_field(
                    format!("scopes[{i}]"),
                    "a scope must be 1 to 500 characters without spaces",
                ));
            }
            if !scopes.iter().any(|s: &String| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        self.scopes = scopes;
        for key in self.extra_authorize_params.keys() {
            if key.is_empty() || RESERVED_AUTHORIZE_PARAMS.contains(&key.as_str()) {
                return Err(ApiError::invalid_field(
                    format!("extra_authorize_params.{key}"),
                    format!("'{key}' is set by keyledger and cannot be an extra parameter"),
                ));
            }
        }
        if !self.metadata.is_object() {
            return Err(ApiError::invalid_field("metadata", "metadata must be a JSON object"));
        }
        Ok(self)
    }
}

fn check_secret(secret: &SecretString) -> Result<(), ApiError> {
    let len = secret.expose_secret().len();
    if len == 0 || len > 4096 {
        return Err(ApiError::invalid_field("client_secret", "client_secret must be 1 to 4096 characters"));
    }
    Ok(())
}

/// Registers a client.
pub async fn create(ctx: &Context, new: NewClient, metadata: &Metadata) -> Result<Client, ApiError> {
    let settings = ClientSettings {
        name: new.name,
        authorize_url: new.authorize_url,
        token_url: new.token_url,
        revoke_url: new.revoke_url,
        client_id: new.client_id,
        redirect_uri: new.redirect_uri,
        scopes: new.scopes,
        auth_method: new.auth_method,
        pkce: new.pkce,
        extra_authorize_params: new.extra_authorize_params,
        metadata: new.metadata.unwrap_or_else(|| Value::Object(Default::default())),
    }
    .validate()?;
    crate::outbound::check_provider_urls(ctx.config(), &settings.token_url, settings.revoke_url.as_deref())?;
    check_secret(&new.client_secret)?;
    let keyring = ctx.keyring().await?;
    let id = Uuid::now_v7();
    let stream_id = stream(id);
    let client_secret = keyring.encrypt(Owner::new(&stream_id, SECRET_FIELD), new.client_secret.expose_secret());
    let event = ClientEvent::ClientRegistered { id, settings: settings.clone(), client_secret };
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let recorded =
        projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::NoStream, &[event], metadata).await?;
    tx.commit().await?;
    let at = recorded[0].recorded_at;
    Ok(Client { id, settings, created_at: at, updated_at: at })
}

const COLUMNS: &str = "id, name, authorize_url, token_url, revoke_url, client_id, redirect_uri, scopes, auth_method, \
                       pkce, extra_authorize_params, metadata, created_at, updated_at, version, client_secret";

fn from_row(row: &Row) -> Result<Client, ApiError> {
    let auth_method: String = row.get("auth_method");
    let extra: Value = row.get("extra_authorize_params");
    Ok(Client {
        id: row.get("id"),
        settings: ClientSettings {
            name: row.get("name"),
            authorize_url: row.get("authorize_url"),
            token_url: row.get("token_url"),
            revoke_url: row.get("revoke_url"),
            client_id: row.get("client_id"),
            redirect_uri: row.get("redirect_uri"),
            scopes: row.get("scopes"),
            auth_method: AuthMethod::parse(&auth_method)
                .ok_or_else(|| ApiError::internal(format!("stored auth_method '{auth_method}'")))?,
            pkce: row.get("pkce"),
            extra_authorize_params: serde_json::from_value(extra).map_err(ApiError::internal)?,
            metadata: row.get("metadata"),
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found("client_not_found", format!("no client '{id}'"))
}

/// Parses a client id from a path; an id that is no UUID is simply not found.
pub fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found(raw))
}

/// A client by id; 404 `client_not_found` for unknown or deleted ones.
pub async fn get(ctx: &Context, id: Uuid) -> Result<Client, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1 AND deleted_at IS NULL");
    let rows = ctx.db().query(&sql, &[(&id, Type::UUID)]).await?;
    rows.first().map(from_row).transpose()?.ok_or_else(|| not_found(id))
}

/// A client with its decrypted secret, for an authorization or a token exchange.
pub async fn provider(ctx: &Context, id: Uuid) -> Result<ProviderClient, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1 AND deleted_at IS NULL");
    let rows = ctx.db().query(&sql, &[(&id, Type::UUID)]).await?;
    let row = rows.first().ok_or_else(|| not_found(id))?;
    let client = from_row(row)?;
    let keyring = ctx.keyring().await?;
    let client_secret = decrypt_secret(&keyring, id, row.get("client_secret"))?;
    Ok(ProviderClient { id, settings: client.settings, client_secret })
}

/// Decrypts a stored client secret of client `id`.
pub fn decrypt_secret(keyring: &KeyRing, id: Uuid, stored: &str) -> Result<SecretString, ApiError> {
    keyring.decrypt(Owner::new(&stream(id), SECRET_FIELD), stored).map_err(ApiError::internal)
}

/// Clients, newest first.
pub async fn list(ctx: &Context, limit: Option<i64>, cursor: Option<&str>) -> Result<Page<Client>, ApiError> {
    let limit = page_limit(limit)?;
    let after: Option<Uuid> = cursor.map(decode_cursor).transpose()?;
    let fetch = limit + 1;
    let sql = format!(
        "SELECT {COLUMNS} FROM clients WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR id < $1::uuid) \
         ORDER BY id DESC LIMIT $2"
    );
    let rows = ctx.db().query(&sql, &[(&after, Type::UUID), (&fetch, Type::INT8)]).await?;
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|c| c.id))
    });
    Ok(Page { items, next_cursor })
}

/// Changes any field of a client; a new secret is its own event.
pub async fn update(ctx: &Context, id: Uuid, patch: ClientPatch, metadata: &Metadata) -> Result<Client, ApiError> {
    if let Some(secret) = &patch.client_secret {
        check_secret(secret)?;
    }
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let sql = format!("SELECT {COLUMNS} FROM clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
    let rows = tx.query_typed(&sql, &[(&id, Type::UUID)]).await?;
    let row = rows.first().ok_or_else(|| not_found(id))?;
    let current = from_row(row)?;
    let version: i32 = row.get("version");
    let mut s = current.settings.clone();
    if let Some(v) = patch.name {
        s.name = v;
    }
    if let Some(v) = patch.authorize_url {
        s.authorize_url = v;
    }
    if let Some(v) = patch.token_url {
        s.token_url = v;
    }
    if let Some(v) = patch.revoke_url {
        s.revoke_url = v;
    }
    if let Some(v) = patch.client_id {
        s.client_id = v;
    }
    if let Some(v) = patch.redirect_uri {
        s.redirect_uri = v;
    }
    if let Some(v) = patch.scopes {
        s.scopes = v;
    }
    if let Some(v) = patch.auth_method {
        s.auth_method = v;
    }
    if let Some(v) = patch.pkce {
        s.pkce = v;
    }
    if let Some(v) = patch.extra_authorize_params {
        s.extra_authorize_params = v;
    }
    if let Some(v) = patch.metadata {
        s.metadata = v;
    }
    let settings = s.validate()?;
    crate::outbound::check_provider_urls(ctx.config(), &settings.token_url, settings.revoke_url.as_deref())?;
    let stream_id = stream(id);
    let mut events = Vec::new();
    if settings != current.settings {
        events.push(ClientEvent::ClientUpdated { id, settings: settings.clone() });
    }
    if let Some(secret) = patch.client_secret {
        let keyring = ctx.keyring().await?;
        let client_secret = keyring.encrypt(Owner::new(&stream_id, SECRET_FIELD), secret.expose_secret());
        events.push(ClientEvent::ClientSecretRotated { id, client_secret });
    }
    let recorded =
        projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::Exact(version), &events, metadata).await?;
    tx.commit().await?;
    let updated_at = recorded.last().map_or(current.updated_at, |e| e.recorded_at);
    Ok(Client { id, settings, created_at: current.created_at, updated_at })
}

const IN_USE: &str = "SELECT count(*) FROM connections WHERE client_id = $1 AND status <> 'revoked'";

/// Deletes a client; 409 `client_in_use` while connections that are not revoked use it.
pub async fn delete(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), ApiError> {
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    let rows = tx
        .query_typed(
            "SELECT version FROM clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            &[(&id, Type::UUID)],
        )
        .await?;
    let version: i32 = rows.first().ok_or_else(|| not_found(id))?.get(0);
    let in_use: i64 = tx.query_typed(IN_USE, &[(&id, Type::UUID)]).await?[0].get(0);
    if in_use > 0 {
        return Err(ApiError::conflict(
            "client_in_use",
            format!("{in_use} connection(s) still use this client; revoke them first"),
        ));
    }
    projections::record(
        &tx,
        &PROJECTOR,
        &stream(id),
        ExpectedVersion::Exact(version),
        &[ClientEvent::ClientDeleted { id }],
        metadata,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

const INSERT: &str = "
INSERT INTO clients (id, name, authorize_url, token_url, revoke_url, client_id, client_secret, redirect_uri, scopes,
                     auth_method, pkce, extra_authorize_params, metadata, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)";
const UPDATE: &str = "
UPDATE clients SET name = $2, authorize_url = $3, token_url = $4, revoke_url = $5, client_id = $6, redirect_uri = $7,
       scopes = $8, auth_method = $9, pkce = $10, extra_authorize_params = $11, metadata = $12, updated_at = $13,
       version = $14
WHERE id = $1";
const ROTATE: &str = "UPDATE clients SET client_secret = $2, updated_at = $3, version = $4 WHERE id = $1";
const DELETE: &str = "UPDATE clients SET deleted_at = $2, updated_at = $2, version = $3 WHERE id = $1";

/// Applies one `client-` event to the `clients` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<ClientEvent>()? {
        ClientEvent::ClientRegistered { id, settings: s, client_secret } => {
            let extra =
                serde_json::to_value(&s.extra_authorize_params).map_err(|e| EventStoreError::Payload(e.to_string()))?;
            tx.query_typed(
                INSERT,
                &[
                    (&id, Type::UUID),
                    (&s.name, Type::TEXT),
                    (&s.authorize_url, Type::TEXT),
                    (&s.token_url, Type::TEXT),
                    (&s.revoke_url, Type::TEXT),
                    (&s.client_id, Type::TEXT),
                    (&client_secret, Type::TEXT),
                    (&s.redirect_uri, Type::TEXT),
                    (&s.scopes, Type::TEXT_ARRAY),
                    (&s.auth_method.as_str(), Type::TEXT),
                    (&s.pkce, Type::BOOL),
                    (&extra, Type::JSONB),
                    (&s.metadata, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ClientEvent::ClientUpdated { id, settings: s } => {
            let extra =
                serde_json::to_value(&s.extra_authorize_params).map_err(|e| EventStoreError::Payload(e.to_string()))?;
            tx.query_typed(
                UPDATE,
                &[
                    (&id, Type::UUID),
                    (&s.name, Type::TEXT),
                    (&s.authorize_url, Type::TEXT),
                    (&s.token_url, Type::TEXT),
                    (&s.revoke_url, Type::TEXT),
                    (&s.client_id, Type::TEXT),
                    (&s.redirect_uri, Type::TEXT),
                    (&s.scopes, Type::TEXT_ARRAY),
                    (&s.auth_method.as_str(), Type::TEXT),
                    (&s.pkce, Type::BOOL),
                    (&extra, Type::JSONB),
                    (&s.metadata, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ClientEvent::ClientSecretRotated { id, client_secret } => {
            tx.query_typed(
                ROTATE,
                &[(&id, Type::UUID), (&client_secret, Type::TEXT), (at, Type::TIMESTAMPTZ), (version, Type::INT4)],
            )
            .await?;
        }
        ClientEvent::ClientDeleted { id } => {
            tx.query_typed(DELETE, &[(&id, Type::UUID), (at, Type::TIMESTAMPTZ), (version, Type::INT4)]).await?;
        }
    }
    Ok(())
}

/// The clients projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "client", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            name: " zoho-crm ".into(),
            authorize_url: "https://accounts.zoho.com/oauth/v2/auth".into(),
            token_url: "https://accounts.zoho.com/oauth/v2/token".into(),
            revoke_url: Some("".into()),
            client_id: "1000.ABC".into(),
            redirect_uri: "https://api.example.com/oauth/callback".into(),
            scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.modules.ALL".into()],
            auth_method: AuthMethod::ClientSecretPost,
            pkce: true,
            extra_authorize_params: BTreeMap::from([("access_type".into(), "offline".into())]),
            metadata: json!({}),
        }
    }

    #[test]
    fn valid_settings_are_normalised() {
        let s = settings().validate().unwrap();
        assert_eq!(s.name, "zoho-crm");
        assert_eq!(s.revoke_url, None);
        assert_eq!(s.scopes, vec!["ZohoCRM.modules.ALL".to_owned()]);
    }

    #[test]
    fn token_urls_must_be_https_except_on_loopback() {
        for ok in ["https://p.example/token", "http://127.0.0.1:8080/token", "http://localhost/t", "http://[::1]:9/t"] {
            assert!(parse_endpoint("token_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://p.example/token",
            "ftp://p.example/token",
            "/token",
            "https://user:pw@p.example/token",
            "https://p.example/token#x",
            "http://127.0.0.1.example.com/t",
        ] {
            let err = parse_endpoint("token_url", bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("token_url"), "{bad}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut ClientSettings)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|s| s.name = " ".into())),
            ("authorize_url", Box::new(|s| s.authorize_url = "http://evil.example/a".into())),
            ("revoke_url", Box::new(|s| s.revoke_url = Some("http://evil.example/r".into()))),
            ("redirect_uri", Box::new(|s| s.redirect_uri = "nope".into())),
            ("scopes[0]", Box::new(|s| s.scopes = vec!["a b".into()])),
            (
                "extra_authorize_params.state",
                Box::new(|s| {
                    s.extra_authorize_params.insert("state".into(), "x".into());
                }),
            ),
            ("metadata", Box::new(|s| s.metadata = json!([1]))),
        ];
        for (field, change) in cases {
            let mut s = settings();
            change(&mut s);
            assert_eq!(s.validate().unwrap_err().field.as_deref(), Some(field));
        }
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: ClientPatch = serde_json::from_value(json!({"revoke_url": null})).unwrap();
        assert_eq!(p.revoke_url, Some(None));
        let p: ClientPatch = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p.revoke_url, None);
    }
}
