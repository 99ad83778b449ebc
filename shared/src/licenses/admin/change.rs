//! The operator's changes to an issued license: terms and status (`update`), revocation for
//! good (`revoke`) and freeing an installation's slot (`remove_installation`). Each is one
//! [`projections::update`]: lock the license row, decide from it, append at the version read
//! under the lock, commit.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::{Find, License, check_inactive_days, check_max_installations, check_metadata, fetch, license_from_row};
use crate::{
    context::Context,
    events::Metadata,
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

/// The license row under its lock, read as [`License`] (with `version`).
const LOCK: &str = concat!(include_str!("../sql/license.sql"), include_str!("../sql/license_lock_id.sql"));
/// The license row's version under its lock, with the installation's `last_seen_at` (null
/// when the license has no such installation).
const LOCK_INSTALLATION: &str = include_str!("../sql/lock_installation.sql");

/// The events a PATCH makes of `current`: only what actually changes, so a PATCH that
/// repeats the current terms appends nothing.
fn patch_events(id: Uuid, current: &License, patch: LicensePatch, metadata: Option<Value>) -> Vec<LicenseEvent> {
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

    // Every writer of the stream takes the row's lock, so the version read under it is
    // still current at the append.
    projections::update::<_, Error>(ctx.db(), &PROJECTOR, &stream(id), LOCK, &[(&id, Type::UUID)], metadata, |row| {
        let current = license_from_row(row.ok_or(Error::NotFound(id))?)?;
        if current.status == LicenseStatus::Revoked {
            return Err(Error::Revoked(id));
        }
        Ok(patch_events(id, &current, patch, new_metadata))
    })
    .await?;
    fetch(ctx, Find::Id(id), false).await?.ok_or(Error::NotFound(id))
}

/// Revokes a license for good (`DELETE /v1/licenses/{id}`); revoking again changes nothing.
pub async fn revoke(ctx: &Context, id: Uuid, metadata: &Metadata) -> Result<(), Error> {
    projections::update::<_, Error>(ctx.db(), &PROJECTOR, &stream(id), LOCK, &[(&id, Type::UUID)], metadata, |row| {
        let current = license_from_row(row.ok_or(Error::NotFound(id))?)?;
        Ok(if current.status == LicenseStatus::Revoked { vec![] } else { vec![LicenseEvent::LicenseRevoked { id }] })
    })
    .await?;
    Ok(())
}

/// Frees an installation's slot (`DELETE /v1/licenses/{id}/installations/{installation_id}`).
pub async fn remove_installation(
    ctx: &Context,
    id: Uuid,
    installation_id: &str,
    metadata: &Metadata,
) -> Result<(), Error> {
    let params: &[(&(dyn ToSql + Sync), Type)] = &[(&id, Type::UUID), (&installation_id, Type::TEXT)];
    projections::update::<_, Error>(ctx.db(), &PROJECTOR, &stream(id), LOCK_INSTALLATION, params, metadata, |row| {
        let row = row.ok_or(Error::NotFound(id))?;
        // `last_seen_at` is never null on an installation: null is the join finding none.
        let last_seen_at: Option<DateTime<Utc>> = row.try_get("last_seen_at")?;
        if last_seen_at.is_none() {
            return Err(Error::InstallationNotFound(id));
        }
        Ok(vec![LicenseEvent::InstallationDeactivated {
            id,
            installation_id: installation_id.to_owned(),
            reason: DeactivationReason::Operator,
            last_seen_at,
        }])
    })
    .await?;
    Ok(())
}
