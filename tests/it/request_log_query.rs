//! Request log queries (DESIGN §6.7): keyset pagination newest first, every filter.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use shared::auth::Scope;
use uuid::Uuid;

use crate::helpers::{TestApp, call};

fn base() -> DateTime<Utc> {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn ingest(router: &axum::Router, key: &str, records: Vec<Value>) {
    for chunk in records.chunks(1000) {
        let answer = call(router, Method::POST, "/v1/requests", Some(key), Some(json!({"records": chunk}))).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    }
}

fn position(item: &Value) -> (DateTime<Utc>, Uuid) {
    (item["timestamp"].as_str().unwrap().parse().unwrap(), item["id"].as_str().unwrap().parse().unwrap())
}

#[tokio::test]
async fn walking_all_pages_returns_each_record_once_newest_first_while_new_ones_arrive() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    // Two records per second, so that ties on the timestamp are broken by id.
    let originals: Vec<Value> = (0..1234)
        .map(|i| {
            json!({"timestamp": at(base() + Duration::seconds(i / 2)), "service": "walk", "endpoint": "/e",
                   "method": "GET", "status_code": 200, "request_id": format!("walk-{i}")})
        })
        .collect();
    ingest(&router, &writer, originals).await;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut positions = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/requests?limit=100".to_owned(),
            Some(c) => format!("/v1/requests?limit=100&cursor={c}"),
        };
        let page = call(&router, Method::GET, &path, Some(&reader), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        pages += 1;
        for item in page.json["items"].as_array().unwrap() {
            *seen.entry(item["request_id"].as_str().unwrap_or("").to_owned()).or_default() += 1;
            positions.push(position(item));
        }
        if pages == 1 {
            // New traffic while the operator pages: newer than everything, and some in the
            // middle of the range already being walked.
            let arriving: Vec<Value> = (0..60)
                .map(|i| {
                    let t = if i % 2 == 0 { Utc::now() } else { base() + Duration::milliseconds(i * 7919 + 250) };
                    json!({"timestamp": at(t), "service": "walk", "endpoint": "/e", "method": "GET",
                           "status_code": 200, "request_id": format!("new-{i}")})
                })
                .collect();
            ingest(&router, &writer, arriving).await;
        }
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 100, "pagination does not end");
    }
    for i in 0..1234 {
        assert_eq!(seen.get(&format!("walk-{i}")), Some(&1), "walk-{i} must appear exactly once");
    }
    assert!(seen.values().all(|n| *n == 1), "no record appears twice");
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "strictly newest first");
    assert!(
        (0..60).step_by(2).all(|i| !seen.contains_key(&format!("new-{i}"))),
        "records newer than the first page never appear later"
    );
    assert!(pages >= 13);
}

fn filtered_record(i: i64) -> Value {
    let user = match i % 3 {
        0 => json!("u1@example.com"),
        1 => json!("u2@example.com"),
        _ => Value::Null,
    };
    let service = ["alpha", "beta"][(i % 2) as usize];
    let endpoint = ["/x", "/y"][((i / 2) % 2) as usize];
    let method = ["GET", "post"][((i / 4) % 2) as usize];
    let status = [200, 404, 500, 503, 201][(i % 5) as usize];
    json!({
        "timestamp": at(base() + Duration::hours(i)),
        "service": service,
        "endpoint": endpoint,
        "method": method,
        "status_code": status,
        "user_identifier": user,
        "request_id": format!("f-{i}"),
    })
}

#[tokio::test]
async fn every_filter_narrows_the_list_and_bad_parameters_are_named() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let records: Vec<Value> = (0..60).map(filtered_record).collect();
    ingest(&router, &writer, records.clone()).await;

    let ids = |query: &str| {
        let (router, reader, query) = (router.clone(), reader.clone(), query.to_owned());
        async move {
            let answer =
                call(&router, Method::GET, &format!("/v1/requests?limit=500&{query}"), Some(&reader), None).await;
            assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.text);
            answer.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["request_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let expected = |keep: &dyn Fn(i64, &Value) -> bool| {
        (0..60).rev().filter(|i| keep(*i, &records[*i as usize])).map(|i| format!("f-{i}")).collect::<Vec<_>>()
    };

    assert_eq!(ids("").await, expected(&|_, _| true));
    assert_eq!(ids("service=alpha").await, expected(&|_, r| r["service"] == "alpha"));
    assert_eq!(ids("endpoint=/y").await, expected(&|_, r| r["endpoint"] == "/y"));
    assert_eq!(ids("method=POST").await, expected(&|_, r| r["method"] == "post"));
    assert_eq!(ids("method=get").await, expected(&|_, r| r["method"] == "GET"));
    assert_eq!(ids("status=404").await, expected(&|_, r| r["status_code"] == 404));
    assert_eq!(ids("status_class=5xx").await, expected(&|_, r| r["status_code"].as_i64().unwrap() >= 500));
    assert_eq!(ids("status_class=2xx").await, expected(&|_, r| r["status_code"].as_i64().unwrap() < 300));
    assert_eq!(ids("user=u2@example.com").await, expected(&|_, r| r["user_identifier"] == "u2@example.com"));
    // `from` is inclusive and `to` exclusive: f-10 sits exactly on `from`, f-20 exactly on `to`.
    let (from, to) = (at(base() + Duration::hours(10)), at(base() + Duration::hours(20)));
    assert_eq!(ids(&format!("from={from}&to={to}")).await, expected(&|i, _| (10..20).contains(&i)));
    assert_eq!(ids(&format!("from={from}")).await, expected(&|i, _| i >= 10));
    assert_eq!(ids(&format!("to={to}")).await, expected(&|i, _| i < 20));
    // An offset, percent-encoded or with its `+` turned into a space by a careless client.
    assert_eq!(
        ids("from=2026-11-01T11:00:00%2B01:00&to=2026-11-01T21:00:00+01:00").await,
        expected(&|i, _| (10..20).contains(&i))
    );
    assert_eq!(
        ids(&format!("service=beta&status_class=5xx&method=GET&endpoint=/x&from={from}")).await,
        expected(&|i, r| r["service"] == "beta"
            && r["status_code"].as_i64().unwrap() >= 500
            && r["method"] == "GET"
            && r["endpoint"] == "/x"
            && i >= 10)
    );
    assert_eq!(
        ids("service=alpha&status=500").await,
        expected(&|_, r| r["service"] == "alpha" && r["status_code"] == 500)
    );
    assert!(ids("service=nobody").await.is_empty());

    // Filters and pagination together.
    let first = call(&router, Method::GET, "/v1/requests?service=alpha&limit=7", Some(&reader), None).await;
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let second = call(
        &router,
        Method::GET,
        &format!("/v1/requests?service=alpha&limit=500&cursor={cursor}"),
        Some(&reader),
        None,
    )
    .await;
    let walked: Vec<String> = [first.json["items"].as_array().unwrap(), second.json["items"].as_array().unwrap()]
        .into_iter()
        .flatten()
        .map(|i| i["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(walked, expected(&|_, r| r["service"] == "alpha"));
    assert_eq!(second.json["next_cursor"], Value::Null);

    for (query, field) in [
        ("status_class=6xx", "status_class"),
        ("status=99", "status"),
        ("status=abc", "status"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("colour=red", "colour"),
    ] {
        let answer = call(&router, Method::GET, &format!("/v1/requests?{query}"), Some(&reader), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json["field"], field, "{query}: {}", answer.json);
    }
}
