//! The `licenses` and `installations` projections: how each `license-` event changes them,
//! in the transaction that appends it. Registered with [`crate::projections`] through
//! [`PROJECTOR`]; nothing here decides whether an event may happen (that is `admin` and
//! `checks`). `installations.last_seen_at` is an observation, not projected from events.

use tokio_postgres::{GenericClient, Transaction, types::Type};
use uuid::Uuid;

use super::{LicenseEvent, LicenseStatus, stream};
use crate::{
    db::DbError,
    events::{EventStoreError, RecordedEvent},
    projections,
};

const INSERT_LICENSE: &str = "
INSERT INTO licenses (id, key_hash, license_key, email, status, max_installations, max_inactive_days,
                      expires_at, metadata, created_at, updated_at, version, entitlements)
VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9, $10, $11, $12)";

const UPDATE_LICENSE: &str = "
UPDATE licenses SET
    email = coalesce($2, email),
    max_installations = coalesce($3, max_installations),
    max_inactive_days = CASE WHEN $4 THEN $5 ELSE max_inactive_days END,
    expires_at = CASE WHEN $6 THEN $7 ELSE expires_at END,
    metadata = coalesce($8, metadata),
    entitlements = coalesce($11, entitlements),
    updated_at = $9, version = $10
WHERE id = $1";

const SET_STATUS: &str = "UPDATE licenses SET status = $2, updated_at = $3, version = $4 WHERE id = $1";

const ACTIVATED: &str = "
WITH added AS (
    INSERT INTO installations (license_id, installation_id, name, activated_at, last_seen_at)
    VALUES ($1, $2, $3, $4, $4)
)
UPDATE licenses SET version = $5, installations_used = installations_used + 1 WHERE id = $1";

const DEACTIVATED: &str = "
WITH removed AS (
    DELETE FROM installations WHERE license_id = $1 AND installation_id = $2 RETURNING 1
)
UPDATE licenses SET version = $3, installations_used = installations_used - (SELECT count(*) FROM removed)
WHERE id = $1";

/// Applies one `license-` event to the `licenses` and `installations` projections.
pub async fn project(tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), EventStoreError> {
    let at = &event.recorded_at;
    let version = &event.version;
    match event.decode::<LicenseEvent>()? {
        LicenseEvent::LicenseIssued {
            id,
            key_hash,
            license_key,
            email,
            max_installations,
            max_inactive_days,
            expires_at,
            metadata,
            created_at,
            entitlements,
            source: _,
        } => {
            let hash = hex::decode(&key_hash).map_err(|_| EventStoreError::Payload("key_hash is not hex".into()))?;
            tx.query_typed(
                INSERT_LICENSE,
                &[
                    (&id, Type::UUID),
                    (&hash, Type::BYTEA),
                    (&license_key, Type::TEXT),
                    (&email, Type::TEXT),
                    (&max_installations, Type::INT4),
                    (&max_inactive_days, Type::INT4),
                    (&expires_at, Type::TIMESTAMPTZ),
                    (&metadata, Type::JSONB),
                    (&created_at, Type::TIMESTAMPTZ),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                    (&entitlements, Type::TEXT_ARRAY),
                ],
            )
            .await?;
        }
        LicenseEvent::LicenseUpdated {
            id,
            email,
            max_installations,
            max_inactive_days,
            expires_at,
            metadata,
            entitlements,
        } => {
            let (set_days, days) = (max_inactive_days.is_some(), max_inactive_days.flatten());
            let (set_expiry, expiry) = (expires_at.is_some(), expires_at.flatten());
            tx.query_typed(
                UPDATE_LICENSE,
                &[
                    (&id, Type::UUID),
                    (&email, Type::TEXT),
                    (&max_installations, Type::INT4),
                    (&set_days, Type::BOOL),
                    (&days, Type::INT4),
                    (&set_expiry, Type::BOOL),
                    (&expiry, Type::TIMESTAMPTZ),
                    (&metadata, Type::JSONB),
                    (at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                    (&entitlements, Type::TEXT_ARRAY),
                ],
            )
            .await?;
        }
        LicenseEvent::LicenseSuspended { id } => set_status(tx, id, LicenseStatus::Suspended, event).await?,
        LicenseEvent::LicenseReinstated { id } => set_status(tx, id, LicenseStatus::Active, event).await?,
        LicenseEvent::LicenseRevoked { id } => set_status(tx, id, LicenseStatus::Revoked, event).await?,
        LicenseEvent::InstallationActivated { id, installation_id, name, activated_at } => {
            tx.query_typed(
                ACTIVATED,
                &[
                    (&id, Type::UUID),
                    (&installation_id, Type::TEXT),
                    (&name, Type::TEXT),
                    (&activated_at, Type::TIMESTAMPTZ),
                    (version, Type::INT4),
                ],
            )
            .await?;
        }
        LicenseEvent::LicenseCheckedOut { id, .. } => {
            // Nothing to project but the stream's version (the checks lock and compare it).
            tx.query_typed(
                "UPDATE licenses SET version = $2 WHERE id = $1",
                &[(&id, Type::UUID), (version, Type::INT4)],
            )
            .await?;
        }
        LicenseEvent::InstallationDeactivated { id, installation_id, .. } => {
            tx.query_typed(DEACTIVATED, &[(&id, Type::UUID), (&installation_id, Type::TEXT), (version, Type::INT4)])
                .await?;
        }
    }
    Ok(())
}

async fn set_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: LicenseStatus,
    event: &RecordedEvent,
) -> Result<(), EventStoreError> {
    let status = status.as_str();
    tx.query_typed(
        SET_STATUS,
        &[
            (&id, Type::UUID),
            (&status, Type::TEXT),
            (&event.recorded_at, Type::TIMESTAMPTZ),
            (&event.version, Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// True when `client` sees an event of license `id` about `installation_id` (import uses it
/// so that a re-run never brings back an installation that was deactivated since).
pub(crate) async fn installation_known(
    client: &impl GenericClient,
    id: Uuid,
    installation_id: &str,
) -> Result<bool, DbError> {
    const KNOWN: &str = "
SELECT 1 FROM events WHERE stream_id = $1
  AND type IN ('InstallationActivated', 'InstallationDeactivated') AND data->>'installation_id' = $2 LIMIT 1";
    let stream_id = stream(id);
    Ok(!client.query_typed(KNOWN, &[(&stream_id, Type::TEXT), (&installation_id, Type::TEXT)]).await?.is_empty())
}

/// The licenses projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "license", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}
