//! Key rotation's second half (`keyledger rekey`): every ciphertext in the projections
//! re-encrypted under the key ring's current key, so that the live state no longer needs an
//! old key.
//!
//! Owns the list of sealed columns (which table and column hold a ciphertext, and whose
//! stream it is bound to) and the rekey loop. Rules that must stay true:
//! - **batched and resumable**: rows go in key order, [`Options::batch_size`] (default
//!   [`BATCH`]) per transaction, each batch committed; a stopped run (killed, or ended by
//!   [`Options::max_batches`]) loses at most one batch of work, and the next run starts over
//!   and finds only what is left (rows under the current key are not selected);
//! - **idempotent**: a row under the current key is never rewritten;
//! - **safe while functions serve**: each row is written with compare-and-set
//!   (`WHERE column = <the ciphertext read>`), so a value a function wrote meanwhile (a
//!   refreshed token, under the current key already) is never overwritten; the row is
//!   counted as `changed_meanwhile`;
//! - **never a plaintext out**: values are decrypted into memory, sealed again and dropped.
//!
//! The event log is immutable and keeps its ciphertexts: replaying it puts old-key
//! ciphertexts back into rebuilt projections, which is why an old key stays in the ring
//! while any event holds one ([`Report::events_by_key`]; `keyledger replay --verify` decrypts
//! both sides of every sealed column and fails when a key is missing).

use std::{collections::BTreeMap, num::NonZeroU32};

use serde::Serialize;
use tokio_postgres::types::Type;

use crate::{
    context::Context,
    crypto::{KeyRing, Owner},
    db::DbError,
};

/// Rows re-encrypted per transaction unless told otherwise (`keyledger rekey --batch-size`).
pub const BATCH: NonZeroU32 = NonZeroU32::new(500).unwrap();

/// How one rekey run goes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Count what would be re-encrypted; write nothing.
    pub dry_run: bool,
    /// Rows per transaction (each batch is committed on its own).
    pub batch_size: NonZeroU32,
    /// Stop once this many batches are done (over all columns) and work is left; the next run
    /// resumes. `None`: run to the end.
    pub max_batches: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self { dry_run: false, batch_size: BATCH, max_batches: None }
    }
}

/// A projection column that holds a ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct Sealed {
    /// Table.
    pub table: &'static str,
    /// Column holding `v1:<key id>:…`.
    pub column: &'static str,
    /// The field name in the ciphertext's associated data (the owner's field).
    pub field: &'static str,
    /// The key column (one column, orderable as text).
    pub key: &'static str,
    /// SQL for the owning stream id the ciphertext is bound to (from the row's columns).
    pub owner: &'static str,
}

/// Every sealed column of the projections (and of `oauth_states`, which is no projection but
/// holds PKCE verifiers for ten minutes).
pub const SEALED: &[Sealed] = &[
    Sealed {
        table: "connections",
        column: "access_token",
        field: "access_token",
        key: "connection_id",
        owner: "'connection-' || connection_id",
    },
    Sealed {
        table: "connections",
        column: "refresh_token",
        field: "refresh_token",
        key: "connection_id",
        owner: "'connection-' || connection_id",
    },
    Sealed { table: "clients", column: "client_secret", field: "client_secret", key: "id", owner: "'client-' || id" },
    Sealed { table: "licenses", column: "license_key", field: "license_key", key: "id", owner: "'license-' || id" },
    Sealed {
        table: "oauth_states",
        column: "code_verifier",
        field: "code_verifier",
        key: "encode(state_hash, 'hex')",
        owner: "'oauth-state-' || encode(state_hash, 'hex')",
    },
];

/// The sealed columns of `table`.
pub fn sealed_columns(table: &str) -> impl Iterator<Item = &'static Sealed> + '_ {
    SEALED.iter().filter(move |s| s.table == table)
}

/// What rekey did to one column.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ColumnReport {
    /// Re-encrypted under the current key, by the key id they were under.
    pub rekeyed: BTreeMap<String, u64>,
    /// Already under the current key (left alone).
    pub current: u64,
    /// Changed by a function between the read and the write (left alone: the new value is
    /// under the current key already).
    pub changed_meanwhile: u64,
    /// Could not be decrypted, by key id (the ring lacks the key, or the value is damaged):
    /// left alone and reported; a clean run has none.
    pub failed: BTreeMap<String, u64>,
    /// Transactions that held rows (at most `batch_size` rows each).
    pub batches: u64,
}

/// What one rekey run did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The key everything was sealed under.
    pub current_key: String,
    /// Per `table.column`.
    pub columns: BTreeMap<String, ColumnReport>,
    /// Ciphertexts in the event log by key id (the log keeps them; a key stays in the ring
    /// while this names it).
    pub events_by_key: BTreeMap<String, i64>,
    /// True when nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// False when [`Options::max_batches`] stopped the run with work left: `columns` holds
    /// the columns reached so far, and another run carries on.
    pub complete: bool,
}

impl Report {
    /// True when no ciphertext failed to decrypt.
    pub fn is_clean(&self) -> bool {
        self.columns.values().all(|c| c.failed.is_empty())
    }
}

/// Why rekey stopped.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The key ring is not available.
    #[error("key ring: {0}")]
    KeyRing(String),
}

impl From<tokio_postgres::Error> for RekeyError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::from(e))
    }
}

/// Re-encrypts every sealed column under the ring's current key in batches of [`BATCH`]
/// (see the module doc); `dry_run` counts what would change and writes nothing.
pub async fn rekey(ctx: &Context, dry_run: bool) -> Result<Report, RekeyError> {
    rekey_with(ctx, Options { dry_run, ..Options::default() }).await
}

/// [`rekey`] with every knob: batch size and a limit on the batches of this run.
pub async fn rekey_with(ctx: &Context, options: Options) -> Result<Report, RekeyError> {
    let ring = ctx.keyring().await.map_err(|e| RekeyError::KeyRing(e.to_string()))?;
    let mut report = Report {
        current_key: ring.current_key_id().to_owned(),
        dry_run: options.dry_run,
        complete: true,
        ..Report::default()
    };
    let mut client = ctx.db().get().await?;
    let mut batches_left = options.max_batches;
    for sealed in SEALED {
        let (column, finished) = rekey_column(&mut client, &ring, sealed, options, &mut batches_left).await?;
        report.columns.insert(format!("{}.{}", sealed.table, sealed.column), column);
        if !finished {
            report.complete = false;
            break;
        }
    }
    report.events_by_key = events_by_key(&client).await?;
    Ok(report)
}

/// One column, batch by batch; false when `batches_left` ran out with rows still to do.
async fn rekey_column(
    client: &mut tokio_postgres::Client,
    ring: &KeyRing,
    s: &Sealed,
    options: Options,
    batches_left: &mut Option<u64>,
) -> Result<(ColumnReport, bool), RekeyError> {
    let dry_run = options.dry_run;
    let limit = i64::from(options.batch_size.get());
    let current = ring.current_key_id();
    let mut out = ColumnReport {
        current: client
            .query_one(
                &format!("SELECT count(*) FROM {} WHERE split_part({}, ':', 2) = $1", s.table, s.column),
                &[&current],
            )
            .await?
            .get::<_, i64>(0) as u64,
        ..ColumnReport::default()
    };
    let select = format!(
        "SELECT ({key})::text AS key, ({owner})::text AS owner, {col} AS stored FROM {table}
         WHERE {col} IS NOT NULL AND split_part({col}, ':', 2) <> $1 AND ({key})::text > $2
         ORDER BY ({key})::text LIMIT $3",
        key = s.key,
        owner = s.owner,
        col = s.column,
        table = s.table
    );
    let update = format!(
        "UPDATE {table} SET {col} = $1 WHERE ({key})::text = $2 AND {col} = $3",
        key = s.key,
        col = s.column,
        table = s.table
    );
    let mut after = String::new();
    loop {
        let tx = client.transaction().await?;
        let rows = tx.query(&select, &[&current, &after, &limit]).await?;
        let Some(last) = rows.last() else { break };
        // Checked once rows are known to be left, so that a run whose limit falls exactly at
        // the end of the work still reports itself complete.
        if *batches_left == Some(0) {
            return Ok((out, false));
        }
        if let Some(n) = batches_left.as_mut() {
            *n -= 1;
        }
        out.batches += 1;
        after = last.get("key");
        for row in &rows {
            let (key, owner, stored): (String, String, String) = (row.get("key"), row.get("owner"), row.get("stored"));
            let from = KeyRing::key_id_of(&stored).unwrap_or("?").to_owned();
            let owner = Owner::new(&owner, s.field);
            let Ok(plain) = ring.decrypt(owner, &stored) else {
                *out.failed.entry(from).or_default() += 1;
                continue;
            };
            if dry_run {
                *out.rekeyed.entry(from).or_default() += 1;
                continue;
            }
            let sealed = ring.encrypt(owner, secrecy::ExposeSecret::expose_secret(&plain));
            let written =
                tx.execute_typed(&update, &[(&sealed, Type::TEXT), (&key, Type::TEXT), (&stored, Type::TEXT)]).await?;
            if written == 1 {
                *out.rekeyed.entry(from).or_default() += 1;
            } else {
                out.changed_meanwhile += 1;
            }
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
    }
    Ok((out, true))
}

/// Ciphertexts (`v1:<key id>:`) in the event log's data, by key id.
async fn events_by_key(client: &tokio_postgres::Client) -> Result<BTreeMap<String, i64>, RekeyError> {
    let rows = client
        .query(
            "SELECT m[1] AS key_id, count(*) AS n FROM events, regexp_matches(data::text, '\"v1:([A-Za-z0-9_.-]+):', 'g') AS m
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get("key_id"), r.get("n"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sealed_column_names_its_owner_like_the_code_that_seals_it() {
        // The owners the domains use (connections::model::stream, clients::stream,
        // licenses::stream, the OAuth state owner): the SQL must build the same strings.
        let id = uuid::Uuid::nil();
        assert_eq!(crate::clients::stream(id), format!("client-{id}"));
        assert_eq!(crate::licenses::stream(id), format!("license-{id}"));
        let tables: Vec<&str> = SEALED.iter().map(|s| s.table).collect();
        for t in crate::projections::TABLES {
            let has_cipher = ["connections", "clients", "licenses"].contains(&t.name);
            assert_eq!(tables.contains(&t.name), has_cipher, "{}", t.name);
        }
        assert_eq!(sealed_columns("connections").count(), 2);
    }
}
