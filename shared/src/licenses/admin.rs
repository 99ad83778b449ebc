//! The operator's side of licenses (DESIGN §6.6, admin): issue (generated or imported key),
//! show, look up, list, change terms or status, revoke, remove an installation. Each change
//! locks the license row, checks the version it read and appends events through
//! [`projections::record`] in one transaction; nothing is half-written on an error.
//! Lists and lookups never carry the key; only `show` (and the answer to `issue`) reveals it.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{Row, Transaction, error::SqlState, types::Type};
use uuid::Uuid;

use super::{
    DeactivationReason, Email, Entitlements, Error, LicenseEvent, LicenseKey, LicenseStatus, PROJECTOR, RevealedKey,
    events::{KEY_FIELD, double_option},
    stream,
};
use crate::{
    context::Context,
    crypto::{Owner, constant_time_eq},
    events::{EventStoreError, ExpectedVersion, Metadata},
    http::{Page, decode_cursor, encode_cursor, page_limit},
    projections,
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
const BY_ID: &str = concat!(include_str!("sql/license.sql"), include_str!("sql/license_where_id.sql"));
const BY_HASH: &str = concat!(include_str!("sql/license.sql"), include_str!("sql/license_where_hash.sql"));
const LIST: &str = concat!(include_str!("sql/license.sql"), include_str!("sql/license_where_list.sql"));

fn license_from_row(row: &Row) -> Result<License, Error> {
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
        expired: row.try_get("expired")?,
        license_key: None,
        installations: None,
    })
}

// ---------------------------------------------------------------------------------------
// Admin commands
// ---------------------------------------------------------------------------------------

/// The body of `POST /v1/licenses`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLicense {
    /// Holder.
    pub email: Email,
    /// Limit of active installations (default 1).
    #[serde(default = "one")]
    pub max_installations: i32,
    /// End of validity; a past date is allowed (the license validates as `EXPIRED`).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Inactivity after which a slot may be taken over.
    #[serde(default)]
    pub max_inactive_days: Option<i32>,
    /// An existing key to import; one is generated when absent.
    #[serde(default)]
    pub license_key: Option<LicenseKey>,
    /// Operator's data (a JSON object).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// What the license grants (DESIGN §6.6a).
    #[serde(default)]
    pub entitlements: Option<Entitlements>,
}

fn one() -> i32 {
    1
}

const MAX_INSTALLATIONS: i32 = 100_000;
const MAX_INACTIVE_DAYS: i32 = 36_500;

fn check_max_installations(n: i32) -> Result<i32, Error> {
    if (1..=MAX_INSTALLATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(Error::invalid("max_installations", format!("max_installations must be 1 to {MAX_INSTALLATIONS}")))
    }
}

fn check_inactive_days(n: Option<i32>) -> Result<Option<i32>, Error> {
    match n {
        Some(d) if !(1..=MAX_INACTIVE_DAYS).contains(&d) => Err(Error::invalid(
            "max_inactive_days",
            format!("max_inactive_days must be 1 to {MAX_INACTIVE_DAYS}, or null"),
        )),
        other => Ok(other),
    }
}

fn check_metadata(m: Option<Value>) -> Result<Value, Error> {
    match m {
        None | Some(Value::Null) => Ok(Value::Object(Default::default())),
        Some(Value::Object(o)) if serde_json::to_vec(&o).map_or(0, |v| v.len()) <= 16 * 1024 => Ok(Value::Object(o)),
        Some(Value::Object(_)) => Err(Error::invalid("metadata", "metadata must be at most 16 KiB")),
        Some(_) => Err(Error::invalid("metadata", "metadata must be a JSON object")),
    }
}

fn is_unique_violation(e: &EventStoreError) -> bool {
    matches!(e, EventStoreError::Db(db) if db.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

pub(super) async fn pepper_hash(ctx: &Context, key: &LicenseKey) -> Result<[u8; 32], Error> {
    Ok(key.lookup_hash(&*ctx.license_key_pepper().await?))
}

/// What [`issue`] needs beyond the request (imports carry their own history).
#[derive(Debug)]
pub(crate) struct Issue {
    pub email: Email,
    pub max_installations: i32,
    pub max_inactive_days: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub key: LicenseKey,
    pub metadata: Value,
    pub entitlements: Entitlements,
    pub created_at: DateTime<Utc>,
    pub source: &'static str,
    pub status: LicenseStatus,
}

const KEY_TAKEN: &str = include_str!("sql/key_taken.sql");

/// Appends `LicenseIssued` (and a status event for imported suspended/revoked licenses) in
/// one transaction; `license_key_exists` when the key is already known.
pub(crate) async fn issue_license(ctx: &Context, issue: Issue, metadata: &Metadata) -> Result<Uuid, Error> {
    let keyring = ctx.keyring().await?;
    let hash = pepper_hash(ctx, &issue.key).await?;
    let id = Uuid::now_v7();
    let stream_id = stream(id);
    let mut events = vec![LicenseEvent::LicenseIssued {
        id,
        key_hash: hex::encode(hash),
        license_key: keyring.encrypt(Owner::new(&stream_id, KEY_FIELD), issue.key.expose()),
        email: issue.email.into(),
        max_installations: issue.max_installations,
        max_inactive_days: issue.max_inactive_days,
        expires_at: issue.expires_at,
        metadata: issue.metadata,
        entitlements: issue.entitlements.into(),
        created_at: issue.created_at,
        source: issue.source.to_owned(),
    }];
    match issue.status {
        LicenseStatus::Active => {}
        LicenseStatus::Suspended => events.push(LicenseEvent::LicenseSuspended { id }),
        LicenseStatus::Revoked => events.push(LicenseEvent::LicenseRevoked { id }),
    }
    let mut client = ctx.db().get().await?;
    let tx = client.transaction().await?;
    let hash_param = hash.as_slice();
    if !tx.query_typed(KEY_TAKEN, &[(&hash_param, Type::BYTEA)]).await?.is_empty() {
        return Err(Error::KeyExists);
    }
    match projections::record(&tx, &PROJECTOR, &stream_id, ExpectedVersion::NoStream, &events, metadata).await {
        Ok(_) => {}
        // A concurrent import of the same key got there first.
        Err(e) if is_unique_violation(&e) => return Err(Error::KeyExists),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(id)
}

/// Issues a license (`POST /v1/licenses`); the answer carries the key.
pub async fn issue(ctx: &Context, new: NewLicense, metadata: &Metadata) -> Result<License, Error> {
    let max_installations = check_max_installations(new.max_installations)?;
    let max_inactive_days = check_inactive_days(new.max_inactive_days)?;
    let meta = check_metadata(new.metadata)?;
    let key = new.license_key.unwrap_or_else(LicenseKey::generate);
    let issue = Issue {
        email: new.email,
        max_installations,
        max_inactive_days,
        expires_at: new.expires_at,
        key: key.clone(),
        metadata: meta,
        entitlements: new.entitlements.unwrap_or_default(),
        created_at: Utc::now(),
        source: "api",
        status: LicenseStatus::Active,
    };
    let id = issue_license(ctx, issue, metadata).await?;
    let mut license = fetch(ctx, Find::Id(id), false).await?.ok_or(Error::NotFound(id))?;
    license.license_key = Some(RevealedKey::new(SecretString::from(key.expose().to_owned())));
    Ok(license)
}

enum Find {
    Id(Uuid),
    Hash([u8; 32]),
}

const INSTALLATIONS: &str = include_str!("sql/installations.sql");

async fn fetch(ctx: &Context, find: Find, reveal: bool) -> Result<Option<License>, Error> {
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
        let keyring = ctx.keyring().await?;
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

/// One license with its installations and, revealed, its key (`GET /v1/licenses/{id}`).
pub async fn show(ctx: &Context, id: Uuid) -> Result<License, Error> {
    fetch(ctx, Find::Id(id), true).await?.ok_or(Error::NotFound(id))
}

/// The body of `POST /v1/licenses/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The key to find. A key with characters no key has is looked up like any other and not
    /// found (404), as on the public checks; only an empty or over-long one is a 400.
    #[serde(deserialize_with = "LicenseKey::deserialize_presented")]
    pub license_key: LicenseKey,
}

/// The license a key belongs to, with installations but without the key.
pub async fn lookup(ctx: &Context, key: &LicenseKey) -> Result<License, Error> {
    let hash = pepper_hash(ctx, key).await?;
    fetch(ctx, Find::Hash(hash), false).await?.ok_or(Error::KeyNotFound)
}

/// Filters of `GET /v1/licenses`.
#[derive(Debug, Default, Deserialize)]
pub struct ListFilter {
    /// Holder (case-insensitive, exact).
    pub email: Option<String>,
    /// `active`, `suspended` or `revoked`.
    pub status: Option<LicenseStatus>,
    /// Page size.
    pub limit: Option<i64>,
    /// Where the page starts.
    pub cursor: Option<String>,
}

/// Licenses, newest first, never with their keys.
pub async fn list(ctx: &Context, filter: ListFilter) -> Result<Page<License>, Error> {
    let limit = page_limit(filter.limit).map_err(|e| Error::invalid("limit", e.detail))?;
    let after: Option<Uuid> =
        filter.cursor.as_deref().map(decode_cursor).transpose().map_err(|e| Error::invalid("cursor", e.detail))?;
    let email = filter.email.as_deref().map(str::trim);
    let status = filter.status.map(LicenseStatus::as_str);
    let fetch = limit + 1;
    let rows = ctx
        .db()
        .query(LIST, &[(&email, Type::TEXT), (&status, Type::TEXT), (&after, Type::UUID), (&fetch, Type::INT8)])
        .await?;
    let mut items: Vec<License> = rows.iter().map(license_from_row).collect::<Result<_, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&items.last().map(|l| l.id))
    });
    Ok(Page { items, next_cursor })
}

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

const LOCK_BY_ID: &str = include_str!("sql/lock_by_id.sql");

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

const INSTALLATION: &str = include_str!("sql/installation.sql");

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
