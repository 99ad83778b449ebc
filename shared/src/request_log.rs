//! The request log (DESIGN §6.7): records of API calls that services (and keyledger itself)
//! make or serve, their validation, redaction, storage, queries and retention.
//!
//! Owns the `request_log` and `request_log_keys` tables. It never stores a body before it
//! has been redacted and truncated, never writes a batch in more than one statement (so a
//! batch is stored whole or not at all, in one round trip), and never deletes log rows one
//! by one for retention: whole monthly partitions are dropped ([`partitions`]).

pub mod partitions;
mod record;
pub mod redact;
pub mod stats;
mod store;

pub use record::{NewRecord, Record, parse_batch, parse_one, parse_time, record_id};
pub use store::{ListParams, RecordDetail, RecordSummary, get, insert, list};

pub(crate) use record::body_text;
pub(crate) use record::id_millis;

use crate::db::DbError;

/// What can go wrong with request-log input or storage; `http::map::request_log` answers it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field (`records[3].status_code`) is missing, of the wrong type or out of range.
    /// `detail` names the field and what it expects, never the value it refused.
    #[error("{detail}")]
    InvalidField {
        /// The field at fault (empty for the body as a whole).
        field: String,
        /// For people.
        detail: String,
    },
    /// The body is not JSON (or not UTF-8).
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is over [`MAX_BATCH_BYTES`].
    #[error("a request log body is at most {MAX_BATCH_BYTES} bytes")]
    BodyTooLarge,
    /// The batch holds more than [`MAX_BATCH_RECORDS`].
    #[error("a batch holds at most {MAX_BATCH_RECORDS} records, this one {0}")]
    TooManyRecords(usize),
    /// No record with that id.
    #[error("no request log record '{0}'")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Error {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidField { field: field.into(), detail: detail.into() }
    }
}

/// A refused page request names its field (`limit`, `cursor`), as any other bad field does.
impl From<crate::paging::Error> for Error {
    fn from(e: crate::paging::Error) -> Self {
        Self::invalid(e.field(), e.to_string())
    }
}

/// The `writer` of records that came through the SQS queue.
pub const SQS_WRITER: &str = "sqs";

/// The `writer` of records sent by the API key `actor` (`apikey:<uuid>` → the key's id);
/// dedup is per writer, so one key can never suppress another's records.
pub fn writer_of(actor: &str) -> String {
    actor.strip_prefix("apikey:").unwrap_or(actor).to_owned()
}

/// Most records in one `POST /v1/requests`.
pub const MAX_BATCH_RECORDS: usize = 1000;
/// Largest `POST /v1/requests` body, in bytes.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

const MAX_SERVICE: usize = 100;
const MAX_ENDPOINT: usize = 2048;
const MAX_METHOD: usize = 16;
const MAX_USER: usize = 320;
const MAX_REQUEST_ID: usize = 200;

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::{store::status_class, *};

    fn now() -> DateTime<Utc> {
        "2026-11-22T13:00:00Z".parse().unwrap()
    }

    fn parse(body: Value) -> Result<Vec<Record>, Error> {
        parse_batch(&serde_json::to_vec(&body).unwrap(), "w-1", 2000, now())
    }

    fn good() -> Value {
        json!({"service": "llm", "endpoint": "/v1/chat", "method": "post", "status_code": 200})
    }

    #[test]
    fn a_single_record_or_a_batch_is_accepted() {
        let one = parse(good()).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].method, "POST");
        assert_eq!(one[0].occurred_at, now());
        let batch = parse(json!({"records": [good(), good(), good()]})).unwrap();
        assert_eq!(batch.len(), 3);
    }

    #[test]
    fn ids_carry_the_records_millisecond() {
        let at: DateTime<Utc> = "2026-03-04T05:06:07.891234Z".parse().unwrap();
        let id = record_id(at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id_millis(id).unwrap(), "2026-03-04T05:06:07.891Z".parse::<DateTime<Utc>>().unwrap());
        assert!(id_millis(Uuid::new_v4()).is_none());
    }

    #[test]
    fn json_bodies_are_stored_as_their_text_redacted() {
        let mut record = good();
        record["request_body"] = json!({"password": "hunter2", "q": "hi"});
        record["response_body"] = json!("Bearer abc");
        let r = &parse(record).unwrap()[0];
        assert_eq!(r.request_body.as_deref(), Some(r#"{"password":"[REDACTED]","q":"hi"}"#));
        assert_eq!(r.response_body.as_deref(), Some("Bearer [REDACTED]"));
    }

    #[test]
    fn records_carry_their_writer() {
        assert_eq!(parse(good()).unwrap()[0].writer, "w-1");
        assert_eq!(writer_of("apikey:0190-ab"), "0190-ab");
        assert_eq!(writer_of("admin:bootstrap"), "admin:bootstrap");
    }

    #[test]
    fn times_tolerate_a_plus_turned_space() {
        assert_eq!(parse_time("2026-11-22T14:00:00 01:00"), Some(now()));
        assert_eq!(status_class("5XX"), Some((500, 600)));
        assert_eq!(status_class("6xx"), None);
    }
}
