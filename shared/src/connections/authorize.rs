//! Starting and completing authorizations (`POST /v1/connections/authorize`, the callback).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{ConnectionEvent, ConnectionId, Error, Grant, PROJECTOR, Status, Tags};
use crate::{
    clients,
    context::Context,
    crypto::Owner,
    events::{ExpectedVersion, Metadata},
    oauth::{self, Provider, TokenEndpoint},
    projections,
};

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
    /// The caller's labels for the connection (kept with the pending state until the callback).
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The answer of `POST /v1/connections/authorize`.
#[derive(Debug, Serialize)]
pub struct AuthorizeStart {
    /// Send the user's browser here.
    pub authorize_url: String,
    /// The pending authorization is valid until then.
    pub expires_at: DateTime<Utc>,
}

const OWNER_OF: &str = include_str!("sql/owner_of.sql");
const LOCK_ANY: &str = include_str!("sql/lock_any.sql");

/// [`Error::OwnedByAnotherClient`] when `id` is a live connection of another client; a
/// revoked one may be taken over.
pub(super) async fn ensure_free_for(ctx: &Context, id: &ConnectionId, client_id: Uuid) -> Result<(), Error> {
    let rows = ctx.db().query(OWNER_OF, &[(&id.as_str(), Type::TEXT)]).await?;
    if let Some(row) = rows.first() {
        let owner: Uuid = row.get("client_id");
        // An unknown stored status counts as live: the id stays taken (fails closed).
        let revoked = Status::parse(row.get("status")) == Some(Status::Revoked);
        if owner != client_id && !revoked {
            return Err(Error::OwnedByAnotherClient(id.clone()));
        }
    }
    Ok(())
}

/// Starts an authorization: a random single-use state (10 minutes) remembering the client,
/// connection, PKCE verifier and `return_to`.
pub async fn start_authorization(ctx: &Context, req: AuthorizeRequest) -> Result<AuthorizeStart, Error> {
    let id = ConnectionId::parse(&req.connection_id).map_err(|e| Error::invalid("connection_id", e.to_string()))?;
    let tags = req.tags.map(|t| Tags::parse("tags", t)).transpose()?;
    let return_to = match req.return_to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(clients::parse_endpoint("return_to", raw)?.to_string()),
    };
    let client = clients::provider(ctx, req.client_id).await?;
    ensure_free_for(ctx, &id, client.id).await?;
    let keyring = ctx.keyring().await?;
    let pending = oauth::NewState {
        client_id: client.id,
        connection_id: id.as_str(),
        pkce: client.settings.pkce,
        return_to: return_to.as_deref(),
        tags: tags.as_ref().map(Tags::to_json),
    };
    let (state, challenge, expires_at) = oauth::create_state(ctx, &keyring, pending).await?;
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
    /// Every other query parameter; only those the client's `capture.callback` names are
    /// kept (Zoho's `accounts-server`, QuickBooks' `realmId`, Shopify's `shop`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
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

/// Completes an authorization: consumes the state (unknown, expired, reused → `invalid_state`,
/// nothing stored), records a provider error, or exchanges the code and stores the tokens.
pub async fn complete_authorization(
    ctx: &Context,
    provider: &Provider,
    params: CallbackParams,
    metadata: &Metadata,
) -> Result<CallbackOutcome, Error> {
    let state = params.state.as_deref().unwrap_or("");
    let keyring = ctx.keyring().await?;
    let pending = oauth::consume_state(ctx, &keyring, state).await?.ok_or(Error::InvalidState)?;
    let id = ConnectionId::parse(&pending.connection_id)
        .map_err(|_| Error::UnknownStored { what: "pending connection_id", value: pending.connection_id.clone() })?;
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
        Err(clients::Error::NotFound(_)) => {
            return failed
                .record("client_not_found".into(), "the client was deleted during the authorization".into())
                .await;
        }
        Err(e) => return Err(e.into()),
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
        provider_data: Value::Object(with_callback_values(set.provider_data.clone(), &client, &params.extra)),
        // Tags the caller gave when it started; a state of the previous release has none.
        tags: pending.tags.map(Tags::stored).transpose()?,
        grant: Grant::AuthorizationCode,
    };
    record_any(ctx, &stream_id, event, metadata).await?;
    Ok(CallbackOutcome::Connected { connection_id: id.0.clone(), return_to: pending.return_to })
}

/// `data` plus the callback query values the client captures, each bounded and without
/// control characters (a callback value is replaced on every authorization).
fn with_callback_values(
    mut data: Map<String, Value>,
    client: &clients::ProviderClient,
    query: &BTreeMap<String, String>,
) -> Map<String, Value> {
    for field in &client.settings.capture.callback {
        if let Some(value) = query.get(field.path()) {
            data.insert(field.stored_as().to_owned(), Value::String(clip_text(value)));
        }
    }
    data
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
    async fn record(&self, error: String, description: String) -> Result<CallbackOutcome, Error> {
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

/// Records `event` under the connection's row lock (when there is a row) at any version.
pub(super) async fn record_any(
    ctx: &Context,
    stream_id: &str,
    event: ConnectionEvent,
    metadata: &Metadata,
) -> Result<(), Error> {
    let mut db = ctx.db().get().await?;
    let tx = db.transaction().await?;
    // Take the row lock when there is a row, so an authorization never interleaves with a
    // refresh of the same connection.
    let id = stream_id.trim_start_matches("connection-");
    tx.query_typed(LOCK_ANY, &[(&id, Type::TEXT)]).await?;
    projections::record(&tx, &PROJECTOR, stream_id, ExpectedVersion::Any, &[event], metadata).await?;
    tx.commit().await?;
    Ok(())
}
