use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::put};
use serde_json::{Value, json};
use shared::migrations;

use crate::helpers::{self, TestApp, connect, database_url, empty_database};

/// A stand-in for the pre-signed S3 `ResponseURL`: records every PUT.
#[derive(Clone, Default)]
struct ResponseSink {
    received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn receive(State(sink): State<ResponseSink>, headers: HeaderMap, body: Bytes) -> &'static str {
    sink.received.lock().unwrap().push((headers, serde_json::from_slice(&body).unwrap()));
    ""
}

async fn response_sink() -> (ResponseSink, String) {
    let sink = ResponseSink::default();
    let addr = helpers::serve(Router::new().route("/cfn-response", put(receive)).with_state(sink.clone())).await;
    (sink, format!("http://{addr}/cfn-response?X-Amz-Signature=abc"))
}

fn cfn_event(request_type: &str, response_url: &str) -> Value {
    let mut event: Value = serde_json::from_str(include_str!("../fixtures/cfn-create.json")).unwrap();
    event["RequestType"] = json!(request_type);
    event["ResponseURL"] = json!(response_url);
    if request_type != "Create" {
        event["PhysicalResourceId"] = json!("keyledger-schema");
    }
    event
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn deadline_in(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

async fn context_for(db: &str, extra: &[(&str, &str)]) -> TestApp {
    let url = database_url(db);
    let mut vars = vec![("DATABASE_URL", url.as_str())];
    vars.extend_from_slice(extra);
    TestApp::with_vars(&vars).await
}

#[tokio::test]
async fn create_applies_every_migration_and_answers_success_at_the_response_url() {
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let (sink, url) = response_sink().await;
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Create", &url), deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS");

    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    assert!(headers.get("content-type").is_none(), "pre-signed URLs are signed without a content type");
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["Data"], json!({"SchemaVersion": migrations::latest_version()}));
    assert_eq!(body["PhysicalResourceId"], "keyledger-schema");
    assert_eq!(body["RequestId"], "unique-id-for-create-request");
    assert_eq!(body["LogicalResourceId"], "DatabaseSchema");

    let client = connect(&database_url(&db)).await;
    let status = migrations::status(&client).await.unwrap();
    assert!(status.pending.is_empty());
}

#[tokio::test]
async fn update_is_idempotent_and_delete_touches_nothing() {
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let (sink, url) = response_sink().await;
    migrate::handle(&app.ctx, &http(), cfn_event("Create", &url), deadline_in(60)).await.unwrap();
    app.api_key(&[shared::auth::Scope::Admin]).await;

    let update = migrate::handle(&app.ctx, &http(), cfn_event("Update", &url), deadline_in(60)).await.unwrap();
    assert_eq!(update["Status"], "SUCCESS");
    let delete = migrate::handle(&app.ctx, &http(), cfn_event("Delete", &url), deadline_in(60)).await.unwrap();
    assert_eq!(delete["Status"], "SUCCESS");
    assert_eq!(delete["PhysicalResourceId"], "keyledger-schema");
    assert_eq!(sink.received.lock().unwrap().len(), 3);

    let client = connect(&database_url(&db)).await;
    let keys: i64 = client.query_one("SELECT count(*) FROM api_keys", &[]).await.unwrap().get(0);
    assert_eq!(keys, 1, "Delete must keep the data");
}

#[tokio::test]
async fn a_database_that_is_down_answers_failed_with_the_reason() {
    // Port 1 on loopback: connection refused.
    let app = TestApp::with_vars(&[
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("DB_CONNECT_TIMEOUT_MS", "2000"),
    ])
    .await;
    let (sink, url) = response_sink().await;
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Create", &url), deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "FAILED");
    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].1["Status"], "FAILED");
    let reason = received[0].1["Reason"].as_str().unwrap();
    assert!(reason.contains("database unavailable"), "{reason}");
}

#[tokio::test]
async fn a_hanging_database_answers_failed_before_the_deadline() {
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = blackhole.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/none");
    let app = TestApp::with_vars(&[("DATABASE_URL", url.as_str()), ("DB_CONNECT_TIMEOUT_MS", "600000")]).await;
    let (sink, response_url) = response_sink().await;
    let deadline = deadline_in(8);
    let started = Instant::now();
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Create", &response_url), deadline).await.unwrap();
    assert_eq!(answer["Status"], "FAILED");
    assert!(SystemTime::now() < deadline, "the answer must be sent before the Lambda deadline");
    assert!(started.elapsed() < Duration::from_secs(8));
    let received = sink.received.lock().unwrap().clone();
    assert!(received[0].1["Reason"].as_str().unwrap().contains("did not finish"), "{:?}", received[0].1);
}

#[tokio::test]
async fn a_changed_applied_migration_is_an_error_not_a_skip() {
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    assert!(migrate::handle(&app.ctx, &http(), json!({"action": "up"}), deadline_in(60)).await.is_ok());
    let client = connect(&database_url(&db)).await;
    client.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1", &[]).await.unwrap();

    let err = migrate::handle(&app.ctx, &http(), json!({"action": "up"}), deadline_in(60)).await.unwrap_err();
    assert!(err.contains("changed after it was applied"), "{err}");
    let status = migrate::handle(&app.ctx, &http(), json!({"action": "status"}), deadline_in(60)).await.unwrap();
    assert_eq!(status["drifted"], json!([1]));

    let (sink, url) = response_sink().await;
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Update", &url), deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "FAILED");
    assert!(sink.received.lock().unwrap()[0].1["Reason"].as_str().unwrap().contains("migration 1"));
}

#[tokio::test]
async fn direct_invoke_reports_status_and_concurrent_ups_apply_once() {
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let before = migrate::handle(&app.ctx, &http(), json!({"action": "status"}), deadline_in(60)).await.unwrap();
    assert_eq!(before["schema_version"], 0);
    assert_eq!(before["pending"].as_array().unwrap().len(), migrations::MIGRATIONS.len());

    let runs = (0..4).map(|_| {
        let ctx = app.another_context("migrate");
        async move { migrate::handle(&ctx, &http(), json!({"action": "up"}), deadline_in(60)).await.unwrap() }
    });
    let reports = futures::future::join_all(runs).await;
    let applied: usize = reports.iter().map(|r| r["applied"].as_array().unwrap().len()).sum();
    assert_eq!(applied, migrations::MIGRATIONS.len(), "{reports:?}");
    assert!(reports.iter().all(|r| r["schema_version"] == json!(migrations::latest_version())));

    let bad = migrate::handle(&app.ctx, &http(), json!({"action": "down"}), deadline_in(60)).await;
    assert!(bad.is_err());
}

fn with_hashes(mut event: Value, new: &str, old: Option<&str>) -> Value {
    event["ResourceProperties"]["SchemaHash"] = json!(new);
    if let Some(old) = old {
        event["OldResourceProperties"] = event["ResourceProperties"].clone();
        event["OldResourceProperties"]["SchemaHash"] = json!(old);
    }
    event
}

#[tokio::test]
async fn a_rollback_to_an_older_schema_hash_answers_success_and_changes_nothing() {
    // An empty database shows whether anything was applied.
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let (sink, url) = response_sink().await;
    let own = shared::roles::schema_hash();
    let older = "1".repeat(64);
    let rollback = with_hashes(cfn_event("Update", &url), &older, Some(&own));
    let answer = migrate::handle(&app.ctx, &http(), rollback, deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["Data"], json!({"SchemaVersion": 0}));
    assert_eq!(sink.received.lock().unwrap()[0].1["Status"], "SUCCESS");
    let client = connect(&database_url(&db)).await;
    assert_eq!(migrations::status(&client).await.unwrap().schema_version, 0, "a rollback applies nothing");

    // Not a rollback: the old properties hold another hash, so the new one must be ours.
    let stale = with_hashes(cfn_event("Update", &url), &older, Some(&"2".repeat(64)));
    let answer = migrate::handle(&app.ctx, &http(), stale, deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(answer["Reason"].as_str().unwrap().contains("SchemaHash"));
    assert_eq!(migrations::status(&client).await.unwrap().schema_version, 0);
}

#[tokio::test]
async fn a_parameter_only_update_runs_the_migrations_on_the_database_it_names() {
    // A new database behind the same hash (DatabaseHost changed): the Update must apply
    // everything there, not answer from memory.
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let (_sink, url) = response_sink().await;
    let own = shared::roles::schema_hash();
    let mut event = with_hashes(cfn_event("Update", &url), &own, Some(&own));
    event["ResourceProperties"]["DatabaseHost"] = json!("new-db.example.internal");
    event["OldResourceProperties"]["DatabaseHost"] = json!("old-db.example.internal");
    let answer = migrate::handle(&app.ctx, &http(), event, deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["Data"], json!({"SchemaVersion": migrations::latest_version()}));
    let client = connect(&database_url(&db)).await;
    assert!(migrations::status(&client).await.unwrap().pending.is_empty());
}

#[tokio::test]
async fn migrations_run_under_their_own_statement_timeout_not_the_functions() {
    // The functions' statement timeout at 5 ms: the initial migration takes longer than
    // that, so it passes only because migrate sets its own for the transaction.
    let db = empty_database().await;
    let app = context_for(&db, &[("DB_STATEMENT_TIMEOUT_MS", "5")]).await;
    let (_sink, url) = response_sink().await;
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Create", &url), deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
}

#[tokio::test]
async fn a_migration_waiting_for_a_lock_gives_up_and_answers_failed() {
    let db = empty_database().await;
    let app = context_for(&db, &[]).await;
    let (_sink, url) = response_sink().await;
    migrate::handle(&app.ctx, &http(), cfn_event("Create", &url), deadline_in(60)).await.unwrap();
    // A long transaction holds the table migrate must read.
    let mut holder = connect(&database_url(&db)).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = Instant::now();
    let answer = migrate::handle(&app.ctx, &http(), cfn_event("Update", &url), deadline_in(120)).await.unwrap();
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(answer["Reason"].as_str().unwrap().contains("lock timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(30), "lock_timeout, not the Lambda deadline");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_parameter_only_update_provisions_the_roles_on_the_new_database() {
    // The stack moved to another database (DatabaseName changed, same code and hash): the
    // Update must run the role provisioning there too, or the functions could not log in.
    let first = empty_database().await;
    let names = crate::roles::role_names();
    let (ids, _passwords) = crate::roles::role_secrets(&names).await;
    let (sink, url) = response_sink().await;
    let own = shared::roles::schema_hash();
    let on_first = TestApp::with_vars(&[("DATABASE_URL", &database_url(&first)), ("ROLE_SECRET_IDS", &ids)]).await;
    let mut create = with_hashes(cfn_event("Create", &url), &own, None);
    create["ResourceProperties"]["DatabaseName"] = json!(first);
    let answer = migrate::handle(&on_first.ctx, &http(), create, deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");

    let second = empty_database().await;
    let on_second = TestApp::with_vars(&[("DATABASE_URL", &database_url(&second)), ("ROLE_SECRET_IDS", &ids)]).await;
    let mut update = with_hashes(cfn_event("Update", &url), &own, Some(&own));
    update["ResourceProperties"]["DatabaseName"] = json!(second);
    update["OldResourceProperties"]["DatabaseName"] = json!(first);
    let answer = migrate::handle(&on_second.ctx, &http(), update, deadline_in(60)).await.unwrap();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(sink.received.lock().unwrap().len(), 2);

    // Each role can do its job on the new database: its grants were applied there.
    let second_app = TestApp { db_url: database_url(&second), ..on_second };
    let token_fetch = crate::roles::connect_as(&second_app, &names["token-fetch"]).await;
    token_fetch.query("SELECT count(*) FROM connections", &[]).await.expect("token-fetch's grants on the new database");
    let license = crate::roles::connect_as(&second_app, &names["license-validate"]).await;
    license.query("SELECT count(*) FROM licenses", &[]).await.expect("license-validate's grants on the new database");
    // Grants are per database: revoke them on both before the roles can go.
    let first_app = TestApp { db_url: database_url(&first), ..on_first };
    crate::roles::drop_roles(&first_app, names.values()).await;
    crate::roles::drop_roles(&second_app, names.values()).await;
}

/// Migration 0007 copies each client's expiry buffer onto its connections (the token hot path
/// reads it there): rows written by the previous release get their client's value, rows of a
/// client without one stay NULL, and the lookup returns the copy.
#[tokio::test]
async fn migration_7_backfills_the_clients_expiry_buffers_onto_existing_connections() {
    let db = empty_database().await;
    let mut client = connect(&database_url(&db)).await;
    assert_eq!(migrations::up_to(&mut client, 6).await.unwrap().schema_version, 6);
    client
        .batch_execute(
            "INSERT INTO clients (id, name, authorize_url, token_url, client_id, client_secret, redirect_uri,
                                  auth_method, created_at, updated_at, version, quirks)
             VALUES ('00000000-0000-4000-8000-000000000001', 'with', 'https://a', 'https://t', 'c', 'sealed',
                     'https://r', 'client_secret_post', now(), now(), 1, '{\"expiry_buffer_secs\": 120}'),
                    ('00000000-0000-4000-8000-000000000002', 'without', 'https://a', 'https://t', 'c', 'sealed',
                     'https://r', 'client_secret_post', now(), now(), 1, '{}');
             INSERT INTO connections (connection_id, client_id, status, created_at, updated_at, version)
             VALUES ('c-with', '00000000-0000-4000-8000-000000000001', 'active', now(), now(), 1),
                    ('c-without', '00000000-0000-4000-8000-000000000002', 'active', now(), now(), 1);",
        )
        .await
        .unwrap();
    let report = migrations::up(&mut client).await.unwrap();
    assert!(report.applied.contains(&7), "{:?}", report.applied);
    let rows = client.query("SELECT connection_id, expiry_buffer_secs FROM connections ORDER BY 1", &[]).await.unwrap();
    let copies: Vec<(String, Option<i32>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(copies, vec![("c-with".to_owned(), Some(120)), ("c-without".to_owned(), None)]);
    let looked_up: Option<i32> =
        client.query_one("SELECT o_expiry_buffer_secs FROM token_lookup(NULL, 'c-with')", &[]).await.unwrap().get(0);
    assert_eq!(looked_up, Some(120));
}
