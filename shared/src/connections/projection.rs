//! The `connections` table as a projection of `connection-<id>` streams.

use serde_json::{Map, Value};
use tokio_postgres::{Transaction, types::Type};

use super::ConnectionEvent;
use crate::{
    events::{EventStoreError, RecordedEvent},
    projections,
};

const AUTHORIZED: &str = include_str!("sql/projection_authorized.sql");
const TOUCH: &str = include_str!("sql/projection_touch.sql");
const REFRESHED: &str = include_str!("sql/projection_refreshed.sql");
const REFRESH_FAILED: &str = include_str!("sql/projection_refresh_failed.sql");
const REAUTHORIZATION: &str = include_str!("sql/projection_reauthorization.sql");
const REVOKED: &str = include_str!("sql/projection_revoked.sql");
const TAGS: &str = include_str!("sql/projection_tags.sql");

/// Applies one `connection-` event to the `connections` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let id = event
        .stream_id
        .strip_prefix("connection-")
        .ok_or_else(|| EventStoreError::Payload(format!("stream '{}' is not a connection", event.stream_id)))?;
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<ConnectionEvent>()? {
        ConnectionEvent::ConnectionAuthorized {
            client_id,
            access_token,
            refresh_token,
            token_type,
            expires_at,
            scopes,
            provider_data,
            tags,
            grant,
        } => {
            let tags = tags.map(|t| t.to_json());
            let grant = grant.as_str();
            tx.query_typed(
                AUTHORIZED,
                &[
                    (&id, Type::TEXT),
                    (&client_id, Type::UUID),
                    (&access_token, Type::TEXT),
                    (&refresh_token, Type::TEXT),
                    (&token_type, Type::TEXT),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&scopes, Type::TEXT_ARRAY),
                    (&provider_data, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                    (&tags, Type::JSONB),
                    (&grant, Type::TEXT),
                ],
            )
            .await?;
        }
        ConnectionEvent::ConnectionTagsChanged { tags } => {
            let tags = tags.to_json();
            tx.query_typed(
                TAGS,
                &[(&id, Type::TEXT), (&tags, Type::JSONB), (at, Type::TIMESTAMPTZ), (version, Type::INT4)],
            )
            .await?;
        }
        ConnectionEvent::AuthorizationFailed { .. } => {
            tx.query_typed(TOUCH, &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (version, Type::INT4)]).await?;
        }
        ConnectionEvent::TokenRefreshed {
            expires_at,
            access_token,
            refresh_token,
            token_type,
            scopes,
            provider_data,
            ..
        } => {
            let provider_data = if provider_data.is_object() { provider_data } else { Value::Object(Map::new()) };
            tx.query_typed(
                REFRESHED,
                &[
                    (&id, Type::TEXT),
                    (&access_token, Type::TEXT),
                    (&refresh_token, Type::TEXT),
                    (&token_type, Type::TEXT),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&scopes, Type::TEXT_ARRAY),
                    (&provider_data, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ConnectionEvent::TokenRefreshFailed { consecutive_failures, next_attempt_at, error_class, message, .. } => {
            let last_error = format!("{error_class}: {message}");
            tx.query_typed(
                REFRESH_FAILED,
                &[
                    (&id, Type::TEXT),
                    (&consecutive_failures, Type::INT4),
                    (&next_attempt_at, Type::TIMESTAMPTZ),
                    (at, Type::TIMESTAMPTZ),
                    (&last_error, Type::TEXT),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        ConnectionEvent::ReauthorizationRequired { error_class, message, .. } => {
            let last_error = format!("{error_class}: {message}");
            tx.query_typed(
                REAUTHORIZATION,
                &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (&last_error, Type::TEXT), (version, Type::INT4)],
            )
            .await?;
        }
        ConnectionEvent::ConnectionRevoked { .. } => {
            tx.query_typed(REVOKED, &[(&id, Type::TEXT), (at, Type::TIMESTAMPTZ), (version, Type::INT4)]).await?;
        }
    }
    Ok(())
}

/// The connections projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "connection", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}
