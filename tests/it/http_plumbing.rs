use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::json;

use crate::helpers::{TestApp, call, call_raw};

#[tokio::test]
async fn health_reports_the_schema_version() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let health = call(&router, Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["database"], "ok");
    assert_eq!(health.json["schema_version"], json!(shared::migrations::latest_version()));
    assert_eq!(health.json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn health_is_503_within_about_a_second_when_the_database_is_unreachable() {
    // A listener that accepts and never answers: the worst kind of unreachable.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/none");
    let app = TestApp::with_vars(&[("DATABASE_URL", url.as_str()), ("DB_CONNECT_TIMEOUT_MS", "30000")]).await;
    let router = admin::router(app.ctx.clone());
    let started = std::time::Instant::now();
    let health = call(&router, Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json["database"], "unavailable");
    // Not a timing assertion on speed, a bound on hanging: the 30 s connect timeout must not apply.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_big_bodies_are_problems() {
    let app = TestApp::with_vars(&[("HTTP_BODY_LIMIT_BYTES", "1024")]).await;
    let router = admin::router(app.ctx.clone());

    let missing = call(&router, Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["content-type"], "application/problem+json");
    assert_eq!(missing.json["code"], "route_not_found");

    let wrong = call(&router, Method::PUT, "/v1/api-keys", Some(&app.admin_key), None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.json["status"], 405);

    let big = json!({"name": "x".repeat(4096), "scopes": ["admin"]});
    let too_large = call(&router, Method::POST, "/v1/api-keys", Some(&app.admin_key), Some(big)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json["code"], "body_too_large");

    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/api-keys")
        .header("authorization", format!("Bearer {}", app.admin_key))
        .body(Body::from("{\"name\": \"x\", "))
        .unwrap();
    let malformed = call_raw(&router, request).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json["code"], "invalid_json");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_the_callers() {
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let generated = call(&router, Method::GET, "/health", None, None).await;
    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let request =
        Request::builder().uri("/health").header("x-request-id", "trace-abc-123").body(Body::empty()).unwrap();
    let kept = call_raw(&router, request).await;
    assert_eq!(kept.headers["x-request-id"], "trace-abc-123");

    // The request id reaches the event metadata.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/api-keys")
        .header("authorization", format!("Bearer {}", app.admin_key))
        .header("x-request-id", "req-for-metadata")
        .body(Body::from(r#"{"name":"m","scopes":["admin"]}"#))
        .unwrap();
    assert_eq!(call_raw(&router, request).await.status, StatusCode::CREATED);
    let client = app.client().await;
    let meta: serde_json::Value = client.query_one("SELECT metadata FROM events", &[]).await.unwrap().get(0);
    assert_eq!(meta, json!({"request_id": "req-for-metadata", "actor": "admin:bootstrap", "function": "admin"}));
}

#[tokio::test]
async fn the_router_answers_api_gateway_events_through_lambda_http() {
    // The same router Lambda runs, fed an API Gateway v2 event fixture (as `cargo lambda
    // invoke` or API Gateway would send it).
    let app = TestApp::new().await;
    let router = admin::router(app.ctx.clone());
    let event: lambda_http::request::LambdaRequest =
        serde_json::from_str(include_str!("../fixtures/apigw-v2-health.json")).unwrap();
    let request: lambda_http::Request = event.into();
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, Body::from(body.to_vec()));
    let answer = call_raw(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["database"], "ok");
    assert_eq!(answer.headers["x-request-id"], "JKJaXmPLvHcESHA=");
}

#[tokio::test]
async fn the_cold_start_benchmarks_license_validate_event_gets_a_signed_not_found() {
    // bench/coldstart/run.sh hands this fixture to the release license-validate binary: a
    // key no license has, answered 200 with a signed NOT_FOUND (the whole hot path: pepper,
    // one lookup, signing), not a 4xx that would stop before the database.
    let app = TestApp::new().await;
    let router = license_validate::router(app.ctx.clone());
    let event: lambda_http::request::LambdaRequest =
        serde_json::from_str(include_str!("../fixtures/apigw-v2-license-validate.json")).unwrap();
    let request: lambda_http::Request = event.into();
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(parts, Body::from(body.to_vec()));
    let answer = call_raw(&router, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!((answer.json["code"].as_str(), answer.json["valid"].as_bool()), (Some("NOT_FOUND"), Some(false)));
    assert_eq!(answer.json["nonce"], "coldstart");
    let jwks = call(&router, Method::GET, "/v1/licenses/signing-keys", None, None).await;
    let signature = answer.headers[shared::signing::SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(crate::signing::verify(&jwks.json, signature, answer.text.as_bytes()), Ok("s1".to_owned()));
}
