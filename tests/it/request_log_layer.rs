//! keyledger's own requests in the request log (`LOG_OWN_REQUESTS`, DESIGN §6.7).

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::auth::Scope;

use crate::helpers::{TestApp, call};

const ALL_COLUMNS: &str = "concat_ws('|', id, occurred_at, service, endpoint, method, status_code, duration_ms, \
     user_identifier, request_id, request_body, response_body)";

/// Waits (bounded) for the background writer; not a timing assertion.
async fn rows_eventually(app: &TestApp, filter: &str, n: i64) -> i64 {
    let client = app.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let count: i64 =
            client.query_one(&format!("SELECT count(*) FROM request_log {filter}"), &[]).await.unwrap().get(0);
        if count >= n || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn own_requests_are_logged_with_redacted_bodies_and_never_the_api_key() {
    let app = TestApp::with_vars(&[("LOG_OWN_REQUESTS", "true")]).await;
    let admin = admin::router(app.ctx.clone());

    let created = call(
        &admin,
        Method::POST,
        "/v1/api-keys",
        Some(&app.admin_key),
        Some(json!({"name": "ci", "scopes": ["requests:read"]})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let new_key = created.json["key"].as_str().unwrap().to_owned();
    let request_id = created.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(call(&admin, Method::GET, "/health", None, None).await.status, StatusCode::OK);
    assert_eq!(call(&admin, Method::GET, "/v1/api-keys", None, None).await.status, StatusCode::UNAUTHORIZED);

    assert_eq!(rows_eventually(&app, "", 2).await, 2, "two API requests logged, /health not");
    let client = app.client().await;
    let row = client
        .query_one(
            "SELECT service, endpoint, method, status_code, request_id, request_body, response_body, duration_ms
             FROM request_log WHERE status_code = 201",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "keyledger");
    assert_eq!(row.get::<_, String>(1), "/v1/api-keys");
    assert_eq!(row.get::<_, String>(2), "POST");
    assert_eq!(row.get::<_, String>(4), request_id);
    assert_eq!(row.get::<_, Option<String>>(5).unwrap(), r#"{"name":"ci","scopes":["requests:read"]}"#);
    let response: serde_json::Value = serde_json::from_str(&row.get::<_, String>(6)).unwrap();
    assert_eq!(response["key"], "[REDACTED]");
    assert_eq!(response["name"], "ci");
    assert!(row.get::<_, Option<i32>>(7).is_some());

    let unauthorized =
        client.query_one("SELECT endpoint, status_code FROM request_log WHERE status_code = 401", &[]).await.unwrap();
    assert_eq!(unauthorized.get::<_, String>(0), "/v1/api-keys", "the matched route, not the raw path");

    for row in client.query(&format!("SELECT {ALL_COLUMNS} FROM request_log"), &[]).await.unwrap() {
        let everything: String = row.get(0);
        assert!(!everything.contains(&app.admin_key), "the caller's API key was logged: {everything}");
        assert!(!everything.contains(&new_key), "the created API key was logged: {everything}");
        assert!(!everything.to_lowercase().contains("bearer"), "{everything}");
    }

    // The log is browsable like any other service's.
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let log = request_log::router(app.ctx.clone());
    let listed = call(&log, Method::GET, "/v1/requests?service=keyledger&status=201", Some(&reader), None).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1, "{}", listed.text);
}

#[tokio::test]
async fn own_requests_are_not_logged_when_switched_off() {
    let app = TestApp::new().await;
    let admin = admin::router(app.ctx.clone());
    assert_eq!(call(&admin, Method::GET, "/v1/api-keys", Some(&app.admin_key), None).await.status, StatusCode::OK);
    tokio::time::sleep(shared::http::request_log_layer::FLUSH_EVERY * 2).await;
    let count: i64 = app.client().await.query_one("SELECT count(*) FROM request_log", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

#[tokio::test]
async fn on_lambda_the_record_is_written_before_the_response_is_returned() {
    let app = TestApp::with_vars(&[
        ("LOG_OWN_REQUESTS", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "keyledger-admin"),
        ("DB_SSLMODE", "disable"),
    ])
    .await;
    assert!(app.ctx.config().on_lambda);
    let admin = admin::router(app.ctx.clone());
    let answer = call(&admin, Method::GET, "/v1/api-keys", Some(&app.admin_key), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    // No waiting: the environment may freeze the moment the handler returns.
    let count: i64 = app.client().await.query_one("SELECT count(*) FROM request_log", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_burst_of_own_requests_is_written_in_batches() {
    let app = TestApp::with_vars(&[("LOG_OWN_REQUESTS", "true")]).await;
    let admin = admin::router(app.ctx.clone());
    let calls = (0..250).map(|_| {
        let (admin, key) = (admin.clone(), app.admin_key.clone());
        tokio::spawn(async move { call(&admin, Method::GET, "/v1/api-keys", Some(&key), None).await.status })
    });
    for status in futures::future::join_all(calls).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(rows_eventually(&app, "WHERE endpoint = '/v1/api-keys'", 250).await, 250);
}
