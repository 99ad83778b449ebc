//! A tower layer that logs keyledger's own HTTP requests to the request log (DESIGN §6.7:
//! "keyledger's own HTTP functions log their own requests the same way"), switched on by
//! `LOG_OWN_REQUESTS`; `shared::app::finish` adds it to every function's router.
//!
//! Each record holds the method, the matched route (`/v1/requests/{id}`, never the raw path
//! with its ids and query string), the status, the duration, the request id and both bodies,
//! redacted and truncated like any other record. Headers are never logged, so neither is
//! `Authorization`; API keys and secrets in bodies fall under the redaction rules (`key`,
//! `*_key`, `*token*`, `*secret*` …).
//!
//! When the record is written — why it never costs the request a round trip where that
//! can be avoided:
//! - **Long-running server** (`keyledger serve`, a function run locally): the record goes
//!   into an in-memory buffer and the response leaves at once. A background task writes the
//!   buffer as one batch (one statement, [`request_log::insert`]) as soon as it holds
//!   [`FLUSH_AT`] records or [`FLUSH_EVERY`] after the last write, whichever comes first. So
//!   the request path has no database work at all, and a busy server writes one statement
//!   per hundred requests instead of one per request. The buffer is bounded
//!   ([`MAX_BUFFERED`]): while the database is unreachable, records beyond it are dropped
//!   and counted in a warning rather than growing memory without bound.
//! - **Lambda**: the execution environment is frozen as soon as the handler returns, and may
//!   never be thawed again (it is shut down without notice to the runtime), so a buffered
//!   record could wait forever or be lost. The record is therefore written before the
//!   response is handed back, after the handler has done all its own work: one round trip
//!   per invocation, on a pool of its own (one connection), so it never waits behind or
//!   blocks the handler's connections. Writing after the response would need a Lambda
//!   extension process; that is the next step if this round trip ever shows in latency.
//!
//! A failed write is logged (without the record) and never changes the response.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{MatchedPath, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::Utc;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::{
    config::Config,
    db::Db,
    http::{ApiError, RequestId},
    request_log::{self, Record, body_text, record_id},
    secrets::SecretsClient,
};

/// The `service` of keyledger's own records; the route tells the functions apart.
pub const SERVICE: &str = "keyledger";
/// Buffered records that trigger a write at once.
pub const FLUSH_AT: usize = 100;
/// Longest time a buffered record waits for its write.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Most records kept while writes fail; more are dropped.
pub const MAX_BUFFERED: usize = 10_000;
const WRITE_BATCH: usize = 500;

/// Logs every request of the wrapped router; build it with [`layer`].
#[derive(Clone)]
pub struct RequestLogLayer {
    log: Arc<OwnLog>,
}

struct OwnLog {
    db: Db,
    body_limit: usize,
    http_body_limit: usize,
    write_before_return: bool,
    buffer: Mutex<Vec<Record>>,
    wake: Notify,
    flusher_started: AtomicBool,
    dropped: AtomicU64,
}

/// The layer for `config`: its own lazily connected pool of one connection; writes in the
/// background on a server and before returning on Lambda (see the module documentation).
pub fn layer(config: &Config) -> RequestLogLayer {
    let mut own = config.clone();
    own.db_pool_max = 1;
    RequestLogLayer {
        log: Arc::new(OwnLog {
            db: Db::new(&own, &SecretsClient::new(), "keyledger-own-request-log"),
            body_limit: config.request_body_limit,
            http_body_limit: config.http_body_limit,
            write_before_return: config.on_lambda,
            buffer: Mutex::new(Vec::new()),
            wake: Notify::new(),
            flusher_started: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }),
    }
}

impl RequestLogLayer {
    /// Writes every buffered record now (for shutdown and tests).
    pub async fn flush(&self) {
        self.log.flush().await;
    }
}

impl OwnLog {
    async fn submit(self: &Arc<Self>, record: Record) {
        if self.write_before_return {
            if let Err(e) = request_log::insert(&self.db, std::slice::from_ref(&record)).await {
                tracing::warn!(error = %e, "own request not logged");
            }
            return;
        }
        let buffered = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if buffer.len() >= MAX_BUFFERED {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            buffer.push(record);
            buffer.len()
        };
        self.start_flusher();
        if buffered >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    fn start_flusher(self: &Arc<Self>) {
        if self.flusher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        // A weak reference, so the task ends once the router that owns the layer is gone.
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(log) = weak.upgrade() {
                tokio::select! {
                    () = log.wake.notified() => {}
                    () = tokio::time::sleep(FLUSH_EVERY) => {}
                }
                log.flush().await;
            }
        });
    }

    async fn flush(&self) {
        loop {
            let batch: Vec<Record> = {
                let mut buffer = self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let n = buffer.len().min(WRITE_BATCH);
                buffer.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            if let Err(e) = request_log::insert(&self.db, &batch).await {
                tracing::warn!(error = %e, records = batch.len(), "own requests not logged");
                break;
            }
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "own request log buffer was full; records dropped");
        }
    }
}

impl<S> tower::Layer<S> for RequestLogLayer {
    type Service = RequestLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLogService { inner, log: self.log.clone() }
    }
}

/// The service [`RequestLogLayer`] wraps around each route.
#[derive(Clone)]
pub struct RequestLogService<S> {
    inner: S,
    log: Arc<OwnLog>,
}

fn body_of(bytes: &Bytes) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    Some(match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("[binary body, {} bytes]", bytes.len()),
    })
}

fn read_error(e: axum::Error) -> Response {
    let too_large = e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some();
    if too_large {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than allowed")
            .into_response()
    } else {
        ApiError::bad_request("invalid_body", "the request body could not be read").into_response()
    }
}

impl<S> tower::Service<Request> for RequestLogService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let log = self.log.clone();
        Box::pin(async move {
            let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
            if route.as_deref() == Some("/health") {
                return inner.call(request).await;
            }
            let started = Instant::now();
            let at = Utc::now();
            let method = request.method().as_str().to_ascii_uppercase();
            let request_id = request.extensions().get::<RequestId>().map(|RequestId(id)| id.clone());
            let (parts, body) = request.into_parts();
            let request_bytes = match axum::body::to_bytes(body, log.http_body_limit).await {
                Ok(bytes) => bytes,
                Err(e) => return Ok(read_error(e)),
            };
            let response = inner.call(Request::from_parts(parts, Body::from(request_bytes.clone()))).await?;
            let (parts, body) = response.into_parts();
            let response_bytes = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => bytes,
                Err(e) => return Ok(ApiError::internal(format!("response body failed: {e}")).into_response()),
            };
            let (request_body, request_body_truncated) =
                body_text(body_of(&request_bytes).map(serde_json::Value::String), log.body_limit);
            let (response_body, response_body_truncated) =
                body_text(body_of(&response_bytes).map(serde_json::Value::String), log.body_limit);
            let record = Record {
                id: record_id(at),
                occurred_at: at,
                writer: SERVICE.to_owned(),
                service: SERVICE.to_owned(),
                endpoint: route.unwrap_or_else(|| "(no route)".to_owned()),
                method,
                status_code: i32::from(parts.status.as_u16()),
                duration_ms: Some(i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX)),
                user_identifier: None,
                request_id,
                request_body,
                response_body,
                request_body_truncated,
                response_body_truncated,
                deduplicate: false,
            };
            log.submit(record).await;
            Ok(Response::from_parts(parts, Body::from(response_bytes)))
        })
    }
}
