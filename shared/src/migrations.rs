//! Schema migrations (DESIGN §6.12): the embedded SQL files, their checksums, and applying
//! the pending ones under a transaction-scoped advisory lock.
//!
//! Owns the `schema_migrations` table. It never skips an applied file whose checksum
//! changed (that is an error), and it applies everything pending in one transaction, so a
//! failed deploy leaves the schema as it was.

use serde::Serialize;
use tokio_postgres::Client;

use crate::crypto::sha256;

/// One embedded migration file.
#[derive(Debug)]
pub struct Migration {
    /// The number before the first `_`.
    pub version: i32,
    /// The rest of the file name.
    pub name: &'static str,
    /// The SQL, applied as one batch.
    pub sql: &'static str,
}

impl Migration {
    /// Hex SHA-256 of the file's bytes.
    pub fn checksum(&self) -> String {
        hex::encode(sha256(self.sql.as_bytes()))
    }
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// SHA-256 over every migration's checksum: changes whenever any file does (the template
/// passes it to the custom resource so that CloudFormation re-runs `migrate`).
pub fn bundle_hash() -> String {
    let joined: String = MIGRATIONS.iter().map(|m| format!("{}:{}\n", m.version, m.checksum())).collect();
    hex::encode(sha256(joined.as_bytes()))
}

/// The highest embedded version.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A migration failure; the message is what a CloudFormation FAILED reason shows.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// An applied file was edited.
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the database, {embedded} in this build); add a new migration instead"
    )]
    Drift {
        /// The version.
        version: i32,
        /// The name.
        name: String,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of the embedded file.
        embedded: String,
    },
    /// A statement failed.
    #[error("migration {version} ({name}) failed: {message}")]
    Failed {
        /// The version.
        version: i32,
        /// The name.
        name: &'static str,
        /// The database's message.
        message: String,
    },
    /// The database failed outside a migration.
    #[error("database: {0}")]
    Db(String),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(db_message(&e))
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Where the schema stands.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    /// Highest applied version (0 for an empty database).
    pub schema_version: i32,
    /// Highest version this build knows.
    pub latest_version: i32,
    /// Applied versions.
    pub applied: Vec<i32>,
    /// Embedded versions not applied yet.
    pub pending: Vec<i32>,
    /// Applied versions this build does not know (a newer build ran here).
    pub unknown: Vec<i32>,
    /// Applied versions whose file changed since.
    pub drifted: Vec<i32>,
}

/// What `up` did.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UpReport {
    /// Versions applied by this call, in order.
    pub applied: Vec<i32>,
    /// The schema version afterwards.
    pub schema_version: i32,
}

/// How long one migration statement may run: minutes, not the functions' 10 s, so that an
/// index on a large table (`request_log`) does not fail the deploy. It stays under migrate's
/// 300 s Lambda timeout so the custom resource still answers FAILED in time.
pub const STATEMENT_TIMEOUT: &str = "270s";
/// How long a migration waits for a table lock before it fails (and the deploy rolls back):
/// a DDL waiting behind a long transaction would queue every function's queries behind it.
pub const LOCK_TIMEOUT: &str = "10s";

/// Arbitrary but fixed: the advisory lock that serialises concurrent `migrate` runs.
pub(crate) const LOCK_KEY: i64 = 0x6b65_796c_6564_6772; // "keyledgr"

const CREATE_TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer     NOT NULL
)";

async fn applied(client: &impl tokio_postgres::GenericClient) -> Result<Vec<(i32, String, String)>, MigrateError> {
    let exists: bool = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", &[])
        .await?
        .iter()
        .map(|r| (r.get("version"), r.get("name"), r.get("checksum")))
        .collect())
}

fn compare(applied: &[(i32, String, String)]) -> Status {
    let mut status = Status {
        schema_version: applied.iter().map(|a| a.0).max().unwrap_or(0),
        latest_version: latest_version(),
        applied: applied.iter().map(|a| a.0).collect(),
        pending: Vec::new(),
        unknown: Vec::new(),
        drifted: Vec::new(),
    };
    for m in MIGRATIONS {
        match applied.iter().find(|a| a.0 == m.version) {
            None => status.pending.push(m.version),
            Some((_, _, checksum)) if *checksum != m.checksum() => status.drifted.push(m.version),
            Some(_) => {}
        }
    }
    status.unknown = applied.iter().map(|a| a.0).filter(|v| !MIGRATIONS.iter().any(|m| m.version == *v)).collect();
    status
}

/// The schema's state compared with the embedded migrations.
pub async fn status(client: &Client) -> Result<Status, MigrateError> {
    Ok(compare(&applied(client).await?))
}

/// Applies every pending migration in one transaction under the advisory lock.
/// A changed applied file is an error and nothing is applied.
pub async fn up(client: &mut Client) -> Result<UpReport, MigrateError> {
    up_to(client, latest_version()).await
}

/// [`up`], applying the pending migrations up to `version` only (a schema as an older release
/// left it, for testing what a later migration does to existing rows).
pub async fn up_to(client: &mut Client, version: i32) -> Result<UpReport, MigrateError> {
    let tx = client.transaction().await?;
    // SET LOCAL: for this transaction only (migrate connects directly, never through the
    // proxy, and nothing of it outlives the commit).
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
    ))
    .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(CREATE_TABLE).await?;
    // Read after taking the lock: a concurrent run may just have applied everything.
    let done = applied(&tx).await?;
    let status = compare(&done);
    if let Some(version) = status.drifted.first() {
        let m = MIGRATIONS.iter().find(|m| m.version == *version).expect("drifted versions are embedded");
        let recorded = done.iter().find(|a| a.0 == *version).expect("drifted versions are applied");
        return Err(MigrateError::Drift {
            version: *version,
            name: m.name.to_owned(),
            applied: recorded.2.clone(),
            embedded: m.checksum(),
        });
    }
    if !status.unknown.is_empty() {
        tracing::warn!(unknown = ?status.unknown, "the database has migrations this build does not know");
    }
    let mut report = UpReport { applied: Vec::new(), schema_version: status.schema_version };
    for m in MIGRATIONS.iter().filter(|m| m.version <= version && status.pending.contains(&m.version)) {
        let started = std::time::Instant::now();
        tx.batch_execute(m.sql).await.map_err(|e| MigrateError::Failed {
            version: m.version,
            name: m.name,
            message: db_message(&e),
        })?;
        let ms = started.elapsed().as_millis() as i32;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &m.checksum(), &ms],
        )
        .await?;
        tracing::info!(version = m.version, name = m.name, duration_ms = ms, "applied migration");
        report.applied.push(m.version);
        report.schema_version = report.schema_version.max(m.version);
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
        assert!(latest_version() >= 1);
    }

    #[test]
    fn drift_and_pending_are_told_apart() {
        let first = &MIGRATIONS[0];
        let status =
            compare(&[(first.version, first.name.into(), "edited".into()), (999, "future".into(), "x".into())]);
        assert_eq!(status.drifted, vec![first.version]);
        assert_eq!(status.unknown, vec![999]);
        assert_eq!(status.pending.len(), MIGRATIONS.len() - 1);
    }
}
