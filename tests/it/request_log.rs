//! Request log ingest (DESIGN §6.7): HTTP single and batch, validation, limits, dedup, the
//! SQS trigger, redaction and truncation, and the Lambda dispatch of the three triggers.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use chrono::Datelike;
use serde_json::{Value, json};
use shared::{auth::Scope, request_log::redact::REDACTED};

use crate::helpers::{TestApp, call, call_raw};

pub fn record(service: &str, status: u16) -> Value {
    json!({"timestamp": "2026-11-22T12:00:00Z", "service": service, "endpoint": "/v1/chat", "method": "POST",
           "status_code": status, "duration_ms": 12})
}

pub async fn count(app: &TestApp, filter: &str) -> i64 {
    app.client().await.query_one(&format!("SELECT count(*) FROM request_log {filter}"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_single_record_is_accepted_and_read_back_by_id_with_its_bodies() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let mut one = record("llm", 200);
    one["user_identifier"] = json!("a@example.com");
    one["request_body"] = json!("{\"prompt\":\"hi\"}");
    one["response_body"] = json!({"answer": "hello"});
    one["request_id"] = json!("r-1");

    let posted = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(one)).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.text);
    assert_eq!(posted.json, json!({"accepted": 1}));

    let listed = call(&router, Method::GET, "/v1/requests", Some(&reader), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0].get("request_body").is_none(), "lists carry no bodies");
    assert_eq!(items[0]["timestamp"], "2026-11-22T12:00:00Z");
    assert_eq!(items[0]["method"], "POST");
    let id = items[0]["id"].as_str().unwrap();

    let detail = call(&router, Method::GET, &format!("/v1/requests/{id}"), Some(&reader), None).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.json["request_body"], "{\"prompt\":\"hi\"}");
    assert_eq!(detail.json["response_body"], "{\"answer\":\"hello\"}");
    assert_eq!(detail.json["user_identifier"], "a@example.com");
    assert_eq!(detail.json["request_id"], "r-1");
    assert_eq!(detail.json["status_code"], 200);
    assert_eq!(detail.json["duration_ms"], 12);
    assert_eq!(detail.json["request_body_truncated"], false);

    for missing in ["/v1/requests/not-a-uuid", &format!("/v1/requests/{}", uuid::Uuid::new_v4())] {
        let answer = call(&router, Method::GET, missing, Some(&reader), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(answer.json["code"], "request_not_found");
    }
    let unknown_v7 = format!("/v1/requests/{}", shared::request_log::record_id(chrono::Utc::now()));
    assert_eq!(call(&router, Method::GET, &unknown_v7, Some(&reader), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_batch_is_stored_whole() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let records: Vec<Value> = (0..1000).map(|i| record(&format!("svc-{}", i % 7), 200 + (i % 3) as u16)).collect();
    let posted = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records}))).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED, "{}", posted.text);
    assert_eq!(posted.json["accepted"], 1000);
    assert_eq!(count(&app, "").await, 1000);
    assert_eq!(
        count(&app, "WHERE service = 'svc-3' AND status_code = 201").await,
        (0..1000).filter(|i| i % 7 == 3 && i % 3 == 1).count() as i64
    );
}

#[tokio::test]
async fn one_invalid_record_rejects_the_batch_naming_its_index_and_stores_nothing() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let mut records: Vec<Value> = (0..5).map(|_| record("llm", 200)).collect();
    records[3]["status_code"] = json!("OK");
    let answer =
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records.clone()}))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.json["field"], "records[3].status_code");
    assert!(answer.json["detail"].as_str().unwrap().contains("records[3].status_code"), "{}", answer.json);

    records[3] = record("llm", 200);
    records[4].as_object_mut().unwrap().remove("endpoint");
    let answer =
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records.clone()}))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["field"], "records[4].endpoint");

    records[4] = record("llm", 200);
    records[1]["timestamp"] = json!("22/11/2026");
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records}))).await;
    assert_eq!(answer.json["field"], "records[1].timestamp");

    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/v1/requests")
        .header("authorization", format!("Bearer {writer}"))
        .body(Body::from("{\"records\": [{\"service\": "))
        .unwrap();
    let answer = call_raw(&router, malformed).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["code"], "invalid_json");

    assert_eq!(count(&app, "").await, 0, "nothing of a rejected batch is stored");
}

#[tokio::test]
async fn more_than_1000_records_or_1_mib_is_413_and_stores_nothing() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;

    let records: Vec<Value> = (0..1001).map(|_| record("llm", 200)).collect();
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records}))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["code"], "too_many_records");

    // Just over 1 MiB (below the server-wide limit, so the request log's own limit answers)...
    let mut big = record("llm", 200);
    big["request_body"] = json!("x".repeat(1024 * 1024));
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": [big]}))).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["code"], "body_too_large");
    // ... and far over it (the server-wide limit answers, also problem+json).
    let mut huge = record("llm", 200);
    huge["request_body"] = json!("x".repeat(3 * 1024 * 1024));
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(huge)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json["code"], "body_too_large");
    assert_eq!(count(&app, "").await, 0);

    // Exactly 1 MiB is allowed.
    let mut fits = record("llm", 200);
    fits["request_body"] = json!("");
    let overhead = serde_json::to_vec(&fits).unwrap().len();
    fits["request_body"] = json!("y".repeat(1024 * 1024 - overhead));
    let body = serde_json::to_vec(&fits).unwrap();
    assert_eq!(body.len(), 1024 * 1024);
    let exact = Request::builder()
        .method(Method::POST)
        .uri("/v1/requests")
        .header("authorization", format!("Bearer {writer}"))
        .body(Body::from(body))
        .unwrap();
    let answer = call_raw(&router, exact).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(count(&app, "WHERE request_body_truncated").await, 1);
}

#[tokio::test]
async fn repeated_deliveries_are_counted_but_stored_once() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let mut first = record("llm", 200);
    first["request_id"] = json!("dup-1");
    let mut other_service = record("billing", 200);
    other_service["request_id"] = json!("dup-1");
    let keyless = record("llm", 200);

    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(first.clone())).await;
    assert_eq!(answer.json["accepted"], 1);
    // The same delivery again, twice inside one batch, next to records that are new.
    let batch = json!({"records": [first.clone(), first.clone(), other_service, keyless.clone(), keyless]});
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(batch)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.json["accepted"], 5);
    assert_eq!(count(&app, "WHERE service = 'llm' AND request_id = 'dup-1'").await, 1);
    assert_eq!(count(&app, "WHERE service = 'billing' AND request_id = 'dup-1'").await, 1, "dedup is per service");
    assert_eq!(count(&app, "WHERE request_id IS NULL").await, 2, "records without a request id are never merged");

    // Concurrent deliveries of one record: all accepted, one stored.
    let mut racing = record("llm", 503);
    racing["request_id"] = json!("race-1");
    let calls = (0..8).map(|_| {
        let (router, writer, racing) = (router.clone(), writer.clone(), racing.clone());
        tokio::spawn(async move { call(&router, Method::POST, "/v1/requests", Some(&writer), Some(racing)).await })
    });
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.unwrap().status, StatusCode::ACCEPTED);
    }
    assert_eq!(count(&app, "WHERE request_id = 'race-1'").await, 1);
    assert_eq!(count(&app, "").await, 5);
}

#[tokio::test]
async fn the_routes_need_their_scopes() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let post = |key: Option<String>| {
        let router = router.clone();
        async move { call(&router, Method::POST, "/v1/requests", key.as_deref(), Some(record("llm", 200))).await.status }
    };
    assert_eq!(post(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(Some(reader.clone())).await, StatusCode::FORBIDDEN);
    assert_eq!(post(Some(app.admin_key.clone())).await, StatusCode::ACCEPTED);
    assert_eq!(call(&router, Method::GET, "/v1/requests", Some(&writer), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(call(&router, Method::GET, "/v1/requests", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&router, Method::DELETE, "/v1/requests", Some(&reader), None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn bodies_are_redacted_at_any_depth_then_truncated_on_a_character_boundary() {
    let app = TestApp::with_vars(&[("REQUEST_BODY_LIMIT", "40")]).await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let post = |body: Value| {
        let (router, writer) = (router.clone(), writer.clone());
        async move {
            let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(body)).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
        }
    };
    let fetch = |request_id: &'static str| {
        let (router, reader) = (router.clone(), reader.clone());
        async move {
            let list = call(&router, Method::GET, "/v1/requests?limit=500", Some(&reader), None).await;
            let item =
                list.json["items"].as_array().unwrap().iter().find(|i| i["request_id"] == request_id).cloned().unwrap();
            call(&router, Method::GET, &format!("/v1/requests/{}", item["id"].as_str().unwrap()), Some(&reader), None)
                .await
                .json
        }
    };
    let with = |request_id: &str, request_body: Value, response_body: Value| {
        let mut r = record("llm", 200);
        r["request_id"] = json!(request_id);
        r["request_body"] = request_body;
        r["response_body"] = response_body;
        r
    };

    // Nested secrets (a JSON object body, and JSON text), with a limit big enough to see them all.
    let app_wide = TestApp::with_vars(&[("DATABASE_URL", app.db_url.as_str()), ("REQUEST_BODY_LIMIT", "2000")]).await;
    let wide = request_log::router(app_wide.ctx.clone());
    let nested = json!({"user": "a", "auth": {"scheme": "x"}, "data": [{"client_secret": "cs-1", "items": [{"Session-Id": "s-9"}]}],
                        "headers": {"X-Api-Key": "k-2", "Accept": "Bearer tok-3"}, "license_key": "LK-4", "keep": "visible"});
    let answer = call(
        &wide,
        Method::POST,
        "/v1/requests",
        Some(&writer),
        Some(with("nested", nested.clone(), json!(nested.to_string()))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let stored = fetch("nested").await;
    for body in ["request_body", "response_body"] {
        let text = stored[body].as_str().unwrap();
        let v: Value = serde_json::from_str(text).expect("redacted JSON is still JSON");
        assert_eq!(v["auth"], REDACTED);
        assert_eq!(v["data"][0]["client_secret"], REDACTED);
        assert_eq!(v["data"][0]["items"][0]["Session-Id"], REDACTED);
        assert_eq!(v["headers"]["X-Api-Key"], REDACTED);
        assert_eq!(v["headers"]["Accept"], "Bearer [REDACTED]");
        assert_eq!(v["license_key"], REDACTED);
        assert_eq!(v["keep"], "visible");
        for secret in ["cs-1", "s-9", "k-2", "tok-3", "LK-4"] {
            assert!(!text.contains(secret), "{secret} stored in {body}: {text}");
        }
    }

    // Plain text: Bearer/Basic credentials and form values; multi-byte text cut at 40 characters.
    let multi = "é".repeat(39) + "🦀🦀🦀";
    post(with("text", json!("Authorization: Basic dXNlcjpwYXNz and token=abc"), json!(multi))).await;
    let stored = fetch("text").await;
    assert_eq!(stored["request_body"], "Authorization: [REDACTED]");
    assert_eq!(stored["request_body_truncated"], false);
    assert_eq!(stored["response_body"], "é".repeat(39) + "🦀");
    assert_eq!(stored["response_body_truncated"], true);

    // Exactly the limit is kept whole and not flagged; one more character is cut and flagged.
    let exact = "ü".repeat(40);
    post(with("exact", json!(exact.clone()), json!(exact.clone() + "!"))).await;
    let stored = fetch("exact").await;
    assert_eq!(stored["request_body"], exact);
    assert_eq!(stored["request_body_truncated"], false);
    assert_eq!(stored["response_body"], exact);
    assert_eq!(stored["response_body_truncated"], true);

    // Redaction happens before truncation: a secret past the cut never matters, one before it is gone.
    post(with("order", json!("bearer s3cr3t-value-that-is-long ".to_owned() + &"z".repeat(50)), Value::Null)).await;
    let stored = fetch("order").await;
    assert!(stored["request_body"].as_str().unwrap().starts_with("bearer [REDACTED] zzz"));
    assert_eq!(stored["response_body"], Value::Null);

    // Nothing secret reached the table at all.
    let client = app.client().await;
    let rows = client
        .query("SELECT coalesce(request_body, '') || coalesce(response_body, '') FROM request_log", &[])
        .await
        .unwrap();
    for row in rows {
        let text: String = row.get(0);
        for secret in ["cs-1", "s-9", "k-2", "tok-3", "LK-4", "dXNlcjpwYXNz", "abc", "s3cr3t"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

fn sqs_fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/sqs-request-log.json")).unwrap()
}

#[tokio::test]
async fn sqs_reports_exactly_the_bad_messages_and_stores_duplicates_once() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    // sqs-2 was delivered over HTTP before, by another writer: its SQS copy is its own record.
    let mut earlier = record("llm", 200);
    earlier["request_id"] = json!("sqs-2");
    assert_eq!(
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(earlier)).await.status,
        StatusCode::ACCEPTED
    );

    let answer = request_log::handle(&app.ctx, router.clone(), sqs_fixture(), Default::default()).await.unwrap();
    // Message 2 is cut-off JSON, 4 lacks status_code, 6 is not JSON; 1 and 3 are the same record.
    assert_eq!(
        answer,
        json!({"batchItemFailures": [
            {"itemIdentifier": "0c5b1f4e-0000-4000-8000-000000000002"},
            {"itemIdentifier": "0c5b1f4e-0000-4000-8000-000000000004"},
            {"itemIdentifier": "0c5b1f4e-0000-4000-8000-000000000006"}
        ]})
    );
    assert_eq!(count(&app, "WHERE request_id = 'sqs-1'").await, 1);
    assert_eq!(count(&app, "WHERE request_id = 'sqs-2'").await, 2, "dedup is per writer");
    assert_eq!(count(&app, "WHERE request_id = 'sqs-2' AND writer = 'sqs'").await, 1);
    assert_eq!(
        count(&app, "WHERE service = 'billing' AND request_id = 'sqs:0c5b1f4e-0000-4000-8000-000000000005'").await,
        1
    );
    assert_eq!(count(&app, "").await, 4);
    let body: String = app
        .client()
        .await
        .query_one("SELECT request_body FROM request_log WHERE request_id = 'sqs-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, r#"{"prompt":"hi","api_key":"[REDACTED]"}"#);

    // SQS delivers the whole batch again (a timeout): nothing new is stored, the same failures.
    let again = request_log::handle(&app.ctx, router, sqs_fixture(), Default::default()).await.unwrap();
    assert_eq!(again, answer);
    assert_eq!(count(&app, "").await, 4);
}

#[tokio::test]
async fn sqs_messages_are_all_retried_when_the_database_is_down() {
    let app = TestApp::with_vars(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("DB_CONNECT_TIMEOUT_MS", "500"),
    ])
    .await;
    let event: request_log::SqsEvent = serde_json::from_value(sqs_fixture()).unwrap();
    let answer = request_log::handle_sqs(&app.ctx, event).await;
    assert_eq!(answer.batch_item_failures.len(), 7, "every message goes back to the queue");
}

#[tokio::test]
async fn lambda_dispatches_api_gateway_sqs_and_schedule_events() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;

    let raw = include_str!("../fixtures/apigw-v2-requests-post.json").replace("KEY_PLACEHOLDER", &writer);
    let event: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(request_log::trigger_of(&event), Some(request_log::Trigger::Http));
    let answer = request_log::handle(&app.ctx, router.clone(), event, Default::default()).await.unwrap();
    assert_eq!(answer["statusCode"], 202, "{answer}");
    assert_eq!(serde_json::from_str::<Value>(answer["body"].as_str().unwrap()).unwrap(), json!({"accepted": 2}));
    assert_eq!(answer["headers"]["x-request-id"], "RqLgAbCdEfGhIjK=", "API Gateway's request id is kept");
    assert_eq!(count(&app, "WHERE request_id IN ('gw-1', 'gw-2')").await, 2);

    let unauthenticated: Value = serde_json::from_str(include_str!("../fixtures/apigw-v2-requests-post.json")).unwrap();
    let answer = request_log::handle(&app.ctx, router.clone(), unauthenticated, Default::default()).await.unwrap();
    assert_eq!(answer["statusCode"], 401);

    let schedule: Value = serde_json::from_str(include_str!("../fixtures/schedule-daily.json")).unwrap();
    assert_eq!(request_log::trigger_of(&schedule), Some(request_log::Trigger::Schedule));
    let report = request_log::handle(&app.ctx, router.clone(), schedule, Default::default()).await.unwrap();
    let this_month = chrono::Utc::now().date_naive().with_day(1).unwrap();
    for ahead in 0..=3 {
        let name = shared::request_log::partitions::partition_name(this_month + chrono::Months::new(ahead));
        assert!(report["created"].as_array().unwrap().contains(&json!(name)), "{name} not in {report}");
    }

    assert_eq!(request_log::trigger_of(&sqs_fixture()), Some(request_log::Trigger::Sqs));
    let error = request_log::handle(&app.ctx, router, json!({"hello": "world"}), Default::default()).await.unwrap_err();
    assert!(error.to_string().contains("unrecognised event"), "{error}");
}

/// A TCP proxy in front of PostgreSQL that counts round trips: every `Sync` (extended
/// protocol) and `Query` (simple protocol) message the client sends ends one.
pub(crate) async fn round_trip_counter(db_url: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut url = url::Url::parse(db_url).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(listener.local_addr().unwrap().port())).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut from_client, mut to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut pending, mut chunk, mut started) = (Vec::new(), vec![0u8; 1 << 16], false);
                while let Ok(n) = from_client.read(&mut chunk).await {
                    if n == 0 || to_server.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    pending.extend_from_slice(&chunk[..n]);
                    loop {
                        // The startup message has no type byte; every later one has.
                        let (header, len_at) = if started { (1, 1) } else { (0, 0) };
                        if pending.len() < len_at + 4 {
                            break;
                        }
                        let len = u32::from_be_bytes(pending[len_at..len_at + 4].try_into().unwrap()) as usize;
                        if pending.len() < header + len {
                            break;
                        }
                        if started && matches!(pending[0], b'S' | b'Q') {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        pending.drain(..header + len);
                        started = true;
                    }
                }
            });
        }
    });
    (url.to_string(), count)
}

#[tokio::test]
async fn a_batch_costs_one_database_round_trip_whatever_its_size() {
    use std::sync::atomic::Ordering;
    let app = TestApp::new().await;
    let (proxied, round_trips) = round_trip_counter(&app.db_url).await;
    // The bootstrap admin key is checked in memory, so the insert is the only database work.
    let counted =
        TestApp::with_vars(&[("DATABASE_URL", proxied.as_str()), ("ADMIN_API_KEY", app.admin_key.as_str())]).await;
    let router = request_log::router(counted.ctx.clone());
    for size in [1usize, 500, 1000] {
        let records: Vec<Value> = (0..size)
            .map(|i| {
                let mut r = record("llm", 200);
                r["request_id"] = json!(format!("{size}-{i}"));
                r
            })
            .collect();
        let before = round_trips.load(Ordering::SeqCst);
        let answer =
            call(&router, Method::POST, "/v1/requests", Some(&app.admin_key), Some(json!({"records": records}))).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert_eq!(round_trips.load(Ordering::SeqCst) - before, 1, "a batch of {size}");
    }
    assert_eq!(count(&app, "").await, 1501);
}

#[tokio::test]
async fn another_writers_record_with_the_same_request_id_is_stored_and_both_are_visible() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let a = app.api_key(&[Scope::RequestsWrite]).await;
    let b = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let mut claimed = record("llm", 200);
    claimed["request_id"] = json!("shared-1");
    // A claims the id first (twice: a repeat by the same writer is counted, stored once) ...
    for _ in 0..2 {
        let answer = call(&router, Method::POST, "/v1/requests", Some(&a), Some(claimed.clone())).await;
        assert_eq!(answer.json, json!({"accepted": 1}));
    }
    // ... and B's real record with the same id is still stored.
    let mut real = record("llm", 503);
    real["request_id"] = json!("shared-1");
    let answer = call(&router, Method::POST, "/v1/requests", Some(&b), Some(real)).await;
    assert_eq!(answer.json, json!({"accepted": 1}));
    assert_eq!(count(&app, "WHERE request_id = 'shared-1'").await, 2);

    let listed = call(&router, Method::GET, "/v1/requests", Some(&reader), None).await;
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let writers: std::collections::BTreeSet<String> =
        items.iter().map(|i| i["writer"].as_str().unwrap().to_owned()).collect();
    let stored: std::collections::BTreeSet<String> = app
        .client()
        .await
        .query("SELECT id::text FROM api_keys", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|id| writers.contains(id))
        .collect();
    assert_eq!(writers.len(), 2, "each record names its own writer: {writers:?}");
    assert_eq!(stored, writers, "writers are the sending API keys' ids");
    let b_record = items.iter().find(|i| i["status_code"] == 503).unwrap();
    let detail =
        call(&router, Method::GET, &format!("/v1/requests/{}", b_record["id"].as_str().unwrap()), Some(&reader), None)
            .await;
    assert_eq!(detail.json["writer"], b_record["writer"]);
}

#[tokio::test]
async fn u0000_in_a_text_field_is_a_400_naming_it_and_in_a_body_is_stored_as_ufffd() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let mut bad = record("llm", 200);
    bad["user_identifier"] = json!("a\u{0}b");
    let answer =
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": [record("llm", 200), bad]})))
            .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.json["field"], "records[1].user_identifier");
    assert_eq!(count(&app, "").await, 0);

    let mut body = record("llm", 200);
    body["request_body"] = json!("x\u{0}y");
    body["response_body"] = json!({"k\u{0}": "v\u{0}"});
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(body)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let stored: String =
        app.client().await.query_one("SELECT request_body FROM request_log", &[]).await.unwrap().get(0);
    assert_eq!(stored, "x\u{FFFD}y");

    // Over SQS: an item failure, the other message stored.
    let event = json!({"Records": [
        {"messageId": "m-1", "eventSource": "aws:sqs", "body": json!({"service": "a\u{0}", "endpoint": "/e", "method": "GET", "status_code": 200}).to_string()},
        {"messageId": "m-2", "eventSource": "aws:sqs", "body": json!({"service": "a", "endpoint": "/e", "method": "GET", "status_code": 200, "request_body": "\u{0}"}).to_string()}
    ]});
    let answer = request_log::handle(&app.ctx, router, event, Default::default()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]}));
    assert_eq!(count(&app, "WHERE writer = 'sqs'").await, 1);
}
