//! The `connections` table as a projection of `connection-<id>` streams.

#[allow(unused_imports)]
use super::*;

pub(super) const AUTHORIZED: &str = "
INSERT INTO connections (connection_id, client_id, status, access_token, refresh_token, token_type, expires_at, scopes,
                         provider_data, refresh_token_used_at, consecutive_failures, created_at, updated_at, version)
VALUES ($1, $2, 'active', $3, $4, $5, $6, $7, $8, $9, 0, $9, $9, $10)
ON CONFLICT (connection_id) DO UPDATE SET
    client_id = EXCLUDED.client_id, status = 'active', access_token = EXCLUDED.access_token,
    refresh_token = EXCLUDED.refresh_token, token_type = EXCLUDED.token_type, expires_at = EXCLUDED.expires_at,
    scopes = EXCLUDED.scopes, provider_data = EXCLUDED.provider_data,
    refresh_token_used_at = EXCLUDED.refresh_token_used_at, consecutive_failures = 0, next_attempt_at = NULL,
    last_failed_at = NULL, last_error = NULL, updated_at = EXCLUDED.updated_at, version = EXCLUDED.version";
pub(super) const TOUCH: &str = "UPDATE connections SET updated_at = $2, version = $3 WHERE connection_id = $1";
pub(super) const REFRESHED: &str = "
UPDATE connections SET status = 'active', access_token = $2, refresh_token = coalesce($3, refresh_token),
    token_type = $4, expires_at = $5, scopes = $6, provider_data = provider_data || $7, last_refreshed_at = $8,
    refresh_token_used_at = $8, consecutive_failures = 0, next_attempt_at = NULL, last_failed_at = NULL,
    last_error = NULL, updated_at = $8, version = $9
WHERE connection_id = $1";
pub(super) const REFRESH_FAILED: &str = "
UPDATE connections SET status = 'refresh_failing', consecutive_failures = $2, next_attempt_at = $3,
    last_failed_at = $4, last_error = $5, updated_at = $4, version = $6
WHERE connection_id = $1";
pub(super) const REAUTHORIZATION: &str = "
UPDATE connections SET status = 'reauthorization_required', access_token = NULL, refresh_token = NULL,
    next_attempt_at = NULL, last_failed_at = $2, last_error = $3, updated_at = $2, version = $4
WHERE connection_id = $1";
pub(super) const REVOKED: &str = "
UPDATE connections SET status = 'revoked', access_token = NULL, refresh_token = NULL, next_attempt_at = NULL,
    updated_at = $2, version = $3
WHERE connection_id = $1";

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
        } => {
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
                ],
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
