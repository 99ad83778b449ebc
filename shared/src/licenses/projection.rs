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

const INSERT_LICENSE: &str = include_str!("sql/projection_insert.sql");
const UPDATE_LICENSE: &str = include_str!("sql/projection_update.sql");
const SET_STATUS: &str = include_str!("sql/projection_set_status.sql");
const ACTIVATED: &str = include_str!("sql/projection_activated.sql");
const DEACTIVATED: &str = include_str!("sql/projection_deactivated.sql");
const VERSION: &str = include_str!("sql/projection_version.sql");
const INSTALLATION_KNOWN: &str = include_str!("sql/installation_known.sql");

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
            tx.query_typed(VERSION, &[(&id, Type::UUID), (version, Type::INT4)]).await?;
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
    let stream_id = stream(id);
    Ok(!client
        .query_typed(INSTALLATION_KNOWN, &[(&stream_id, Type::TEXT), (&installation_id, Type::TEXT)])
        .await?
        .is_empty())
}

/// The licenses projection, as registered with [`projections`].
pub const PROJECTOR: projections::Projector = projections::Projector { kind: "license", project: project_boxed };

fn project_boxed<'a>(
    tx: &'a Transaction<'_>,
    event: &'a RecordedEvent,
) -> futures::future::BoxFuture<'a, Result<(), EventStoreError>> {
    Box::pin(project(tx, event))
}
