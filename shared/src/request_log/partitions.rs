//! Monthly partitions of `request_log`: created ahead of time, dropped whole after the
//! retention period (DESIGN §6.7). Run by the `request-log` function's daily schedule.
//!
//! Rules that must stay true:
//! - retention never deletes log rows one by one: a month's partition is dropped when its
//!   newest possible row is older than `REQUEST_LOG_RETENTION_DAYS`;
//! - the default partition only holds rows beyond the creation horizon: rows that landed
//!   there (before the first upkeep, or with an odd timestamp) are moved into their month's
//!   partition when it is created, because PostgreSQL refuses to create a partition whose
//!   range still has rows in the default partition. Months already past retention are
//!   created and dropped the same way, so old rows never pile up in the default partition;
//! - dedup keys live as long as the partitions their records could be in;
//! - one upkeep at a time (transaction-scoped advisory lock), all in one transaction, with
//!   a lock timeout so that it never queues behind a long query while blocking ingest.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;

use crate::db::{Db, DbError};

/// Months created ahead of the current one.
pub const MONTHS_AHEAD: u32 = 3;

/// What one upkeep did.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct UpkeepReport {
    /// Partitions created, by name.
    pub created: Vec<String>,
    /// Partitions dropped, by name.
    pub dropped: Vec<String>,
    /// Rows moved out of the default partition into a new month's partition.
    pub moved_rows: u64,
    /// Dedup keys of records older than every kept partition, deleted.
    pub deleted_keys: u64,
    /// The start of the oldest month kept; every older partition is gone.
    pub retained_from: DateTime<Utc>,
}

/// The first instant of `date`'s month, UTC.
fn month_start(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

fn add_months(month: NaiveDate, n: i32) -> NaiveDate {
    let index = month.year() * 12 + month.month0() as i32 + n;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).unwrap_or(month)
}

fn at_midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The partition of `month`: `request_log_y2026m11`.
pub fn partition_name(month: NaiveDate) -> String {
    format!("request_log_y{:04}m{:02}", month.year(), month.month())
}

fn parse_partition_name(name: &str) -> Option<NaiveDate> {
    let rest = name.strip_prefix("request_log_y")?;
    let (year, month) = rest.split_once('m')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

const PARTITIONS: &str = "
SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'request_log'::regclass";
const CREATE_PARTITION: &str = "SELECT request_log_create_partition($1, $2, $3)";
const DROP_PARTITION: &str = "SELECT request_log_drop_partition($1)";
const DEFAULT_MONTHS: &str = "SELECT DISTINCT date_trunc('month', occurred_at, 'UTC')::date FROM request_log_default";
const DELETE_KEYS: &str =
    "WITH gone AS (DELETE FROM request_log_keys WHERE occurred_at < $1 RETURNING 1) SELECT count(*) FROM gone";

/// Creates the partitions of this month and the next [`MONTHS_AHEAD`], moves rows out of
/// the default partition, drops partitions wholly older than `retention_days` before `now`,
/// and forgets the dedup keys of dropped months.
pub async fn upkeep(db: &Db, now: DateTime<Utc>, retention_days: u32) -> Result<UpkeepReport, DbError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('keyledger.request_log.upkeep')); SET LOCAL lock_timeout = '10s'",
    )
    .await?;

    let this_month = month_start(now.date_naive());
    let horizon = add_months(this_month, MONTHS_AHEAD as i32 + 1);
    let cutoff = now - Duration::days(i64::from(retention_days));
    // Months before this one are wholly older than the cut-off.
    let keep_from = month_start(cutoff.date_naive());

    let existing: BTreeSet<NaiveDate> =
        tx.query_typed(PARTITIONS, &[]).await?.iter().filter_map(|r| parse_partition_name(r.get(0))).collect();
    let in_default: BTreeSet<NaiveDate> =
        tx.query_typed(DEFAULT_MONTHS, &[]).await?.iter().map(|r| r.get::<_, NaiveDate>(0)).collect();

    let mut wanted: BTreeSet<NaiveDate> = (0..=MONTHS_AHEAD as i32).map(|n| add_months(this_month, n)).collect();
    wanted.extend(in_default.iter().copied().filter(|m| *m < horizon));

    let mut report = UpkeepReport { retained_from: at_midnight(keep_from), ..Default::default() };
    for month in wanted.difference(&existing) {
        let name = partition_name(*month);
        let (from, to) = (at_midnight(*month), at_midnight(add_months(*month, 1)));
        // The DDL runs in a function owned by the schema owner: this function's database
        // role may not create or drop tables itself (shared::roles).
        let moved: Option<i64> = tx
            .query_typed(CREATE_PARTITION, &[(&name, Type::TEXT), (&from, Type::TIMESTAMPTZ), (&to, Type::TIMESTAMPTZ)])
            .await?
            .first()
            .and_then(|r| r.get(0));
        report.moved_rows += moved.unwrap_or(0) as u64;
        report.created.push(name);
    }

    let present: BTreeSet<NaiveDate> = existing.union(&wanted).copied().collect();
    for month in present.iter().filter(|m| **m < keep_from) {
        let name = partition_name(*month);
        tx.query_typed(DROP_PARTITION, &[(&name, Type::TEXT)]).await?;
        report.dropped.push(name);
    }
    let keep_from_at = at_midnight(keep_from);
    let deleted = tx.query_typed(DELETE_KEYS, &[(&keep_from_at, Type::TIMESTAMPTZ)]).await?;
    report.deleted_keys = deleted.first().map_or(0, |r| r.get::<_, i64>(0)) as u64;
    tx.commit().await?;
    tracing::info!(
        created = ?report.created,
        dropped = ?report.dropped,
        moved_rows = report.moved_rows,
        deleted_keys = report.deleted_keys,
        "request log partitions kept up"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_years() {
        let nov = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(add_months(nov, 3), NaiveDate::from_ymd_opt(2027, 2, 1).unwrap());
        assert_eq!(add_months(nov, -11), NaiveDate::from_ymd_opt(2025, 12, 1).unwrap());
        assert_eq!(partition_name(add_months(nov, 2)), "request_log_y2027m01");
        assert_eq!(parse_partition_name("request_log_y2027m01"), Some(add_months(nov, 2)));
        assert_eq!(parse_partition_name("request_log_default"), None);
    }
}
