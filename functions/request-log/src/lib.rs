//! The `request-log` function (DESIGN §6.7): three triggers in one binary.
//! - API Gateway: `POST /v1/requests` (ingest), `GET /v1/requests`, `GET /v1/requests/stats`,
//!   `GET /v1/requests/{id}`;
//! - SQS: one record per message, partial batch failures for the bad messages only;
//! - a daily EventBridge schedule: partition upkeep and retention.
//!
//! Parsing, routing and rendering only; the rules live in `shared::request_log`.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{
    Context,
    auth::{Principal, Scope},
    http::{ApiError, Query},
    request_log::{self, ListParams, partitions, stats},
};

/// The function's name, as deployed and as logged.
pub const FUNCTION: &str = "request-log";

/// The request-log routes without `/health`, for merging into a combined local server.
pub fn routes(ctx: Context) -> Router {
    Router::new()
        .route("/v1/requests", post(ingest).get(list))
        .route("/v1/requests/stats", get(get_stats))
        .route("/v1/requests/{id}", get(get_one))
        .with_state(ctx)
}

/// The complete `request-log` router, as Lambda and the local server run it.
pub fn router(ctx: Context) -> Router {
    let config = ctx.config().clone();
    let app = routes(ctx.clone()).route("/health", get(shared::health::health).with_state(ctx));
    shared::app::finish(app, &config)
}

async fn ingest(
    State(ctx): State<Context>,
    principal: Principal,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::RequestsWrite)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "a request log body is at most 1 MiB")
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })?;
    let writer = request_log::writer_of(&principal.actor);
    let records = request_log::parse_batch(&body, &writer, ctx.config().request_body_limit, Utc::now())?;
    request_log::insert(ctx.db(), &records).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"accepted": records.len()}))))
}

async fn list(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::RequestsRead)?;
    Ok(axum::Json(request_log::list(ctx.db(), params).await?))
}

async fn get_stats(
    State(ctx): State<Context>,
    principal: Principal,
    Query(params): Query<stats::StatsParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::RequestsRead)?;
    let query = stats::StatsQuery::parse(params, Utc::now())?;
    Ok(axum::Json(stats::stats(ctx.db(), &query).await?))
}

async fn get_one(
    State(ctx): State<Context>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::RequestsRead)?;
    Ok(axum::Json(request_log::get(ctx.db(), &id).await?))
}

/// An SQS event (the fields used here).
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    /// The messages.
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

/// One SQS message.
#[derive(Debug, Deserialize)]
pub struct SqsMessage {
    /// The id SQS reports failures by.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The record, as JSON text.
    #[serde(default)]
    pub body: Option<String>,
}

/// The partial batch response: only these messages return to the queue.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SqsBatchResponse {
    /// Failed messages.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<SqsItemFailure>,
}

/// One failed message.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SqsItemFailure {
    /// Its `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Stores every well-formed message's record in one round trip; reports the malformed ones
/// (and, when the database fails, the well-formed ones too, so that SQS delivers them again:
/// the `(writer, service, request_id)` dedup makes the repeat harmless). A message is data: a
/// bad one is an item failure whose log line names the field at fault, never its value.
pub async fn handle_sqs(ctx: &Context, event: SqsEvent) -> SqsBatchResponse {
    let now = Utc::now();
    let limit = ctx.config().request_body_limit;
    let mut records = Vec::with_capacity(event.records.len());
    let mut stored_ids = Vec::with_capacity(event.records.len());
    let mut failures = Vec::new();
    for message in event.records {
        match request_log::parse_one(
            message.body.as_deref().unwrap_or("").as_bytes(),
            request_log::SQS_WRITER,
            limit,
            now,
        ) {
            Ok(mut record) => {
                // A record without its own request id is keyed by its message, so that SQS
                // redelivering the message (a timeout, a partial failure) stores it once.
                if record.request_id.is_none() {
                    record.request_id = Some(format!("sqs:{}", message.message_id));
                }
                records.push(record);
                stored_ids.push(message.message_id);
            }
            Err(e) => {
                // The body may hold anything; the reason names the field, never its value.
                tracing::warn!(message_id = %message.message_id, error = %e, "request log message rejected");
                failures.push(message.message_id);
            }
        }
    }
    if let Err(e) = request_log::insert(ctx.db(), &records).await {
        tracing::error!(error = %e, messages = stored_ids.len(), "request log messages not stored; SQS will retry them");
        failures.extend(stored_ids);
    }
    SqsBatchResponse {
        batch_item_failures: failures.into_iter().map(|item_identifier| SqsItemFailure { item_identifier }).collect(),
    }
}

/// The daily upkeep: partitions ahead, retention behind.
pub async fn handle_schedule(ctx: &Context, now: DateTime<Utc>) -> Result<partitions::UpkeepReport, ApiError> {
    Ok(partitions::upkeep(ctx.db(), now, ctx.config().request_log_retention_days).await?)
}

/// What kind of event an invocation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// API Gateway HTTP API (payload format 2.0).
    Http,
    /// An SQS batch.
    Sqs,
    /// The EventBridge schedule (or `{"action": "upkeep"}` invoked directly).
    Schedule,
}

/// Recognises the event by its shape.
pub fn trigger_of(event: &Value) -> Option<Trigger> {
    if event.pointer("/requestContext/http").is_some() {
        return Some(Trigger::Http);
    }
    if event.pointer("/Records/0/eventSource").and_then(Value::as_str) == Some("aws:sqs") {
        return Some(Trigger::Sqs);
    }
    if event.get("source").and_then(Value::as_str) == Some("aws.events")
        || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        || event.get("action").and_then(Value::as_str) == Some("upkeep")
    {
        return Some(Trigger::Schedule);
    }
    None
}

/// Handles one Lambda invocation of any of the three triggers. HTTP events are converted
/// exactly as `lambda_http::run` does and served by the same `router` as the local server.
pub async fn handle(
    ctx: &Context,
    router: Router,
    event: Value,
    lambda: lambda_runtime::Context,
) -> Result<Value, lambda_runtime::Error> {
    match trigger_of(&event) {
        Some(Trigger::Http) => shared::http::lambda::invoke(router, event, lambda).await,
        Some(Trigger::Sqs) => {
            let event: SqsEvent = serde_json::from_value(event)?;
            Ok(serde_json::to_value(handle_sqs(ctx, event).await)?)
        }
        Some(Trigger::Schedule) => {
            // The clock, not the event's `time`: a replayed or hand-made event must not be
            // able to move the retention cut-off forward.
            let report = handle_schedule(ctx, Utc::now()).await.map_err(|e| e.to_string())?;
            Ok(serde_json::to_value(report)?)
        }
        None => Err("unrecognised event: expected API Gateway (HTTP API), SQS or a scheduled event".into()),
    }
}
