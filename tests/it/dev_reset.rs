//! `scripts/dev --reset` (issue 17): drops and recreates the local database after a typed
//! confirmation, and refuses a database elsewhere or an environment that names a Lambda
//! function or an AWS secret id. Runs the real script against this test's own database.

use std::{io::Write, process::Stdio};

use crate::helpers::{TestApp, connect};

/// Runs `scripts/dev --reset` with `vars` (and nothing of this process's AWS setup), `input` on stdin.
fn reset(vars: &[(&str, &str)], input: &str) -> (bool, String) {
    let mut cmd = std::process::Command::new(crate::deploy::root().join("scripts/dev"));
    cmd.arg("--reset").env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["PATH", "HOME", "CARGO_TARGET_DIR"] {
        if let Ok(v) = std::env::var(var) {
            cmd.env(var, v);
        }
    }
    cmd.envs(vars.iter().copied());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn has_marker(url: &str) -> bool {
    connect(url)
        .await
        .query_opt("SELECT 1 FROM pg_tables WHERE tablename = 'reset_marker'", &[])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn reset_drops_and_recreates_the_local_database_after_confirmation() {
    let app = TestApp::new().await;
    app.client().await.batch_execute("CREATE TABLE reset_marker (x int)").await.unwrap();
    let url = app.db_url.as_str();

    let (ok, said) = reset(&[("DATABASE_URL", url)], "no\n");
    assert!(!ok && said.contains("not confirmed"), "{said}");
    assert!(has_marker(url).await, "nothing dropped without the confirmation");

    let (ok, said) =
        reset(&[("DATABASE_URL", url), ("ENCRYPTION_KEYS_SECRET_ID", "arn:aws:secretsmanager:x")], &app.db_name);
    assert!(!ok && said.contains("ENCRYPTION_KEYS_SECRET_ID"), "{said}");
    let (ok, said) = reset(&[("DATABASE_URL", url), ("AWS_LAMBDA_FUNCTION_NAME", "admin")], &app.db_name);
    assert!(!ok && said.contains("AWS_LAMBDA_FUNCTION_NAME"), "{said}");
    let remote = url.replace("127.0.0.1", "db.example.internal").replace("localhost", "db.example.internal");
    let (ok, said) = reset(&[("DATABASE_URL", &remote)], &app.db_name);
    assert!(!ok && said.contains("not this machine"), "{said}");
    assert!(has_marker(url).await, "nothing dropped by a refusal");

    let (ok, said) = reset(&[("DATABASE_URL", url)], &format!("{}\n", app.db_name));
    assert!(ok, "{said}");
    assert!(!has_marker(url).await, "the database was recreated empty");
    let tables: i64 = connect(url)
        .await
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}
