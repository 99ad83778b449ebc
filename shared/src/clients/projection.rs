//! The `clients` table as a projection of `client-<uuid>` streams.

use tokio_postgres::{Transaction, types::Type};

use super::model::{ClientEvent, ClientSettings};
use crate::{
    events::{EventStoreError, RecordedEvent},
    projections,
};

const INSERT: &str = include_str!("sql/projection_insert.sql");
const UPDATE: &str = include_str!("sql/projection_update.sql");
const ROTATE: &str = include_str!("sql/projection_rotate.sql");
const DELETE: &str = include_str!("sql/projection_delete.sql");
const CONNECTIONS_BUFFER: &str = include_str!("sql/projection_connections_buffer.sql");

/// The JSON columns of a client row.
struct Json {
    preset_params: serde_json::Value,
    capture: serde_json::Value,
    grants: serde_json::Value,
    quirks: serde_json::Value,
}

impl Json {
    fn of(s: &ClientSettings) -> Result<Self, EventStoreError> {
        let enc = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| EventStoreError::Payload(e.to_string()));
        Ok(Self {
            preset_params: enc(serde_json::to_value(&s.preset_params))?,
            capture: enc(serde_json::to_value(&s.capture))?,
            grants: enc(serde_json::to_value(&s.grants))?,
            quirks: enc(serde_json::to_value(&s.quirks))?,
        })
    }
}

/// Applies one `client-` event to the `clients` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<ClientEvent>()? {
        ClientEvent::ClientRegistered { id, settings: s, client_secret } => {
            let extra =
                serde_json::to_value(&s.extra_authorize_params).map_err(|e| EventStoreError::Payload(e.to_string()))?;
            let j = Json::of(&s)?;
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
                    (&s.preset, Type::TEXT),
                    (&j.preset_params, Type::JSONB),
                    (&j.capture, Type::JSONB),
                    (&j.grants, Type::JSONB),
                    (&j.quirks, Type::JSONB),
                ],
            )
            .await?;
        }
        ClientEvent::ClientUpdated { id, settings: s } => {
            let extra =
                serde_json::to_value(&s.extra_authorize_params).map_err(|e| EventStoreError::Payload(e.to_string()))?;
            let j = Json::of(&s)?;
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
                    (&s.preset, Type::TEXT),
                    (&j.preset_params, Type::JSONB),
                    (&j.capture, Type::JSONB),
                    (&j.grants, Type::JSONB),
                    (&j.quirks, Type::JSONB),
                ],
            )
            .await?;
            // The hot path reads the buffer off each connection (migration 0007).
            let buffer = s.quirks.expiry_buffer_secs.and_then(|b| i32::try_from(b).ok());
            tx.query_typed(CONNECTIONS_BUFFER, &[(&id, Type::UUID), (&buffer, Type::INT4)]).await?;
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
