//! The operator's side of licenses (DESIGN §6.6, admin): issue (generated or imported key),
//! show, look up, list, change terms or status, revoke, remove an installation. Each change
//! locks the license row, checks the version it read and appends events through
//! [`projections::record`](crate::projections::record) in one transaction; nothing is
//! half-written on an error. Lists and lookups never carry the key; only `show` (and the
//! answer to `issue`) reveals it.
//!
//! This file holds what the answers look like, how a row becomes one, and the limits every
//! writer checks; `issue` creates, `read` shows, looks up and lists, `change` updates,
//! revokes and frees installations.

mod change;
mod issue;
mod read;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

pub use change::{LicensePatch, remove_installation, revoke, update};
pub(crate) use issue::{Issue, issue_license};
pub use issue::{NewLicense, issue};
pub use read::{ListFilter, Lookup, list, lookup, show};

use super::{Error, LicenseKey, LicenseStatus, RevealedKey, events::KEY_FIELD, is_expired, stream};
use crate::{
    context::Context,
    crypto::{Owner, constant_time_eq},
};

/// An active installation as the operator sees it.
#[derive(Debug, Serialize)]
pub struct Installation {
    /// The product's installation id.
    pub installation_id: String,
    /// Optional human name.
    pub name: Option<String>,
    /// When it took its slot.
    pub activated_at: DateTime<Utc>,
    /// Last successful validation or activation.
    pub last_seen_at: DateTime<Utc>,
}

/// A license as the admin API answers it. The key only on creation and `GET /v1/licenses/{id}`.
#[derive(Debug, Serialize)]
pub struct License {
    /// License id.
    pub id: Uuid,
    /// The key, only where it may be revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_key: Option<RevealedKey>,
    /// Holder.
    pub email: String,
    /// `active`, `suspended` or `revoked`.
    pub status: LicenseStatus,
    /// Limit of active installations.
    pub max_installations: i32,
    /// Inactivity after which a slot may be taken over.
    pub max_inactive_days: Option<i32>,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// True when `expires_at` has passed.
    pub expired: bool,
    /// Active installations.
    pub installations_used: i64,
    /// Operator's data.
    pub metadata: Value,
    /// What the license grants (DESIGN §6.6a), sorted.
    pub entitlements: Vec<String>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Last change of its terms or status.
    pub updated_at: DateTime<Utc>,
    /// The installations, on single-license answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installations: Option<Vec<Installation>>,
}

/// A license with its counts, as [`license_from_row`] reads it; each statement adds its `WHERE`.
const BY_ID: &str = concat!(include_str!("../sql/license.sql"), include_str!("../sql/license_where_id.sql"));
const BY_HASH: &str = concat!(include_str!("../sql/license.sql"), include_str!("../sql/license_where_hash.sql"));

pub(super) fn license_from_row(row: &Row) -> Result<License, Error> {
    Ok(License {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        status: LicenseStatus::from_db(row.try_get("status")?)?,
        max_installations: row.try_get("max_installations")?,
        max_inactive_days: row.try_get("max_inactive_days")?,
        expires_at: row.try_get("expires_at")?,
        metadata: row.try_get("metadata")?,
        entitlements: row.try_get("entitlements")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        installations_used: row.try_get("used")?,
        expired: is_expired(row.try_get("expires_at")?, row.try_get("now")?),
        license_key: None,
        installations: None,
    })
}

const MAX_INSTALLATIONS: i32 = 100_000;
const MAX_INACTIVE_DAYS: i32 = 36_500;

pub(super) fn check_max_installations(n: i32) -> Result<i32, Error> {
    if (1..=MAX_INSTALLATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid("max_installations", format!("max_installations must be 1 to {MAX_INSTALLATIONS}")))
    }
}

pub(super) fn check_inactive_days(n: Option<i32>) -> Result<Option<i32>, Error> {
    match n {
        Some(d) if !(1..=MAX_INACTIVE_DAYS).contains(&d) => Err(Error::invalid(
            "max_inactive_days",
            format!("max_inactive_days must be 1 to {MAX_INACTIVE_DAYS}, or null"),
        )),
        other => Ok(other),
    }
}

pub(super) fn check_metadata(m: Option<Value>) -> Result<Value, Error> {
    match m {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(Value::Object(o)) if serde_json::to_vec(&o).map_or(0, |v| v.len()) <= 16 * 1024 => Ok(Value::Object(o)),
        Some(Value::Object(_)) => Err(Error::invalid("metadata", "metadata must be at most 16 KiB")),
        Some(_) => Err(Error::invalid("metadata", "metadata must be a JSON object")),
    }
}

/// The key's lookup hash under the pepper (how every path finds a license by its key).
pub(in crate::licenses) async fn pepper_hash(ctx: &Context, key: &LicenseKey) -> Result<[u8; 32], Error> {
    Ok(key.lookup_hash(&*ctx.license_key_pepper().await.map_err(Error::Pepper)?))
}

/// How [`fetch`] finds the license.
pub(super) enum Find {
    Id(Uuid),
    Hash([u8; 32]),
}

const INSTALLATIONS: &str = include_str!("../sql/installations.sql");

pub(super) async fn fetch(ctx: &Context, find: Find, reveal: bool) -> Result<Option<License>, Error> {
    let client = ctx.db().get().await?;
    let rows = match &find {
        Find::Id(id) => client.query_typed(BY_ID, &[(id, Type::UUID)]).await?,
        Find::Hash(hash) => {
            let hash = hash.as_slice();
            client.query_typed(BY_HASH, &[(&hash, Type::BYTEA)]).await?
        }
    };
    let Some(row) = rows.first() else { return Ok(None) };
    if let Find::Hash(hash) = &find
        && !constant_time_eq(row.try_get::<_, &[u8]>("key_hash")?, hash)
    {
        return Ok(None);
    }
    let mut license = license_from_row(row)?;
    if reveal {
        let keyring = ctx.keyring().await.map_err(Error::KeyRing)?;
        let stream_id = stream(license.id);
        let key = keyring
            .decrypt(Owner::new(&stream_id, KEY_FIELD), row.try_get("license_key")?)
            .map_err(|e| Error::Internal(format!("decrypting license '{}': {e:#}", license.id)))?;
        license.license_key = Some(RevealedKey::new(key));
    }
    let installations = client.query_typed(INSTALLATIONS, &[(&license.id, Type::UUID)]).await?;
    license.installations = Some(
        installations
            .iter()
            .map(|r| {
                Ok(Installation {
                    installation_id: r.try_get("installation_id")?,
                    name: r.try_get("name")?,
                    activated_at: r.try_get("activated_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                })
            })
            .collect::<Result<_, Error>>()?,
    );
    Ok(Some(license))
}
