//! `GET /v1/requests/stats` (DESIGN §6.10) over real PostgreSQL: exact counts and
//! percentiles per bucket for seeded records, filters, the default bucket and named errors.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::{
    auth::Scope,
    request_log::stats::{Bucket, Stats, StatsItem},
};

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

/// The former statement, kept as the definition of the answer: every record of the range
/// grouped by `date_trunc`, counts and `percentile_cont` per group.
const REFERENCE: &str = "
SELECT date_trunc($1, occurred_at, 'UTC') AS start, count(*) AS count,
       count(*) FILTER (WHERE status_code BETWEEN 400 AND 499) AS client_errors,
       count(*) FILTER (WHERE status_code >= 500) AS server_errors,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms
FROM request_log
WHERE occurred_at >= $2 AND occurred_at < $3 AND ($4::text IS NULL OR service = $4) AND ($5::text IS NULL OR endpoint = $5)
GROUP BY 1 ORDER BY 1";

#[tokio::test]
async fn stats_per_bucket_equal_grouping_every_record_by_date_trunc_across_partitions() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    // October to January as partitions: the records below straddle the month boundary.
    shared::request_log::partitions::upkeep(app.ctx.db(), "2026-10-15T00:00:00Z".parse().unwrap(), 3650).await.unwrap();
    let client = app.client().await;
    // 3,000 records over four days and 600 in the hour around midnight of November 1st
    // (minute buckets with several records), random statuses and durations (one in ten
    // without a duration, a long tail), from a fixed seed.
    client
        .batch_execute(
            "SELECT setseed(0.18);
             INSERT INTO request_log (id, occurred_at, service, endpoint, method, status_code, duration_ms)
             SELECT gen_random_uuid(), at, (ARRAY['llm', 'billing'])[1 + (i % 2)], (ARRAY['/a', '/b', '/c'])[1 + (i % 3)],
                    'GET', (ARRAY[200, 201, 404, 429, 500, 503])[1 + floor(random() * 6)::int],
                    CASE WHEN random() < 0.1 THEN NULL ELSE floor(random() ^ 3 * 5000)::int END
             FROM (SELECT i, timestamptz '2026-10-30T00:00:00Z' + random() * interval '4 days' AS at
                   FROM generate_series(1, 3000) AS i
                   UNION ALL
                   SELECT i, timestamptz '2026-10-31T23:30:00Z' + random() * interval '1 hour'
                   FROM generate_series(3001, 3600) AS i) AS r",
        )
        .await
        .unwrap();
    let in_partitions: i64 = client
        .query_one(
            "SELECT count(DISTINCT tableoid) FROM request_log WHERE occurred_at >= '2026-10-30' AND occurred_at < '2026-11-03'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_partitions, 2, "the records span two partitions");

    let cases = [
        ("2026-10-30T07:13:20Z", "2026-11-02T05:00:00Z", "hour", None, None),
        ("2026-10-29T00:00:00Z", "2026-11-04T00:00:00Z", "day", None, None),
        ("2026-10-30T12:00:00.5Z", "2026-11-02T12:00:00Z", "day", Some("llm"), None),
        ("2026-10-31T23:30:30Z", "2026-11-01T00:30:00Z", "minute", None, None),
        ("2026-10-31T23:30:30Z", "2026-11-01T00:30:00Z", "minute", Some("billing"), None),
        ("2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z", "hour", None, Some("/b")),
        ("2026-10-30T00:00:00Z", "2026-11-03T00:00:00Z", "hour", Some("llm"), Some("/c")),
    ];
    for (from, to, bucket, service, endpoint) in cases {
        let mut url = format!("/v1/requests/stats?from={from}&to={to}&bucket={bucket}");
        if let Some(service) = service {
            url.push_str(&format!("&service={service}"));
        }
        if let Some(endpoint) = endpoint {
            url.push_str(&format!("&endpoint={endpoint}"));
        }
        let answer = call(&router, Method::GET, &url, Some(&reader), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {}", answer.text);
        let (from, to): (DateTime<Utc>, DateTime<Utc>) = (from.parse().unwrap(), to.parse().unwrap());
        let expected: Vec<StatsItem> = client
            .query(REFERENCE, &[&bucket, &from, &to, &service, &endpoint])
            .await
            .unwrap()
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
        assert!(expected.len() > 3 && expected.iter().any(|i| i.p95_ms.is_some()), "{url}: {expected:?}");
        // Exact equality, floats included (the same percentile_cont over the same records): the
        // body is compared as text, because serde_json's default float parsing may be one ulp off.
        let expected = Stats { bucket: Bucket::parse(bucket).unwrap(), items: expected };
        assert_eq!(answer.text, serde_json::to_string(&expected).unwrap(), "{url}");
    }
}
