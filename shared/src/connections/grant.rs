//! Client-credentials connections (DESIGN §6.14): `POST /v1/connections` obtains a token
//! with the client's own credentials at once; the refresh paths renew it the same way,
//! under the same row lock, before it expires.
//!
//! Owns which clients may do it: only those whose `grants` list `client_credentials` (a
//! client made from a preset gets the grants its provider supports unless it names its own;
//! any other client allows only `authorization_code`).

use std::collections::BTreeMap;

use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    Connection, ConnectionEvent, ConnectionId, Error, Grant, Tags,
    authorize::{ensure_free_for, record_any},
    get,
};
use crate::{
    clients,
    context::Context,
    crypto::Owner,
    events::Metadata,
    oauth::{Provider, TokenEndpoint},
};

/// The body of `POST /v1/connections`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// keyledger's client id.
    pub client_id: Uuid,
    /// The connection to create (or to obtain a new token for).
    pub connection_id: String,
    /// `client_credentials` (authorization-code connections start at `/authorize`).
    pub grant: String,
    /// Scopes to ask for; the client's scopes when absent.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The caller's labels.
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `POST /v1/connections {"grant": "client_credentials"}`: asks the provider for a token
/// with the client's credentials and stores the connection; a refusal is
/// [`Error::Provider`] and stores nothing.
pub async fn create(
    ctx: &Context,
    provider: &Provider,
    new: NewConnection,
    metadata: &Metadata,
) -> Result<Connection, Error> {
    let id = ConnectionId::parse(&new.connection_id).map_err(|e| Error::invalid("connection_id", e.to_string()))?;
    let grant = Grant::parse(&new.grant).filter(|g| *g == Grant::ClientCredentials).ok_or_else(|| {
        Error::invalid(
            "grant",
            "grant must be client_credentials (authorize others with POST /v1/connections/authorize)",
        )
    })?;
    let tags = new.tags.map(|t| Tags::parse("tags", t)).transpose()?;
    let scopes = match new.scopes {
        Some(s)
            if s.iter()
                .any(|s| s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control())) =>
        {
            return Err(Error::invalid("scopes", "a scope is 1 to 256 characters without spaces"));
        }
        other => other,
    };
    let client = clients::provider(ctx, new.client_id).await?;
    if !client.settings.grants.contains(&grant) {
        return Err(Error::GrantNotAllowed(grant.as_str()));
    }
    ensure_free_for(ctx, &id, client.id).await?;
    let scopes = scopes.unwrap_or_else(|| client.settings.scopes.clone());
    let endpoint = TokenEndpoint::from(&client);
    let set = provider.client_credentials(&endpoint, &scopes).await.map_err(|e| {
        tracing::warn!(connection_id = %id, error = %e, "client credentials refused");
        Error::Provider { code: e.code().to_owned(), message: e.message.clone() }
    })?;
    let keyring = ctx.keyring().await?;
    let stream_id = id.stream();
    let now = Utc::now();
    let event = ConnectionEvent::ConnectionAuthorized {
        client_id: client.id,
        access_token: keyring.encrypt(Owner::new(&stream_id, "access_token"), set.access_token.expose_secret()),
        // The client's credentials renew the token; a refresh token would only be a second
        // secret to keep.
        refresh_token: None,
        token_type: set.token_type.clone(),
        expires_at: set.expires_at(now),
        scopes: set.scopes.clone().unwrap_or(scopes),
        provider_data: Value::Object(set.provider_data.clone()),
        tags,
        grant,
    };
    record_any(ctx, &stream_id, event, metadata).await?;
    get(ctx, &id).await
}
