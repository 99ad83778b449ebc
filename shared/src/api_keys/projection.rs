//! The `api_keys` table as a projection of `apikey-<uuid>` streams.

use tokio_postgres::{Transaction, types::Type};

use super::ApiKeyEvent;
use crate::{
    events::{EventStoreError, RecordedEvent},
    projections,
};

const INSERT: &str = include_str!("projection_insert.sql");
const REVOKE: &str = include_str!("projection_revoke.sql");

/// Applies one `apikey-` event to the `api_keys` projection.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    match event.decode::<ApiKeyEvent>()? {
        ApiKeyEvent::ApiKeyCreated { id, name, key_hash, scopes } => {
            let hash = hex::decode(&key_hash).map_err(|_| EventStoreError::Payload("key_hash is not hex".into()))?;
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            tx.query_typed(
                INSERT,
                &[
                    (&id, Type::UUID),
                    (&name, Type::TEXT),
                    (&hash, Type::BYTEA),
                    (&scopes, Type::TEXT_ARRAY),
                    (&event.recorded_at, Type::TIMESTAMPTZ),
                    (&event.version, Type::INT4),
                ],
            )
            .await?;
        }
        ApiKeyEvent::ApiKeyRevoked { id } => {
            tx.query_typed(
                REVOKE,
                &[(&id, Type::UUID), (&event.recorded_at, Type::TIMESTAMPTZ), (&event.version, Type::INT4)],
            )
            .await?;
        }
    }
    Ok(())
}

/// The api_keys projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "apikey", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}
