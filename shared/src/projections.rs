//! The projections: which stream kind updates which tables, appending with projection in
//! one transaction, and the replay that rebuilds every projection from the log and
//! compares it with the live tables.
//!
//! Each domain owns its projection and registers it as a [`Projector`]; this module never
//! names a domain (so nothing imports back up). Projection SQL uses unqualified table names,
//! so that replay can run the very same code against temporary scratch tables (which shadow
//! the real ones inside its transaction).

use futures::future::BoxFuture;
use serde::Serialize;
use tokio_postgres::{
    IsolationLevel, Row, Transaction,
    types::{ToSql, Type},
};

use crate::{
    db::{Db, DbError},
    events::{self, EventStoreError, ExpectedVersion, Metadata, RecordedEvent},
};

/// A projection function: applies one recorded event of its stream kind to its tables.
pub type ProjectFn =
    for<'a, 'b> fn(&'a Transaction<'b>, &'a RecordedEvent) -> BoxFuture<'a, Result<(), EventStoreError>>;

/// One domain's projection, registered by stream kind (the stream id prefix before `-`).
#[derive(Clone, Copy)]
pub struct Projector {
    /// Stream id prefix, e.g. `"license"` for `license-<uuid>`.
    pub kind: &'static str,
    /// Applies one event of that stream kind.
    pub project: ProjectFn,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A table rebuilt from the log.
#[derive(Debug, Clone, Copy)]
pub struct ProjectionTable {
    /// Table name.
    pub name: &'static str,
    /// Columns that identify a row (reported on a difference).
    pub key: &'static str,
    /// Columns that are observations, not derived from events, so replay ignores them.
    pub ignore: &'static [&'static str],
}

/// Every projection table, parents before children.
pub const TABLES: &[ProjectionTable] = &[
    ProjectionTable { name: "api_keys", key: "id", ignore: &[] },
    ProjectionTable { name: "licenses", key: "id", ignore: &[] },
    // last_seen_at is an observation updated in place by every validation (DESIGN §4.2).
    ProjectionTable { name: "installations", key: "license_id, installation_id", ignore: &["last_seen_at"] },
    ProjectionTable { name: "clients", key: "id", ignore: &[] },
    ProjectionTable { name: "connections", key: "connection_id", ignore: &[] },
];

/// Applies one recorded event with the projector registered for its stream kind.
pub async fn apply(
    projectors: &[Projector],
    tx: &Transaction<'_>,
    event: &RecordedEvent,
) -> Result<(), EventStoreError> {
    let kind = event.stream_id.split_once('-').map(|(kind, _)| kind);
    match projectors.iter().find(|p| Some(p.kind) == kind) {
        Some(p) => (p.project)(tx, event).await,
        None => Err(EventStoreError::Payload(format!("no projection for stream '{}'", event.stream_id))),
    }
}

/// Appends `events` to `stream_id` and updates the owning domain's projection (`projector`),
/// in the caller's transaction.
pub async fn record<E: Serialize>(
    tx: &Transaction<'_>,
    projector: &Projector,
    stream_id: &str,
    expected: ExpectedVersion,
    events: &[E],
    metadata: &Metadata,
) -> Result<Vec<RecordedEvent>, EventStoreError> {
    let recorded = events::append(tx, stream_id, expected, events, metadata).await?;
    for event in &recorded {
        apply(std::slice::from_ref(projector), tx, event).await?;
    }
    Ok(recorded)
}

/// One change of an event-sourced resource, the shape every update has: lock the resource's
/// projection row (`lock_sql` ends in `FOR UPDATE` and selects a `version` column), let
/// `decide` turn the row (or its absence) into events or refuse, record them against that
/// version with `projector`, commit. Nothing is written when `decide` refuses or returns no
/// events. The lock makes concurrent changes queue instead of failing; the version check
/// still catches a writer that did not lock.
pub async fn update<E, Err>(
    db: &Db,
    projector: &Projector,
    stream_id: &str,
    lock_sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    metadata: &Metadata,
    decide: impl FnOnce(Option<&Row>) -> Result<Vec<E>, Err>,
) -> Result<Vec<RecordedEvent>, Err>
where
    E: Serialize,
    Err: From<DbError> + From<EventStoreError>,
{
    change(db, projector, stream_id, Some((lock_sql, params)), metadata, decide).await
}

/// Statement parameters with their types, as `query_typed` takes them.
type Params<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

async fn change<E, Err>(
    db: &Db,
    projector: &Projector,
    stream_id: &str,
    lock: Option<(&str, Params<'_>)>,
    metadata: &Metadata,
    decide: impl FnOnce(Option<&Row>) -> Result<Vec<E>, Err>,
) -> Result<Vec<RecordedEvent>, Err>
where
    E: Serialize,
    Err: From<DbError> + From<EventStoreError>,
{
    let mut client = db.get().await?;
    let tx = client.transaction().await.map_err(DbError::Query)?;
    let rows = match lock {
        Some((sql, params)) => tx.query_typed(sql, params).await.map_err(DbError::Query)?,
        None => Vec::new(),
    };
    let row = rows.first();
    let version = row.map(|r| r.get::<_, i32>("version"));
    let events = decide(row)?;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
    let recorded = record(&tx, projector, stream_id, expected, &events, metadata).await?;
    tx.commit().await.map_err(DbError::Query)?;
    Ok(recorded)
}

/// Appends `events` to a new stream and projects them, in a transaction of its own.
pub async fn create<E, Err>(
    db: &Db,
    projector: &Projector,
    stream_id: &str,
    events: Vec<E>,
    metadata: &Metadata,
) -> Result<Vec<RecordedEvent>, Err>
where
    E: Serialize,
    Err: From<DbError> + From<EventStoreError>,
{
    // No row to lock: the stream must not exist (`NoStream`), which the append checks.
    change(db, projector, stream_id, None, metadata, |_| Ok(events)).await
}

/// How one table compares after a replay.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TableReport {
    /// Table name.
    pub table: String,
    /// Rows in the live table.
    pub live_rows: i64,
    /// Rows rebuilt from the log.
    pub rebuilt_rows: i64,
    /// Keys of live rows that the log does not produce (or produces differently).
    pub only_live: Vec<String>,
    /// Keys of rebuilt rows missing from (or different in) the live table.
    pub only_rebuilt: Vec<String>,
    /// Sealed columns whose value could not be decrypted on one side (`table.column key:
    /// key id`), when the replay compares plaintexts ([`replay_with_ring`]): the ring lacks
    /// a key that the log or the live table still needs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undecryptable: Vec<String>,
}

/// The outcome of a replay.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    /// Events replayed.
    pub events: i64,
    /// Per-table comparison.
    pub tables: Vec<TableReport>,
}

impl ReplayReport {
    /// True when every projection equals its rebuild.
    pub fn is_clean(&self) -> bool {
        self.tables.iter().all(|t| t.only_live.is_empty() && t.only_rebuilt.is_empty() && t.undecryptable.is_empty())
    }
}

const SAMPLE: i64 = 20;

/// Rebuilds every projection from the log into scratch tables and reports differences.
/// Runs in one repeatable-read transaction (the log and the projections are compared at
/// the same snapshot) that is rolled back: nothing live is touched. `projectors` is every
/// domain's registration (the caller builds the table).
pub async fn replay(
    client: &mut tokio_postgres::Client,
    projectors: &[Projector],
) -> Result<ReplayReport, EventStoreError> {
    replay_with_ring(client, projectors, None).await
}

/// [`replay`] that compares sealed columns ([`crate::rekey::SEALED`]) by their plaintexts
/// under `ring`, not as text: after `keyledger rekey` the live ciphertexts are under the
/// current key while the log's are under older ones, and both must decrypt to the same
/// value. A ciphertext the ring cannot open is reported (`undecryptable`): the proof that a
/// key may not leave the ring yet.
pub async fn replay_with_ring(
    client: &mut tokio_postgres::Client,
    projectors: &[Projector],
    ring: Option<&crate::crypto::KeyRing>,
) -> Result<ReplayReport, EventStoreError> {
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).start().await?;
    for table in TABLES {
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE {0} (LIKE public.{0} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES) ON COMMIT DROP",
            table.name
        ))
        .await?;
    }
    // Foreign keys are not copied by LIKE, so children may be filled in any order.
    let mut position = 0;
    let mut count = 0;
    loop {
        let batch = events::read_all(&tx, position, 1000).await?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        for event in &batch {
            apply(projectors, &tx, event).await?;
            count += 1;
        }
    }
    let mut tables = Vec::new();
    for table in TABLES {
        let mut skip: Vec<&str> = table.ignore.to_vec();
        if ring.is_some() {
            skip.extend(crate::rekey::sealed_columns(table.name).map(|s| s.column));
        }
        let columns: Vec<String> = tx
            .query(
                "SELECT quote_ident(column_name) FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 AND NOT (column_name = ANY($2))
                 ORDER BY ordinal_position",
                &[&table.name, &skip],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let cols = columns.join(", ");
        let (name, key) = (table.name, table.key);
        let diff = |a: &str, b: &str| {
            format!(
                "SELECT ({key})::text FROM (SELECT {cols} FROM {a}.{name} EXCEPT ALL SELECT {cols} FROM {b}.{name}) d ORDER BY 1 LIMIT {SAMPLE}"
            )
        };
        let keys = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
        let mut report = TableReport {
            table: name.to_owned(),
            live_rows: tx.query_one(&format!("SELECT count(*) FROM public.{name}"), &[]).await?.get(0),
            rebuilt_rows: tx.query_one(&format!("SELECT count(*) FROM pg_temp.{name}"), &[]).await?.get(0),
            only_live: keys(tx.query(&diff("public", "pg_temp"), &[]).await?),
            only_rebuilt: keys(tx.query(&diff("pg_temp", "public"), &[]).await?),
            undecryptable: Vec::new(),
        };
        if let Some(ring) = ring {
            compare_sealed(&tx, ring, name, &mut report).await?;
        }
        tables.push(report);
    }
    tx.rollback().await?;
    Ok(ReplayReport { events: count, tables })
}

/// Compares each sealed column of `table` by plaintext, row by row (rows in both tables).
async fn compare_sealed(
    tx: &tokio_postgres::Transaction<'_>,
    ring: &crate::crypto::KeyRing,
    table: &str,
    report: &mut TableReport,
) -> Result<(), EventStoreError> {
    use secrecy::ExposeSecret;
    for sealed in crate::rekey::sealed_columns(table) {
        let (key, col, owner) = (sealed.key, sealed.column, sealed.owner);
        let rows = tx
            .query(
                &format!(
                    "SELECT (l.{key})::text AS key, ({owner})::text AS stream, l.{col} AS live, r.{col} AS rebuilt
                     FROM public.{table} l
                     JOIN pg_temp.{table} r USING ({key})"
                ),
                &[],
            )
            .await?;
        for row in rows {
            let (id, stream): (String, String) = (row.get("key"), row.get("stream"));
            let (live, rebuilt): (Option<String>, Option<String>) = (row.get("live"), row.get("rebuilt"));
            let owner = crate::crypto::Owner::new(&stream, sealed.field);
            let open = |v: &Option<String>| -> Result<Option<String>, String> {
                v.as_deref()
                    .map(|c| {
                        ring.decrypt(owner, c)
                            .map(|p| p.expose_secret().to_owned())
                            .map_err(|_| crate::crypto::KeyRing::key_id_of(c).unwrap_or("?").to_owned())
                    })
                    .transpose()
            };
            match (open(&live), open(&rebuilt)) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(_), Ok(_)) => {
                    report.only_live.push(id.clone());
                    report.only_rebuilt.push(id);
                }
                (Err(kid), _) | (_, Err(kid)) => report.undecryptable.push(format!("{table}.{col} {id}: {kid}")),
            }
        }
    }
    Ok(())
}
