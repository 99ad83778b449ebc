//! `GET /v1/requests/stats` (DESIGN §6.10): requests, 4xx, 5xx and p50/p95 duration per time
//! bucket, for the console's charts.
//!
//! Answered by ONE statement over the partitioned table, bucket by bucket: the buckets of the
//! range come from `generate_series`, and for each one an index-only range scan of
//! `request_log_stats` `(occurred_at) INCLUDE (status_code, duration_ms)` or, with a service,
//! `request_log_service_stats` (migration 0006; run-time pruning visits only the partition
//! that holds the bucket) feeds one aggregate: the counts and `percentile_cont`. So no step
//! sorts or groups more than one bucket's records (grouping the whole range by `date_trunc`
//! sorted all of it: a million records for 30 days, spilling to disk). A bucket is
//! `[start, start + length)` with starts on UTC boundaries, exactly what
//! `date_trunc(unit, occurred_at, 'UTC')` groups (UTC minutes, hours and days have fixed
//! lengths). Only buckets with records are returned, oldest first.
//!
//! The statement runs in its own transaction with two transaction-local settings
//! (`set_config(.., true)`: no session state, nothing for a connection pooler to pin): JIT
//! off — the planner cannot know how many buckets `generate_series` yields, so its estimate
//! crosses `jit_above_cost` and compiling would cost more than the whole answer — and
//! [`WORK_MEM`] for the sort inside `percentile_cont`, so a busy bucket stays in memory.
//!
//! The bucket defaults from the range (see [`Bucket::for_range`]): up to 6 hours → minute,
//! up to 14 days → hour, longer → day; a range that would need more than [`MAX_BUCKETS`]
//! buckets of the chosen size is refused (400 naming `bucket`), so no request can make the
//! database group an unbounded number of rows into an unbounded number of groups.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{ToSql, Type};

use super::{Error, parse_time, redact};
use crate::db::{Db, DbError};

/// Most buckets one answer may hold (a day of minutes).
pub const MAX_BUCKETS: i64 = 1440;
/// The range when `from` and `to` are both absent.
pub const DEFAULT_RANGE_HOURS: i64 = 24;

/// `GET /v1/requests/stats` query parameters, as they arrive.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Exact service.
    pub service: Option<String>,
    /// Exact endpoint.
    pub endpoint: Option<String>,
    /// Inclusive lower bound (RFC 3339); `to` − 24 h when absent.
    pub from: Option<String>,
    /// Exclusive upper bound (RFC 3339); now when absent.
    pub to: Option<String>,
    /// `minute`, `hour` or `day`; chosen from the range when absent.
    pub bucket: Option<String>,
}

/// The size of a stats bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Bucket {
    /// Parses `minute`, `hour` or `day` (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "minute" => Some(Self::Minute),
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    /// The bucket a chart of `range` reads best in: at most a few hundred bars.
    pub fn for_range(range: Duration) -> Self {
        if range <= Duration::hours(6) {
            Self::Minute
        } else if range <= Duration::days(14) {
            Self::Hour
        } else {
            Self::Day
        }
    }

    /// `date_trunc`'s name of the unit.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The bucket's length as a PostgreSQL interval: fixed hours for a day, so that adding it
    /// never depends on the session's time zone (a UTC day is always 24 hours).
    pub fn interval(self) -> &'static str {
        match self {
            Self::Minute => "1 minute",
            Self::Hour => "1 hour",
            Self::Day => "24 hours",
        }
    }

    fn length(self) -> Duration {
        match self {
            Self::Minute => Duration::minutes(1),
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// How many buckets `[from, to)` touches, counting partial ones at both ends.
    pub fn count(self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let len = self.length().num_seconds();
        let first = from.timestamp().div_euclid(len);
        let last = (to.timestamp() - 1).div_euclid(len);
        last - first + 1
    }
}

/// One bucket of the answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatsItem {
    /// The bucket's first instant (UTC).
    pub start: DateTime<Utc>,
    /// Records in the bucket.
    pub count: i64,
    /// Of them with a 4xx status.
    pub client_errors: i64,
    /// Of them with a 5xx status.
    pub server_errors: i64,
    /// Median `duration_ms` (linear interpolation), null when no record has a duration.
    pub p50_ms: Option<f64>,
    /// 95th percentile `duration_ms`, likewise.
    pub p95_ms: Option<f64>,
}

/// The answer: `{"bucket": "hour", "items": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The bucket size used.
    pub bucket: Bucket,
    /// Buckets with records, oldest first.
    pub items: Vec<StatsItem>,
}

/// A validated stats query.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    /// Exact service.
    pub service: Option<String>,
    /// Exact endpoint, redacted like stored ones.
    pub endpoint: Option<String>,
    /// Inclusive.
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    /// Bucket size.
    pub bucket: Bucket,
}

fn text(name: &str, value: Option<String>) -> Result<Option<String>, Error> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else { return Ok(None) };
    if value.contains('\0') {
        return Err(Error::invalid(name, format!("{name} must not contain U+0000")));
    }
    if value.chars().count() > 2048 {
        return Err(Error::invalid(name, format!("{name} must be at most 2048 characters")));
    }
    Ok(Some(value))
}

fn time(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, Error> {
    text(name, value)?
        .map(|raw| {
            parse_time(&raw).ok_or_else(|| {
                Error::invalid(name, format!("{name} must be an RFC 3339 time, e.g. 2026-11-22T13:00:00Z"))
            })
        })
        .transpose()
}

impl StatsQuery {
    /// Validates `params`, with `now` standing in for a missing `to`.
    pub fn parse(params: StatsParams, now: DateTime<Utc>) -> Result<Self, Error> {
        let service = text("service", params.service)?;
        let endpoint = text("endpoint", params.endpoint)?.map(|e| redact::redact(&e));
        let to = time("to", params.to)?;
        let from = time("from", params.from)?;
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::hours(DEFAULT_RANGE_HOURS));
        if from >= to {
            return Err(Error::invalid("to", "to must be later than from"));
        }
        let bucket = match text("bucket", params.bucket)? {
            Some(raw) => Bucket::parse(&raw)
                .ok_or_else(|| Error::invalid("bucket", "bucket must be one of minute, hour, day"))?,
            None => Bucket::for_range(to - from),
        };
        if bucket.count(from, to) > MAX_BUCKETS {
            return Err(Error::invalid(
                "bucket",
                format!(
                    "this range needs more than {MAX_BUCKETS} buckets of one {}; choose a larger bucket or a shorter range",
                    bucket.unit()
                ),
            ));
        }
        Ok(Self { service, endpoint, from, to, bucket })
    }
}

/// `work_mem` for the stats statement: the sort inside `percentile_cont` holds one bucket's
/// durations (24 bytes each), so 16 MB keeps a bucket of about 700,000 records in memory.
/// Only one such sort is alive at a time (buckets are aggregated one after another).
pub const WORK_MEM: &str = "16MB";

/// Transaction-local settings of the stats statement (see the module documentation); `$1` is
/// [`WORK_MEM`].
pub const LOCAL_SETTINGS: &str = "SELECT set_config('jit', 'off', true), set_config('work_mem', $1, true)";

/// The SQL for a query with the filters given (so each combination is planned for its index).
/// `$1` is the `date_trunc` unit, `$2`/`$3` the range, `$4` the bucket's length (public for
/// the benchmark's `EXPLAIN`).
pub fn sql(service: bool, endpoint: bool) -> String {
    let mut conditions =
        vec!["occurred_at >= greatest(b.start, $2)", "occurred_at < least(b.start + $4::interval, $3)"];
    let mut n = 4;
    let (mut s, mut e) = (String::new(), String::new());
    if service {
        n += 1;
        s = format!("service = ${n}");
    }
    if endpoint {
        n += 1;
        e = format!("endpoint = ${n}");
    }
    conditions.extend([s.as_str(), e.as_str()].into_iter().filter(|c| !c.is_empty()));
    // `generate_series` includes its end: the last start is the last instant before `to`.
    format!(
        "SELECT b.start, s.count, s.client_errors, s.server_errors, s.p50_ms, s.p95_ms
         FROM generate_series(date_trunc($1, $2, 'UTC'), $3 - interval '1 microsecond', $4::interval) AS b (start)
         CROSS JOIN LATERAL (
             SELECT count(*) AS count,
                    count(*) FILTER (WHERE status_code BETWEEN 400 AND 499) AS client_errors,
                    count(*) FILTER (WHERE status_code >= 500) AS server_errors,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms
             FROM request_log
             WHERE {}
         ) AS s
         WHERE s.count > 0
         ORDER BY b.start",
        conditions.join(" AND ")
    )
}

/// Runs `query`: its settings and the statement pipelined in one transaction.
pub async fn stats(db: &Db, query: &StatsQuery) -> Result<Stats, Error> {
    let (unit, interval) = (query.bucket.unit(), query.bucket.interval());
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
        (&unit, Type::TEXT),
        (&query.from, Type::TIMESTAMPTZ),
        (&query.to, Type::TIMESTAMPTZ),
        (&interval, Type::TEXT),
    ];
    if let Some(service) = &query.service {
        params.push((service, Type::TEXT));
    }
    if let Some(endpoint) = &query.endpoint {
        params.push((endpoint, Type::TEXT));
    }
    let sql = sql(query.service.is_some(), query.endpoint.is_some());
    let rows = run(db, &sql, &params).await?;
    let items = rows
        .iter()
        .map(|row| StatsItem {
            start: row.get("start"),
            count: row.get("count"),
            client_errors: row.get("client_errors"),
            server_errors: row.get("server_errors"),
            p50_ms: row.get("p50_ms"),
            p95_ms: row.get("p95_ms"),
        })
        .collect();
    Ok(Stats { bucket: query.bucket, items })
}

async fn run(db: &Db, sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    // Both sent before either answer is awaited: one round trip.
    let (_, rows) =
        tokio::try_join!(tx.query_typed(LOCAL_SETTINGS, &[(&WORK_MEM, Type::TEXT)]), tx.query_typed(sql, params))?;
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn params(from: &str, to: &str, bucket: Option<&str>) -> StatsParams {
        StatsParams {
            from: Some(from.into()),
            to: Some(to.into()),
            bucket: bucket.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn the_bucket_defaults_from_the_range() {
        let now = t("2026-11-22T13:00:00Z");
        let q = |from, to| StatsQuery::parse(params(from, to, None), now).unwrap().bucket;
        assert_eq!(q("2026-11-22T07:00:00Z", "2026-11-22T13:00:00Z"), Bucket::Minute);
        assert_eq!(q("2026-11-22T06:59:59Z", "2026-11-22T13:00:00Z"), Bucket::Hour);
        assert_eq!(q("2026-11-08T13:00:00Z", "2026-11-22T13:00:00Z"), Bucket::Hour);
        assert_eq!(q("2026-10-01T00:00:00Z", "2026-11-22T13:00:00Z"), Bucket::Day);
        let default = StatsQuery::parse(StatsParams::default(), now).unwrap();
        assert_eq!((default.from, default.to, default.bucket), (t("2026-11-21T13:00:00Z"), now, Bucket::Hour));
    }

    #[test]
    fn too_many_buckets_and_bad_values_name_their_field() {
        let now = t("2026-11-22T13:00:00Z");
        let field = |p| match StatsQuery::parse(p, now).unwrap_err() {
            Error::InvalidField { field, detail } => {
                assert!(!detail.contains("fortnight"), "{detail}");
                field
            }
            other => panic!("{other}"),
        };
        // A day of minutes is the most; one more minute is refused.
        assert!(StatsQuery::parse(params("2026-11-21T13:00:00Z", "2026-11-22T13:00:00Z", Some("minute")), now).is_ok());
        assert_eq!(field(params("2026-11-21T12:59:00Z", "2026-11-22T13:00:00Z", Some("minute"))), "bucket");
        assert_eq!(field(params("2020-01-01T00:00:00Z", "2026-11-22T13:00:00Z", Some("hour"))), "bucket");
        assert_eq!(field(params("2026-11-21T13:00:00Z", "2026-11-22T13:00:00Z", Some("fortnight"))), "bucket");
        assert_eq!(field(params("yesterday", "2026-11-22T13:00:00Z", None)), "from");
        assert_eq!(field(params("2026-11-22T13:00:00Z", "2026-11-22T13:00:00Z", None)), "to");
        let nul = StatsParams { service: Some("a\0".into()), ..Default::default() };
        assert_eq!(field(nul), "service");
    }

    #[test]
    fn bucket_counts_include_partial_buckets_at_both_ends() {
        let b = Bucket::Hour;
        assert_eq!(b.count(t("2026-11-22T10:00:00Z"), t("2026-11-22T11:00:00Z")), 1);
        assert_eq!(b.count(t("2026-11-22T10:30:00Z"), t("2026-11-22T11:30:00Z")), 2);
        assert_eq!(Bucket::Day.count(t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z")), 30);
    }
}
