//! Import from the old license service's SQLite file (seed 003): tables `licenses` (id,
//! email, license_key, expiry_date, created_at, status) and `installations` (id, email,
//! installation_id, activated_at, last_seen), where installations belong to a license by
//! e-mail.
//!
//! Owns the mapping of the old rows onto keyledger's events; every license and installation
//! goes through the same event-sourced path as the API (`LicenseIssued`,
//! `InstallationActivated`). Idempotent: a key that is already known and an installation the
//! license's stream already mentions are skipped, so a second run changes nothing. It never
//! prints or logs a key; rows it cannot take are counted with a reason, never half-imported.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rusqlite::types::Value as Sql;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{Email, Error, InstallationId, Issue, LicenseEvent, LicenseKey, LicenseStatus, PROJECTOR, stream};
use crate::{
    context::Context,
    db::DbError,
    events::{EventStoreError, ExpectedVersion, Metadata},
    projections,
};

/// Import failures that stop the whole run (a bad row is skipped, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The SQLite file could not be read.
    #[error("reading {path}: {source}")]
    Sqlite {
        /// The file.
        path: String,
        /// Why.
        source: rusqlite::Error,
    },
    /// keyledger refused (database unavailable, configuration missing).
    #[error(transparent)]
    License(#[from] Error),
}

impl From<DbError> for ImportError {
    fn from(e: DbError) -> Self {
        Self::License(Error::Db(e))
    }
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::License(e.into())
    }
}

impl From<EventStoreError> for ImportError {
    fn from(e: EventStoreError) -> Self {
        Self::License(Error::Store(e))
    }
}

/// Counts of one table's rows.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Rows read from the file.
    pub read: u64,
    /// Rows that became events now.
    pub imported: u64,
    /// Rows left alone (already imported, or unusable: see `skipped_because`).
    pub skipped: u64,
    /// Skipped rows by reason.
    pub skipped_because: BTreeMap<&'static str, u64>,
}

impl Counts {
    fn skip(&mut self, reason: &'static str) {
        self.skipped += 1;
        *self.skipped_because.entry(reason).or_default() += 1;
    }
}

/// The outcome of an import.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    /// The `licenses` table.
    pub licenses: Counts,
    /// The `installations` table.
    pub installations: Counts,
}

struct OldLicense {
    id: String,
    email: Option<String>,
    key: Option<String>,
    expiry: Sql,
    created_at: Sql,
    status: Option<String>,
}

struct OldInstallation {
    email: Option<String>,
    installation_id: Option<String>,
    activated_at: Sql,
    last_seen: Sql,
}

fn text(v: Sql) -> Option<String> {
    match v {
        Sql::Text(s) => Some(s),
        Sql::Integer(i) => Some(i.to_string()),
        Sql::Real(r) => Some(r.to_string()),
        Sql::Blob(b) => String::from_utf8(b).ok(),
        Sql::Null => None,
    }
}

/// The old service's tables, in SQLite's dialect, read by column name.
const OLD_LICENSES: &str = include_str!("sql/import_old_licenses.sql");
const OLD_INSTALLATIONS: &str = include_str!("sql/import_old_installations.sql");

fn read_file(path: &Path) -> Result<(Vec<OldLicense>, Vec<OldInstallation>), rusqlite::Error> {
    let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut licenses = Vec::new();
    let mut stmt = db.prepare(OLD_LICENSES)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        licenses.push(OldLicense {
            id: text(row.get("id")?).unwrap_or_default(),
            email: text(row.get("email")?),
            key: text(row.get("license_key")?),
            expiry: row.get("expiry_date")?,
            created_at: row.get("created_at")?,
            status: text(row.get("status")?),
        });
    }
    let mut installations = Vec::new();
    let mut stmt = db.prepare(OLD_INSTALLATIONS)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        installations.push(OldInstallation {
            email: text(row.get("email")?),
            installation_id: text(row.get("installation_id")?),
            activated_at: row.get("activated_at")?,
            last_seen: row.get("last_seen")?,
        });
    }
    Ok((licenses, installations))
}

/// A timestamp of the old service that is none of the forms it wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct BadTime;

/// Reads the old service's timestamps: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC, as
/// SQLite's `CURRENT_TIMESTAMP` writes them), a bare date, or Unix seconds.
/// `end_of_day` turns a bare date into the end of that day (an expiry date is inclusive).
pub fn parse_time(value: &Sql, end_of_day: bool) -> Result<Option<DateTime<Utc>>, BadTime> {
    let s = match value {
        Sql::Null => return Ok(None),
        Sql::Integer(i) => return Utc.timestamp_opt(*i, 0).single().map(Some).ok_or(BadTime),
        Sql::Real(r) => return Utc.timestamp_opt(r.trunc() as i64, 0).single().map(Some).ok_or(BadTime),
        Sql::Text(s) => s.trim(),
        Sql::Blob(_) => return Err(BadTime),
    };
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let day = if end_of_day { d.succ_opt().ok_or(BadTime)? } else { d };
        return Ok(Some(day.and_hms_opt(0, 0, 0).ok_or(BadTime)?.and_utc()));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Utc.timestamp_opt(secs, 0).single().map(Some).ok_or(BadTime);
    }
    Err(BadTime)
}

/// The old statuses onto keyledger's; `expired` stays active (its date says it).
fn map_status(status: Option<&str>) -> Option<LicenseStatus> {
    match status.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "active" | "valid" | "expired") => Some(LicenseStatus::Active),
        Some("suspended" | "inactive" | "disabled" | "paused") => Some(LicenseStatus::Suspended),
        Some("revoked" | "cancelled" | "canceled" | "deleted" | "banned") => Some(LicenseStatus::Revoked),
        Some(_) => None,
    }
}

const BY_HASH: &str = include_str!("sql/import_by_hash.sql");
const LOCK: &str = include_str!("sql/import_lock.sql");
const LAST_SEEN: &str = include_str!("sql/import_last_seen.sql");

/// Imports the SQLite file at `path`; `default_max_installations` is the slot limit of an
/// imported license (raised to the number of its installations in the file, so that no
/// imported installation is refused).
pub async fn import_sqlite(
    ctx: &Context,
    path: &Path,
    default_max_installations: i32,
    metadata: &Metadata,
) -> Result<ImportReport, ImportError> {
    let owned = path.to_owned();
    let (old_licenses, old_installations) = tokio::task::spawn_blocking(move || read_file(&owned))
        .await
        .map_err(|e| Error::Internal(format!("reading the SQLite file: {e}")))?
        .map_err(|source| ImportError::Sqlite { path: path.display().to_string(), source })?;
    let pepper = ctx.license_key_pepper().await.map_err(Error::Pepper)?;
    let mut report = ImportReport::default();

    let email_key = |e: &str| e.trim().to_lowercase();
    let mut per_email: HashMap<String, u64> = HashMap::new();
    for i in &old_installations {
        if let Some(e) = &i.email {
            *per_email.entry(email_key(e)).or_default() += 1;
        }
    }

    // e-mail → (created_at, license id, usable): installations go to the newest usable one.
    let mut owners: HashMap<String, Vec<(DateTime<Utc>, Uuid, bool)>> = HashMap::new();
    for old in old_licenses {
        report.licenses.read += 1;
        let Some(key) = old.key.as_deref().and_then(|k| LicenseKey::parse(k).ok()) else {
            report.licenses.skip("invalid_license_key");
            continue;
        };
        let Some(email) = old.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
            report.licenses.skip("invalid_email");
            continue;
        };
        let Some(status) = map_status(old.status.as_deref()) else {
            report.licenses.skip("unknown_status");
            continue;
        };
        let Ok(created_at) = parse_time(&old.created_at, false) else {
            report.licenses.skip("invalid_created_at");
            continue;
        };
        let Ok(mut expires_at) = parse_time(&old.expiry, true) else {
            report.licenses.skip("invalid_expiry_date");
            continue;
        };
        let created_at = created_at.unwrap_or_else(Utc::now);
        if expires_at.is_none()
            && old.status.as_deref().map(str::trim).is_some_and(|s| s.eq_ignore_ascii_case("expired"))
        {
            // Expired without a date: keep it expired from the moment of import.
            expires_at = Some(Utc::now());
        }
        let owner_key = email_key(email.as_str());
        let hash = key.lookup_hash(&pepper);
        let hash_param = hash.as_slice();
        let existing = ctx.db().query(BY_HASH, &[(&hash_param, Type::BYTEA)]).await?;
        if let Some(row) = existing.first() {
            let usable = row.try_get::<_, &str>("status")? != "revoked";
            owners.entry(owner_key).or_default().push((created_at, row.try_get("id")?, usable));
            report.licenses.skip("already_imported");
            continue;
        }
        let installs = per_email.get(&owner_key).copied().unwrap_or(0);
        let max_installations = i32::try_from(installs).unwrap_or(i32::MAX).max(default_max_installations).max(1);
        let issue = Issue {
            email,
            max_installations,
            max_inactive_days: None,
            expires_at,
            key,
            metadata: json!({"imported_from": "license-service", "legacy_id": old.id}),
            created_at,
            entitlements: Default::default(),
            source: "import",
            status,
        };
        match super::issue_license(ctx, issue, metadata).await {
            Ok(id) => {
                owners.entry(owner_key).or_default().push((created_at, id, status != LicenseStatus::Revoked));
                report.licenses.imported += 1;
            }
            Err(Error::KeyExists) => report.licenses.skip("already_imported"),
            Err(e) => return Err(e.into()),
        }
    }
    for candidates in owners.values_mut() {
        // Usable first, then newest.
        candidates.sort_by_key(|c| std::cmp::Reverse((c.2, c.0)));
    }

    for old in old_installations {
        report.installations.read += 1;
        let Some(owner) = old.email.as_deref().and_then(|e| owners.get(&email_key(e))).and_then(|c| c.first()) else {
            report.installations.skip("no_license_for_email");
            continue;
        };
        let license_id = owner.1;
        let Some(installation_id) = old.installation_id.as_deref().and_then(|i| InstallationId::parse(i).ok()) else {
            report.installations.skip("invalid_installation_id");
            continue;
        };
        let (Ok(activated_at), Ok(last_seen)) =
            (parse_time(&old.activated_at, false), parse_time(&old.last_seen, false))
        else {
            report.installations.skip("invalid_timestamp");
            continue;
        };
        let activated_at = activated_at.unwrap_or_else(Utc::now);
        let last_seen = last_seen.unwrap_or(activated_at).max(activated_at);

        let mut client = ctx.db().get().await?;
        let tx = client.transaction().await?;
        let row = tx.query_typed(LOCK, &[(&license_id, Type::UUID)]).await?;
        let Some(row) = row.first() else {
            report.installations.skip("no_license_for_email");
            continue;
        };
        let version: i32 = row.try_get("version")?;
        let max: i32 = row.try_get("max_installations")?;
        let used: i64 = row.try_get("used")?;
        if super::installation_known(&*tx, license_id, installation_id.as_str()).await? {
            report.installations.skip("already_imported");
            continue;
        }
        if used >= i64::from(max) {
            report.installations.skip("no_free_slot");
            continue;
        }
        let event = LicenseEvent::InstallationActivated {
            id: license_id,
            installation_id: installation_id.as_str().to_owned(),
            name: None,
            activated_at,
        };
        projections::record(&tx, &PROJECTOR, &stream(license_id), ExpectedVersion::Exact(version), &[event], metadata)
            .await?;
        // last_seen is an observation, kept in place like every validation does.
        let id_param = installation_id.as_str();
        tx.query_typed(
            LAST_SEEN,
            &[(&license_id, Type::UUID), (&id_param, Type::TEXT), (&last_seen, Type::TIMESTAMPTZ)],
        )
        .await?;
        tx.commit().await?;
        report.installations.imported += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_timestamps_are_read_in_every_form_the_old_service_wrote() {
        let t = |s: &str| parse_time(&Sql::Text(s.into()), false).unwrap().unwrap().to_rfc3339();
        assert_eq!(t("2025-03-04 05:06:07"), "2025-03-04T05:06:07+00:00");
        assert_eq!(t("2025-03-04T05:06:07.250"), "2025-03-04T05:06:07.250+00:00");
        assert_eq!(t("2025-03-04T05:06:07+02:00"), "2025-03-04T03:06:07+00:00");
        assert_eq!(t("2025-03-04"), "2025-03-04T00:00:00+00:00");
        let end = parse_time(&Sql::Text("2025-03-04".into()), true).unwrap().unwrap();
        assert_eq!(end.to_rfc3339(), "2025-03-05T00:00:00+00:00");
        assert_eq!(parse_time(&Sql::Integer(0), false).unwrap().unwrap().timestamp(), 0);
        assert_eq!(parse_time(&Sql::Null, false).unwrap(), None);
        assert_eq!(parse_time(&Sql::Text(" ".into()), false).unwrap(), None);
        assert!(parse_time(&Sql::Text("next tuesday".into()), false).is_err());
    }

    #[test]
    fn old_statuses_map_onto_ours() {
        assert_eq!(map_status(None), Some(LicenseStatus::Active));
        assert_eq!(map_status(Some("Expired")), Some(LicenseStatus::Active));
        assert_eq!(map_status(Some("suspended")), Some(LicenseStatus::Suspended));
        assert_eq!(map_status(Some("REVOKED")), Some(LicenseStatus::Revoked));
        assert_eq!(map_status(Some("weird")), None);
    }
}
