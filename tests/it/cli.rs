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

/// `keyledger keys generate-signing`'s ring as JSON, after checking it is one line on stdout.
fn generated_ring(args: &[&str]) -> serde_json::Value {
    let out = keyledger(&[], &[&["keys", "generate-signing"], args].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let ring = shared::signing::SigningKeys::parse(&secrecy::SecretString::from(stdout.trim().to_owned()))
        .unwrap_or_else(|e| panic!("the ring parser refuses the output: {e}"));
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["current"], ring.current_key_id());
    json
}

#[test]
fn keys_generate_signing_prints_a_fresh_ring_with_only_the_seed_it_needs() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    for (args, id) in [(&[][..], "s1"), (&["--id", "2026-05.a_b"][..], "2026-05.a_b")] {
        let first = generated_ring(args);
        let second = generated_ring(args);
        for ring in [&first, &second] {
            // The ring format is {"current", "keys": {id: base64 32-byte seed}}: the seed is the
            // only private part (the public key derives from it), and nothing else is printed.
            let object = ring.as_object().unwrap();
            assert_eq!(object.keys().collect::<Vec<_>>(), ["current", "keys"], "{ring}");
            assert_eq!(ring["current"], id, "{ring}");
            let keys = ring["keys"].as_object().unwrap();
            assert_eq!(keys.keys().collect::<Vec<_>>(), [id], "{ring}");
            let seed = STANDARD.decode(keys[id].as_str().unwrap()).unwrap();
            assert_eq!(seed.len(), 32, "{ring}");
        }
        assert_ne!(first["keys"][id], second["keys"][id], "two runs give the same seed");
    }
    // An id the ring would refuse is refused here too, before anything is printed.
    let out = keyledger(&[], &["keys", "generate-signing", "--id", "a\"b"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--id"), "{}", String::from_utf8_lossy(&out.stderr));
}
