//! The local Lambda loop (issue 17): `token-refresh` under `cargo lambda watch`, invoked with
//! the documented `cargo lambda invoke token-refresh --data-file
//! tests/fixtures/eventbridge-schedule.json`, refreshes the due connections for real (it
//! deferred every one while it read cargo-lambda's deadline header as an epoch).
//!
//! cargo-lambda comes from the deploy virtualenv (`KEYLEDGER_DEPLOY_BIN`, installed by
//! `scripts/test`); the watcher builds the function itself, with this test's
//! `CARGO_TARGET_DIR`, the first time it is invoked.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::{oauth_world::World, token_refresh::seed};

fn deploy_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("KEYLEDGER_DEPLOY_BIN").expect("KEYLEDGER_DEPLOY_BIN (cargo-lambda): run scripts/test"),
    )
}

/// `cargo lambda …` from the deploy virtualenv, at the workspace root.
fn cargo_lambda(args: &[&str]) -> Command {
    let bin = deploy_bin();
    let mut cmd = Command::new("cargo");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    cmd.arg("lambda").args(args).current_dir(crate::deploy::root()).env("PATH", path).kill_on_drop(true);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The watcher in its own process group, so that ending it ends the function it started.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", "--", &format!("-{pid}")]).status();
        }
    }
}

#[tokio::test]
async fn token_refresh_under_cargo_lambda_watch_refreshes_the_due_connections() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let ids = seed(&w, &client, "local", 3, 60).await;

    let port = free_port().to_string();
    let mut watch = cargo_lambda(&["watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port]);
    // The function's environment: this test's configuration (database, key ring, loopback
    // providers allowed), plain TCP to the local server, and no AWS endpoint to wait for.
    for (k, v) in &w.app.vars {
        watch.env(k, v);
    }
    watch.env("DB_SSLMODE", "disable").env("LOG_FORMAT", "json").process_group(0);
    let log = std::fs::File::create(std::env::temp_dir().join(format!("kl-cargo-lambda-watch-{port}.log"))).unwrap();
    watch.stdout(Stdio::from(log.try_clone().unwrap())).stderr(Stdio::from(log));
    let _watch = Watch(watch.spawn().expect("cargo lambda watch starts"));

    // The first invoke waits for the watcher to build token-refresh (minutes on a cold target).
    let started = Instant::now();
    let answer = loop {
        let out = cargo_lambda(&[
            "invoke",
            "-A",
            "127.0.0.1",
            "-P",
            &port,
            "token-refresh",
            "--data-file",
            "tests/fixtures/eventbridge-schedule.json",
        ])
        .output()
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break serde_json::from_str::<Value>(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "cargo lambda invoke kept failing: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    assert_eq!(answer["candidates"], 3, "{answer}");
    assert_eq!(answer["refreshed"], 3, "{answer}");
    assert_eq!(answer["deferred"], 0, "{answer}");
    assert_eq!(w.provider.refresh_calls(), 3);
    for id in &ids {
        let events = w.event_types(&format!("connection-{id}")).await;
        assert_eq!(events.last().map(String::as_str), Some("TokenRefreshed"), "{id}: {events:?}");
    }
}

/// One scheduled run of `token-refresh` given `within` until its deadline.
async fn run_within(w: &World, within: Duration) -> Value {
    let event: Value = serde_json::from_str(include_str!("../fixtures/eventbridge-schedule.json")).unwrap();
    let provider = shared::oauth::Provider::from_config(w.app.ctx.config());
    token_refresh::handle(&w.app.ctx, &provider, &event, std::time::SystemTime::now() + within).await.unwrap()
}

#[tokio::test]
async fn a_run_shorter_than_the_provider_timeout_refreshes_what_fits() {
    // The default provider timeout (10 s) and a 3 s deadline: before, every call was
    // deferred because none could be given the full 10 s.
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    seed(&w, &client, "short", 5, 60).await;
    w.provider.set(|b| b.delay = Duration::from_millis(50));
    let answer = run_within(&w, Duration::from_secs(3)).await;
    assert_eq!(answer["refreshed"], 5, "{answer}");
    assert_eq!(answer["deferred"], 0, "{answer}");
}

#[tokio::test]
async fn in_a_short_run_a_slow_provider_times_out_before_the_deadline_and_is_recorded() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let ids = seed(&w, &client, "slow", 1, 60).await;
    w.provider.set(|b| b.delay = Duration::from_secs(8));
    let started = Instant::now();
    let answer = run_within(&w, Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the run outlived its deadline: {answer}");
    assert_eq!(answer["failed"], 1, "{answer}");
    let events = w.event_types(&format!("connection-{}", ids[0])).await;
    assert_eq!(events.last().map(String::as_str), Some("TokenRefreshFailed"), "{events:?}");
}
