//! Issuing a license: a generated key from the API, or an existing one (API import or the
//! SQLite import). The key is checked against the lookup hash in the same transaction that
//! appends `LicenseIssued`, and a concurrent import of the same key is `KeyExists`.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::{error::SqlState, types::Type};
use uuid::Uuid;

use super::{Find, License, check_inactive_days, check_max_installations, check_metadata, fetch, pepper_hash};
use crate::{
    context::Context,
    crypto::Owner,
    events::{EventStoreError, ExpectedVersion, Metadata},
    licenses::{
        Email, Entitlements, Error, LicenseEvent, LicenseKey, LicenseStatus, PROJECTOR, RevealedKey, events::KEY_FIELD,
        stream,
    },
    projections,
};

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

fn is_unique_violation(e: &EventStoreError) -> bool {
    matches!(e, EventStoreError::Db(db) if db.code() == Some(&SqlState::UNIQUE_VIOLATION))
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

const KEY_TAKEN: &str = include_str!("../sql/key_taken.sql");

/// Appends `LicenseIssued` (and a status event for imported suspended/revoked licenses) in
/// one transaction; `license_key_exists` when the key is already known.
pub(crate) async fn issue_license(ctx: &Context, issue: Issue, metadata: &Metadata) -> Result<Uuid, Error> {
    let keyring = ctx.keyring().await.map_err(Error::KeyRing)?;
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
