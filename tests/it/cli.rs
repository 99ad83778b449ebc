//! The `keyledger` binary: configuration errors name the variable; commands work end to end.

use std::process::Command;

use crate::helpers::{connect, database_url, empty_database};

pub(crate) fn keyledger(vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyledger"));
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("LOG_FORMAT", "json").args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_or_malformed_setting_stops_start_up_naming_the_variable() {
    let out = keyledger(&[], &["migrate", "status"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");

    let out =
        keyledger(&[("DATABASE_URL", "postgres://x@127.0.0.1/db"), ("DB_POOL_MAX", "lots")], &["migrate", "status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("DB_POOL_MAX") && stderr.contains("lots"), "{stderr}");
}

#[tokio::test]
async fn migrate_up_status_api_key_and_replay_work_from_the_command_line() {
    let db = empty_database().await;
    let url = database_url(&db);
    let vars = [("DATABASE_URL", url.as_str())];
    let up = keyledger(&vars, &["migrate", "up"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let report: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(report["schema_version"], shared::migrations::latest_version());

    let created =
        keyledger(&vars, &["api-key", "create", "--name", "ops", "--scope", "admin", "--scope", "tokens:read"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert!(key["key"].as_str().unwrap().starts_with("kl_"));
    let bad = keyledger(&vars, &["api-key", "create", "--name", "ops", "--scope", "root"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scope 'root'"));

    let replay = keyledger(&vars, &["replay", "--verify"]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stdout));
    connect(&url).await.execute("UPDATE api_keys SET name = 'edited'", &[]).await.unwrap();
    let replay = keyledger(&vars, &["replay", "--verify"]);
    assert_eq!(replay.status.code(), Some(1), "a tampered projection must fail the verification");

    let status = keyledger(&vars, &["migrate", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pending"], serde_json::json!([]));
}
