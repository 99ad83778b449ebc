//! `keyledger import-licenses --sqlite PATH`: the old license service's SQLite tables
//! (seed 003) through the event-sourced path, idempotently.

use std::path::Path;

use axum::http::Method;
use serde_json::{Value, json};

use crate::licenses::World;

/// The old service's schema, as seed 003 describes it, with rows of every kind it held.
fn old_service_file(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE licenses (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, license_key TEXT NOT NULL UNIQUE,
                                expiry_date TEXT, created_at TEXT DEFAULT CURRENT_TIMESTAMP, status TEXT DEFAULT 'active');
         CREATE TABLE installations (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL, installation_id TEXT NOT NULL,
                                     activated_at TEXT DEFAULT CURRENT_TIMESTAMP, last_seen TEXT);
         CREATE INDEX idx_licenses_email ON licenses (email);
         CREATE INDEX idx_installations_email ON installations (email);
         CREATE INDEX idx_installations_id ON installations (installation_id);
         INSERT INTO licenses (email, license_key, expiry_date, created_at, status) VALUES
           ('anna@example.com',  'OLD-AAAA-1111', '2999-12-31',                 '2024-01-02 03:04:05', 'active'),
           ('bob@example.com',   'OLD-BBBB-2222', NULL,                         '2024-02-03T04:05:06', 'suspended'),
           ('carl@example.com',  'OLD-CCCC-3333', '2023-01-01',                 '2023-01-01 00:00:00', 'expired'),
           ('dora@example.com',  'OLD-DDDD-4444', NULL,                         '2024-03-01 00:00:00', 'revoked'),
           ('bad key@x',         'has spaces inside', NULL,                     NULL,                  'active'),
           ('eve@example.com',   'OLD-EEEE-5555', 'someday',                    NULL,                  'active');
         INSERT INTO installations (email, installation_id, activated_at, last_seen) VALUES
           ('anna@example.com', 'anna-laptop',  '2024-01-03 10:00:00', '2024-06-01 12:00:00'),
           ('Anna@Example.com', 'anna-desktop', '2024-01-04 10:00:00', NULL),
           ('bob@example.com',  'bob-pc',       '2024-02-04 10:00:00', '2024-02-05 10:00:00'),
           ('nobody@example.com', 'ghost',      '2024-02-04 10:00:00', NULL);",
    )
    .unwrap();
}

fn run_cli(w: &World, file: &Path) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyledger"))
        .args(["import-licenses", "--sqlite"])
        .arg(file)
        .env_clear()
        .envs(w.app.vars.iter())
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for key in ["OLD-AAAA-1111", "OLD-BBBB-2222", "OLD-CCCC-3333"] {
        assert!(!stderr.contains(key), "a key reached the logs");
    }
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn importing_the_old_sqlite_file_is_idempotent_and_prints_counts() {
    let w = World::new().await;
    let dir = std::env::temp_dir().join(format!("kl-import-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("licenses.db");
    old_service_file(&file);

    let first = run_cli(&w, &file);
    assert_eq!(
        first["licenses"],
        json!({"read": 6, "imported": 4, "skipped": 2,
               "skipped_because": {"invalid_license_key": 1, "invalid_expiry_date": 1}})
    );
    assert_eq!(
        first["installations"],
        json!({"read": 4, "imported": 3, "skipped": 1, "skipped_because": {"no_license_for_email": 1}})
    );

    // Imported licenses behave like issued ones.
    assert_eq!(w.check("validate", "OLD-AAAA-1111", "anna-laptop").await["code"], "VALID");
    assert_eq!(w.check("validate", "OLD-AAAA-1111", "anna-desktop").await["code"], "VALID");
    assert_eq!(w.check("validate", "OLD-BBBB-2222", "bob-pc").await["code"], "SUSPENDED");
    assert_eq!(w.check("validate", "OLD-CCCC-3333", "x").await["code"], "EXPIRED");
    assert_eq!(w.check("validate", "OLD-DDDD-4444", "x").await["code"], "REVOKED");
    let anna = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": "OLD-AAAA-1111"}))).await;
    assert_eq!(anna.json["created_at"], "2024-01-02T03:04:05Z");
    assert_eq!(anna.json["expires_at"], "3000-01-01T00:00:00Z", "an expiry date includes its day");
    assert_eq!(anna.json["max_installations"], 2, "room for every imported installation");
    assert_eq!(anna.json["metadata"]["imported_from"], "license-service");
    let laptop =
        anna.json["installations"].as_array().unwrap().iter().find(|i| i["installation_id"] == "anna-laptop").unwrap();
    assert_eq!(laptop["activated_at"], "2024-01-03T10:00:00Z");
    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{}", anna.json["id"].as_str().unwrap()), None).await;
    assert_eq!(shown.json["license_key"], "OLD-AAAA-1111", "the key can be revealed");

    // Deactivated since: a re-run must not bring it back. Then nothing changes.
    assert_eq!(w.check("deactivate", "OLD-AAAA-1111", "anna-desktop").await["code"], "DEACTIVATED");
    let client = w.app.client().await;
    let count = || async {
        let e: i64 = client.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
        let i: i64 = client.query_one("SELECT count(*) FROM installations", &[]).await.unwrap().get(0);
        (e, i)
    };
    let before = count().await;
    let second = run_cli(&w, &file);
    assert_eq!(second["licenses"]["read"], 6);
    assert_eq!(second["licenses"]["imported"], 0);
    assert_eq!(second["licenses"]["skipped"], 6);
    assert_eq!(second["licenses"]["skipped_because"]["already_imported"], 4);
    assert_eq!(
        second["installations"],
        json!({"read": 4, "imported": 0, "skipped": 4,
        "skipped_because": {"already_imported": 3, "no_license_for_email": 1}})
    );
    assert_eq!(count().await, before, "a second run changes nothing");
    w.replay_is_clean().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_missing_file_is_an_error_that_names_it() {
    let w = World::new().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyledger"))
        .args(["import-licenses", "--sqlite", "/nonexistent/old.db"])
        .env_clear()
        .envs(w.app.vars.iter())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/old.db"));
}
