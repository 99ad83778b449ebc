//! The operator's changes to an issued license: terms and status (`update`), revocation for
//! good (`revoke`) and freeing an installation's slot (`remove_installation`). Each takes the
//! license row's lock, reads the version under it and appends at exactly that version.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::{Transaction, types::Type};
use uuid::Uuid;

use super::{Find, License, check_inactive_days, check_max_installations, check_metadata, fetch};
use crate::{
    context::Context,
    events::{ExpectedVersion, Metadata},
    licenses::{
        DeactivationReason, Email, Entitlements, Error, LicenseEvent, LicenseStatus, PROJECTOR, events::double_option,
        stream,
    },
    projections,
};

/// The body of `PATCH /v1/licenses/{id}`: absent fields stay, `null` clears a nullable one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    /// `active` (reinstate) or `suspended`; revoking is `DELETE`.
    #[serde(default)]
    pub status: Option<LicenseStatus>,
    /// New holder.
    #[serde(default)]
    pub email: Option<Email>,
    /// New limit (existing installations keep their slots when it shrinks).
    #[serde(default)]
    pub max_installations: Option<i32>,
    /// New end of validity, `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New inactivity limit, `null` for none.
    #[serde(default, deserialize_with = "double_option")]
    pub max_inactive_days: Option<Option<i32>>,
    /// New metadata (replaces the old).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// New entitlements (replace the old; `[]` for none).
    #[serde(default)]
    pub entitlements: Option<Entitlements>,
}

const LOCK_BY_ID: &str = include_str!("../sql/lock_by_id.sql");

/// A license row as an operator's change reads it, under the row's lock.
struct Current {
    email: String,
    status: LicenseStatus,
    max_installations: i32,
    max_inactive_days: Option<i32>,
    expires_at: Option<DateTime<Utc>>,
    metadata: Value,
    entitlements: Vec<String>,
    version: i32,
}

/// Takes license `id`'s row lock for the rest of `tx` (every writer of the stream does, so
/// the version read here is still current at the append); [`Error::NotFound`] without one.
async fn lock_by_id(tx: &Transaction<'_>, id: Uuid) -> Result<Current, Error> {
    let rows = tx.query_typed(LOCK_BY_ID, &[(&id, Type::UUID)]).await?;
    let row = rows.first().ok_or(Error::NotFound(id))?;
    Ok(Current {
        email: row.try_get("email")?,
        status: LicenseStatus::from_db(row.try_get("status")?)?,
        max_installations: row.try_get("max_installations")?,
        max_inactive_days: row.try_get("max_inactive_days")?,
        expires_at: row.try_get("expires_at")?,
        metadata: row.try_get("metadata")?,
        entitlements: row.try_get("entitlements")?,
        version: row.try_get("version")?,
    })
}

/// Appends `events` (when there are any) at the version read under the lock, then commits.
async fn append_and_commit(
    tx: deadpool_postgres::Transaction<'_>,
    id: Uuid,
    current: &Current,
    events: &[LicenseEvent],
    metadata: &Metadata,
) -> Result<(), Error> {
    if !events.is_empty() {
        projections::record(&tx, &PROJECTOR, &stream(id), ExpectedVersion::Exact(current.version), events, metadata)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The events a PATCH makes of `current`: only what actually changes, so a PATCH that
/// repeats the current terms appends nothing.
fn patch_events(id: Uuid, current: &Current, patch: LicensePatch, metadata: Option<Value>) -> Vec<LicenseEvent> {
    let email = patch.email.map(String::from).filter(|e| *e != current.email);
    let max_installations = patch.max_installations.filter(|n| *n != current.max_installations);
    let max_inactive_days = patch.max_inactive_days.filter(|d| *d != current.max_inactive_days);
    let expires_at = patch.expires_at.filter(|e| *e != current.expires_at);
    let metadata = metadata.filter(|m| *m != current.metadata);
    let entitlements = patch.entitlements.map(Vec::from).filter(|e| *e != current.entitlements);
    let mut events = Vec::new();
    if email.is_some()
        || max_installations.is_some()
        || max_inactive_days.is_some()
        || expires_at.is_some()
        || metadata.is_some()
        || entitlements.is_some()
    {
        events.push(LicenseEvent::LicenseUpdated {
            id,
            email,
            max_installations,
            max_inactive_days,
            expires_at,
            metadata,
            entitlements,
        });
    }
    match (current.status, patch.status) {
        (LicenseStatus::Active, Some(LicenseStatus::Suspended)) => events.push(LicenseEvent::LicenseSuspended { id }),
        (LicenseStatus::Suspended, Some(LicenseStatus::Active)) => events.push(LicenseEvent::LicenseReinstated { id }),
        _ => {}
    }
    events
}

/// Changes a license's terms or status; [`Error::Revoked`] once it is revoked.
pub async fn update(ctx: &Context, id: Uuid, mut patch: LicensePatch, metadata: &Metadata) -> Result<License, Error> {
    if patch.status == Some(LicenseStatus::Revoked) {
        return Err(Error::invalid("status", "status must be active or suspended; revoke with DELETE"));
    }
    if let Some(n) = patch.max_installations {
        check_max_installations(n)?;
    }
    if let Some(d) = patch.max_inactive_days {
        check_inactive_days(d)?;
    }
    let new_metadata = patch.metadata.take().map(|m| check_metadata(Some(m))).transpose()?;

    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let current = lock_by_id(&tx, id).await?;
    if current.status == LicenseStatus::Revoked {
        return Err(Error::Revoked(id));
    }
    let events = patch_events(id, &current, patch, new_metadata);
    append_and_commit(tx, id, &current, &events, metadata).await?;
    drop(client);
    fetch(ctx, Find::Id(id), false).await?.ok_or(Error::NotFound(id))
}

/// Revokes a license for good (`DELETE /v1/licenses/{id}`); revoking again changes nothing.
pub async fn revoke(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), Error> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let current = lock_by_id(&tx, id).await?;
    let events =
        if current.status == LicenseStatus::Revoked { vec![] } else { vec![LicenseEvent::LicenseRevoked { id }] };
    append_and_commit(tx, id, &current, &events, metadata).await
}

const INSTALLATION: &str = include_str!("../sql/installation.sql");

/// Frees an installation's slot (`DELETE /v1/licenses/{id}/installations/{installation_id}`).
pub async fn remove_installation(
    ctx: &Context,
    id: Uuid,
    installation_id: &str,
    metadata: &Metadata,
) -> Result<(), Error> {
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let current = lock_by_id(&tx, id).await?;
    let rows = tx.query_typed(INSTALLATION, &[(&id, Type::UUID), (&installation_id, Type::TEXT)]).await?;
    let installation = rows.first().ok_or(Error::InstallationNotFound(id))?;
    let event = LicenseEvent::InstallationDeactivated {
        id,
        installation_id: installation_id.to_owned(),
        reason: DeactivationReason::Operator,
        last_seen_at: installation.try_get("last_seen_at")?,
    };
    append_and_commit(tx, id, &current, &[event], metadata).await
}
