//! Request log partitions (DESIGN §6.7): created three months ahead, rows moved out of the
//! default partition, whole partitions dropped after the retention period.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::json;
use shared::{auth::Scope, request_log::partitions};

use crate::helpers::{TestApp, call};

async fn partitions_of(app: &TestApp) -> Vec<String> {
    let rows = app
        .client()
        .await
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'request_log'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn ids_in(app: &TestApp, table: &str) -> Vec<String> {
    let rows =
        app.client().await.query(&format!("SELECT request_id FROM {table} ORDER BY occurred_at"), &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn table_exists(app: &TestApp, name: &str) -> bool {
    let row = app.client().await.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.unwrap();
    row.get(0)
}

#[tokio::test]
async fn upkeep_creates_three_months_ahead_moves_default_rows_and_drops_whole_expired_partitions() {
    let app = TestApp::new().await;
    let router = request_log::router(app.ctx.clone());
    let writer = app.api_key(&[Scope::RequestsWrite]).await;
    // Records dated in the past (and one far ahead), ingested before any upkeep has run, so
    // they all sit in the default partition.
    let dated = [
        ("may", "2026-05-01T08:00:00Z"),
        ("july", "2026-07-15T08:00:00Z"),
        ("august", "2026-08-10T08:00:00Z"),
        ("november", "2026-11-20T08:00:00Z"),
        ("next-june", "2027-06-01T08:00:00Z"),
    ];
    let records: Vec<_> = dated
        .iter()
        .map(|(id, t)| json!({"timestamp": t, "service": "old", "endpoint": "/e", "method": "GET", "status_code": 200, "request_id": id}))
        .collect();
    let answer = call(&router, Method::POST, "/v1/requests", Some(&writer), Some(json!({"records": records}))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(partitions_of(&app).await, ["request_log_default"]);

    // 22 November 2026 with 90 days' retention: the cut-off is 24 August, so every month
    // before August is wholly expired; August itself still holds rows inside retention.
    let now: DateTime<Utc> = "2026-11-22T03:00:00Z".parse().unwrap();
    let report = partitions::upkeep(app.ctx.db(), now, 90).await.unwrap();
    assert_eq!(
        report.created,
        [
            "request_log_y2026m05",
            "request_log_y2026m07",
            "request_log_y2026m08",
            "request_log_y2026m11",
            "request_log_y2026m12",
            "request_log_y2027m01",
            "request_log_y2027m02"
        ]
    );
    assert_eq!(report.dropped, ["request_log_y2026m05", "request_log_y2026m07"]);
    assert_eq!(report.moved_rows, 4);
    assert_eq!(report.deleted_keys, 2, "the keys of dropped records go with them");
    assert_eq!(
        partitions_of(&app).await,
        [
            "request_log_default",
            "request_log_y2026m08",
            "request_log_y2026m11",
            "request_log_y2026m12",
            "request_log_y2027m01",
            "request_log_y2027m02"
        ]
    );
    assert_eq!(ids_in(&app, "request_log").await, ["august", "november", "next-june"]);
    assert_eq!(ids_in(&app, "request_log_y2026m08").await, ["august"]);
    assert_eq!(ids_in(&app, "request_log_y2026m11").await, ["november"]);
    assert_eq!(ids_in(&app, "request_log_default").await, ["next-june"], "beyond the horizon it waits in default");
    assert!(!table_exists(&app, "request_log_y2026m05").await);

    // New records route straight into their partition, and a second run the same day is a no-op.
    let fresh = json!({"timestamp": "2026-12-24T08:00:00Z", "service": "new", "endpoint": "/e", "method": "GET", "status_code": 200, "request_id": "xmas"});
    assert_eq!(
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(fresh)).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(ids_in(&app, "request_log_y2026m12").await, ["xmas"]);
    let again = partitions::upkeep(app.ctx.db(), now, 90).await.unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty() && again.moved_rows == 0, "{again:?}");

    // A redelivery of a dropped record is stored again (its key went with it), waits in the
    // default partition, and the next upkeep disposes of it by partition too.
    let july = json!({"timestamp": "2026-07-15T08:00:00Z", "service": "old", "endpoint": "/e", "method": "GET", "status_code": 200, "request_id": "july"});
    assert_eq!(
        call(&router, Method::POST, "/v1/requests", Some(&writer), Some(july)).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(ids_in(&app, "request_log_default").await, ["july", "next-june"]);

    // Four months later: the horizon reaches June 2027, whose partition must take over the
    // row waiting in default; retention now ends in December, so August and November go.
    let later: DateTime<Utc> = "2027-03-05T03:00:00Z".parse().unwrap();
    let report = partitions::upkeep(app.ctx.db(), later, 90).await.unwrap();
    assert_eq!(
        report.created,
        [
            "request_log_y2026m07",
            "request_log_y2027m03",
            "request_log_y2027m04",
            "request_log_y2027m05",
            "request_log_y2027m06"
        ]
    );
    assert_eq!(report.dropped, ["request_log_y2026m07", "request_log_y2026m08", "request_log_y2026m11"]);
    assert_eq!(report.moved_rows, 2);
    assert_eq!(ids_in(&app, "request_log_y2027m06").await, ["next-june"]);
    assert!(ids_in(&app, "request_log_default").await.is_empty());
    assert_eq!(ids_in(&app, "request_log").await, ["xmas", "next-june"]);
    assert!(!table_exists(&app, "request_log_y2026m08").await, "dropped as a whole table, not emptied");

    // Reads across the reshaped partitions still work, by list and by id.
    let reader = app.api_key(&[Scope::RequestsRead]).await;
    let listed = call(&router, Method::GET, "/v1/requests", Some(&reader), None).await;
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let id = items[0]["id"].as_str().unwrap();
    let one = call(&router, Method::GET, &format!("/v1/requests/{id}"), Some(&reader), None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["request_id"], "next-june");
}

#[tokio::test]
async fn concurrent_upkeeps_do_not_collide() {
    let app = TestApp::new().await;
    let now = Utc::now();
    let runs = (0..4).map(|_| {
        let db = app.ctx.db().clone();
        tokio::spawn(async move { partitions::upkeep(&db, now, 90).await })
    });
    let reports: Vec<_> = futures::future::join_all(runs).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(reports.iter().map(|r| r.created.len()).sum::<usize>(), 4, "each month is created once: {reports:?}");
}
