//! `GET /health` (DESIGN §6.9): the database answers, and at which schema version.
//!
//! Never blocks longer than about a second, whatever the database does.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use crate::context::Context;

/// The version this build reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const SCHEMA_VERSION: &str = "SELECT coalesce(max(version), 0) FROM schema_migrations";

/// The health handler every HTTP function mounts at `/health`.
pub async fn health(State(ctx): State<Context>) -> impl IntoResponse {
    let probe = async {
        let client = ctx.db().get().await.ok()?;
        client.query_one(SCHEMA_VERSION, &[]).await.ok().map(|r| r.get::<_, i32>(0))
    };
    match tokio::time::timeout(Duration::from_millis(1000), probe).await {
        Ok(Some(schema_version)) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok", "schema_version": schema_version, "version": VERSION})),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "database": "unavailable", "schema_version": null, "version": VERSION})),
        ),
    }
}
