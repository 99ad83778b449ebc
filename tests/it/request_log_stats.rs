//! `GET /v1/requests/stats` (DESIGN §6.10) over real PostgreSQL: exact counts and
//! percentiles per bucket for seeded records, filters, the default bucket and named errors.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::auth::Scope;

use crate::helpers::{TestApp, call};

fn rec(service: &str, at: &str, status: u16, duration: Option<i64>) -> Value {
    json!({"timestamp": at, "service": service, "endpoint": "/v1/chat", "method": "POST",
           "status_code": status, "duration_ms": duration})
}

#[tokio::test]
async fn stats_count_errors_and_percentiles_per_bucket_oldest_first() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let records = vec![
        rec("llm", "2026-11-22T10:05:00Z", 200, Some(10)),
        rec("llm", "2026-11-22T10:10:00Z", 404, Some(20)),
        rec("llm", "2026-11-22T10:20:00Z", 500, Some(30)),
        rec("llm", "2026-11-22T10:59:59.999Z", 200, Some(40)),
        rec("llm", "2026-11-22T12:00:00Z", 201, None),
        rec("billing", "2026-11-22T10:30:00Z", 200, Some(1000)),
        // Outside the range on both sides (`to` is exclusive).
        rec("llm", "2026-11-22T08:59:59Z", 500, Some(1)),
        rec("llm", "2026-11-22T13:00:00Z", 500, Some(1)),
    ];
    let posted = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records}))).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.text);

    let range = "from=2026-11-22T09:00:00Z&to=2026-11-22T13:00:00Z";
    let llm =
        call(&router, Method::GET, &format!("/v1/requests/stats?service=llm&{range}&bucket=hour"), Some(&reader), None)
            .await;
    assert_eq!(llm.status, StatusCode::OK, "{}", llm.text);
    assert_eq!(
        llm.json,
        json!({"bucket": "hour", "items": [
            {"start": "2026-11-22T10:00:00Z", "count": 4, "client_errors": 1, "server_errors": 1, "p50_ms": 25.0, "p95_ms": 38.5},
            {"start": "2026-11-22T12:00:00Z", "count": 1, "client_errors": 0, "server_errors": 0, "p50_ms": null, "p95_ms": null}
        ]})
    );

    let all = call(&router, Method::GET, &format!("/v1/requests/stats?{range}&bucket=HOUR"), Some(&reader), None).await;
    assert_eq!(all.json["items"][0]["count"], 5);
    assert_eq!(all.json["items"][0]["p50_ms"], 30.0);
    assert!((all.json["items"][0]["p95_ms"].as_f64().unwrap() - 808.0).abs() < 1e-9, "{}", all.json);

    let endpoint =
        call(&router, Method::GET, &format!("/v1/requests/stats?endpoint=/v1/other&{range}"), Some(&reader), None)
            .await;
    assert_eq!(endpoint.json, json!({"bucket": "minute", "items": []}));

    // Four hours default to minutes: one item per minute that has records.
    let minutes = call(&router, Method::GET, &format!("/v1/requests/stats?{range}"), Some(&reader), None).await;
    assert_eq!(minutes.json["bucket"], "minute");
    let starts: Vec<&str> =
        minutes.json["items"].as_array().unwrap().iter().map(|i| i["start"].as_str().unwrap()).collect();
    assert_eq!(
        starts,
        [
            "2026-11-22T10:05:00Z",
            "2026-11-22T10:10:00Z",
            "2026-11-22T10:20:00Z",
            "2026-11-22T10:30:00Z",
            "2026-11-22T10:59:00Z",
            "2026-11-22T12:00:00Z"
        ]
    );

    let days = call(
        &router,
        Method::GET,
        "/v1/requests/stats?from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(days.json["bucket"], "day");
    assert_eq!(days.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(days.json["items"][0]["count"], 8);
}

#[tokio::test]
async fn stats_refuse_bad_parameters_naming_each_and_need_requests_read() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    for (query, field) in [
        ("bucket=week", "bucket"),
        ("from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z&bucket=minute", "bucket"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
        ("service=a%00b", "service"),
        ("endpoint=%00", "endpoint"),
    ] {
        let answer = call(&router, Method::GET, &format!("/v1/requests/stats?{query}"), Some(&reader), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{query}");
        assert!(!answer.text.contains("yesterday") && !answer.text.contains("week"), "{}", answer.text);
    }
    assert_eq!(
        call(&router, Method::GET, "/v1/requests/stats", Some(&writer), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&router, Method::GET, "/v1/requests/stats", None, None).await.status, StatusCode::UNAUTHORIZED);
    let empty = call(&router, Method::GET, "/v1/requests/stats", Some(&reader), None).await;
    assert_eq!(empty.json, json!({"bucket": "hour", "items": []}));
    // The combined local server routes it too.
    let local = keyledger::local_router(app.ctx.clone());
    assert_eq!(call(&local, Method::GET, "/v1/requests/stats", Some(&reader), None).await.status, StatusCode::OK);
}
