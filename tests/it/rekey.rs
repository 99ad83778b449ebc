//! `keyledger rekey` (issue 17): every projection ciphertext re-encrypted under the ring's
//! current key, counted per table and key id; batched and resumable; idempotent;
//! compare-and-set, so two runs at once (or a function writing meanwhile) never rewrite a row
//! twice; and `replay --verify` with the ring proves the old key is still needed by the log.

use axum::http::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::{
    Context,
    crypto::{KeyRing, Owner},
    projections,
    rekey::{self, Options},
};

use crate::{
    cli::keyledger,
    helpers::{call, config_from},
    oauth_world::World,
    token_refresh::seed,
};

/// The world's ring with a new key `k2` added and made current (rotation step 1).
fn rotated(w: &World) -> String {
    let mut ring: Value = serde_json::from_str(&w.app.vars["ENCRYPTION_KEYS"]).unwrap();
    let k2: Value = serde_json::from_str(KeyRing::generate_json("k2").expose_secret()).unwrap();
    ring["keys"]["k2"] = k2["keys"]["k2"].clone();
    ring["current"] = json!("k2");
    ring.to_string()
}

fn context_with_ring(w: &World, ring: &str) -> Context {
    let mut vars = w.app.vars.clone();
    vars.insert("ENCRYPTION_KEYS".into(), ring.into());
    Context::new(config_from(&vars), "keyledger-cli")
}

/// Key ids of every sealed value in the projections, as `table.column:kid` → count.
async fn key_ids(w: &World) -> Vec<(String, i64)> {
    let client = w.app.client().await;
    let mut out = Vec::new();
    for s in rekey::SEALED {
        for row in client
            .query(
                &format!(
                    "SELECT split_part({c}, ':', 2), count(*) FROM {t} WHERE {c} IS NOT NULL GROUP BY 1 ORDER BY 1",
                    c = s.column,
                    t = s.table
                ),
                &[],
            )
            .await
            .unwrap()
        {
            out.push((format!("{}.{}:{}", s.table, s.column, row.get::<_, String>(0)), row.get(1)));
        }
    }
    out
}

async fn world_with_secrets() -> (World, Vec<String>) {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let ids = seed(&w, &client, "rk", 3, 3600).await;
    let license = call(
        &w.admin,
        Method::POST,
        "/v1/licenses",
        Some(&w.app.admin_key),
        Some(json!({"email": "rekey@example.com", "max_installations": 2})),
    )
    .await;
    assert_eq!(license.status, StatusCode::CREATED, "{}", license.text);
    (w, ids)
}

#[tokio::test]
async fn rekey_moves_every_projection_ciphertext_to_the_current_key_once() {
    let (w, ids) = world_with_secrets().await;
    let before = w.token(&ids[0]).await.json["access_token"].clone();
    let ring = rotated(&w);
    let ctx = context_with_ring(&w, &ring);

    let dry = rekey::rekey(&ctx, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.columns["connections.access_token"].rekeyed.get("k1"), Some(&3), "{dry:?}");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k1")), "a dry run writes nothing");

    let report = rekey::rekey(&ctx, false).await.unwrap();
    assert_eq!(report.current_key, "k2");
    for (column, n) in [
        ("connections.access_token", 3),
        ("connections.refresh_token", 3),
        ("clients.client_secret", 1),
        ("licenses.license_key", 1),
    ] {
        let c = &report.columns[column];
        assert_eq!(c.rekeyed.get("k1"), Some(&n), "{column}: {report:?}");
        assert_eq!((c.current, c.changed_meanwhile), (0, 0), "{column}");
        assert!(c.failed.is_empty(), "{column}");
    }
    assert!(report.is_clean());
    // The log keeps its k1 ciphertexts: 3 connections × 2 tokens, the client secret, the license key.
    assert_eq!(report.events_by_key.get("k1"), Some(&8), "{report:?}");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k2")), "{:?}", key_ids(&w).await);

    // Still the same secrets, read with the new ring by the functions.
    let tokens = token_fetch::router(ctx.clone());
    let after = call(&tokens, Method::GET, &format!("/v1/tokens/{}", ids[0]), Some(&w.app.admin_key), None).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(after.json["access_token"], before);

    // Idempotent: nothing left to do.
    let again = rekey::rekey(&ctx, false).await.unwrap();
    assert!(again.columns.values().all(|c| c.rekeyed.is_empty()), "{again:?}");
    assert_eq!(again.columns["connections.access_token"].current, 3);

    // replay --verify with the ring: the rebuilt (k1) and live (k2) values decrypt alike.
    let mut client = w.app.client().await;
    let ring_now = ctx.keyring().await.unwrap();
    let clean = projections::replay_with_ring(&mut client, shared::PROJECTORS, Some(&ring_now)).await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    // Without k1 in the ring the log cannot be replayed: k1 may not leave yet.
    let mut only_k2: Value = serde_json::from_str(&ring).unwrap();
    only_k2["keys"].as_object_mut().unwrap().remove("k1");
    let only_k2 = KeyRing::parse(&only_k2.to_string().into()).unwrap();
    let missing = projections::replay_with_ring(&mut client, shared::PROJECTORS, Some(&only_k2)).await.unwrap();
    assert!(!missing.is_clean());
    let undecryptable: Vec<&String> = missing.tables.iter().flat_map(|t| &t.undecryptable).collect();
    assert!(undecryptable.iter().all(|u| u.ends_with(": k1")) && undecryptable.len() == 8, "{undecryptable:?}");
}

#[tokio::test]
async fn two_rekeys_at_once_rewrite_each_row_exactly_once() {
    let (w, _ids) = world_with_secrets().await;
    let ring = rotated(&w);
    let (a, b) = (context_with_ring(&w, &ring), context_with_ring(&w, &ring));
    let (ra, rb) = tokio::join!(rekey::rekey(&a, false), rekey::rekey(&b, false));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let rekeyed = |r: &rekey::Report| r.columns.values().flat_map(|c| c.rekeyed.values()).sum::<u64>();
    let meanwhile = |r: &rekey::Report| r.columns.values().map(|c| c.changed_meanwhile).sum::<u64>();
    assert_eq!(rekeyed(&ra) + rekeyed(&rb), 8, "{ra:?} {rb:?}");
    // What one run lost to the other was left alone, never sealed twice.
    assert!(meanwhile(&ra) + meanwhile(&rb) <= 8);
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k2")));
}

#[tokio::test]
async fn a_ciphertext_the_ring_cannot_open_is_reported_and_left_alone() {
    let (w, ids) = world_with_secrets().await;
    let ring = rotated(&w);
    // A value under a key nobody has (k0), bound to the right owner: rekey must not guess.
    let client = w.app.client().await;
    client
        .execute("UPDATE connections SET refresh_token = 'v1:k0:AAAA' WHERE connection_id = $1", &[&ids[0]])
        .await
        .unwrap();
    let report = rekey::rekey(&context_with_ring(&w, &ring), false).await.unwrap();
    assert_eq!(report.columns["connections.refresh_token"].failed.get("k0"), Some(&1), "{report:?}");
    assert_eq!(report.columns["connections.refresh_token"].rekeyed.get("k1"), Some(&2));
    assert!(!report.is_clean());
    let kept: String = client
        .query_one("SELECT refresh_token FROM connections WHERE connection_id = $1", &[&ids[0]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "v1:k0:AAAA");
}

/// [`world_with_secrets`] plus a second license: 9 ciphertexts over four columns of three
/// tables (3 + 3 connection tokens, 1 client secret, 2 license keys).
async fn world_with_nine_secrets() -> (World, Vec<String>) {
    let (w, ids) = world_with_secrets().await;
    let license = call(
        &w.admin,
        Method::POST,
        "/v1/licenses",
        Some(&w.app.admin_key),
        Some(json!({"email": "rekey-2@example.com", "max_installations": 1})),
    )
    .await;
    assert_eq!(license.status, StatusCode::CREATED, "{}", license.text);
    (w, ids)
}

fn batches_of(n: u32) -> Options {
    Options { batch_size: n.try_into().unwrap(), ..Options::default() }
}

/// `(rekeyed, batches, current, changed_meanwhile)` of one column of `report`.
fn counts(report: &rekey::Report, column: &str) -> (Option<u64>, u64, u64, u64) {
    let c = &report.columns[column];
    assert!(c.failed.is_empty(), "{column}: {report:?}");
    assert!(c.rekeyed.keys().all(|k| k == "k1"), "{column}: {report:?}");
    (c.rekeyed.get("k1").copied(), c.batches, c.current, c.changed_meanwhile)
}

#[tokio::test]
async fn rekey_in_batches_of_two_re_encrypts_every_row_of_every_table() {
    let (w, _ids) = world_with_nine_secrets().await;
    let ring = rotated(&w);
    let ctx = context_with_ring(&w, &ring);

    // A dry run pages through rows it does not change: the same counts, nothing written.
    let dry = rekey::rekey_with(&ctx, Options { dry_run: true, ..batches_of(2) }).await.unwrap();
    assert!(dry.complete && dry.dry_run);
    assert_eq!(counts(&dry, "connections.access_token"), (Some(3), 2, 0, 0), "{dry:?}");
    assert_eq!(counts(&dry, "licenses.license_key"), (Some(2), 1, 0, 0), "{dry:?}");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k1")), "a dry run writes nothing");

    let report = rekey::rekey_with(&ctx, batches_of(2)).await.unwrap();
    assert!(report.complete && report.is_clean(), "{report:?}");
    // (rekeyed from k1, batches of at most 2, already current, changed meanwhile)
    assert_eq!(counts(&report, "connections.access_token"), (Some(3), 2, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "connections.refresh_token"), (Some(3), 2, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "clients.client_secret"), (Some(1), 1, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "licenses.license_key"), (Some(2), 1, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "oauth_states.code_verifier"), (None, 0, 0, 0), "{report:?}");
    assert_eq!(report.events_by_key.get("k1"), Some(&9), "{report:?}");
    assert_eq!(
        key_ids(&w).await,
        [
            ("connections.access_token:k2".to_owned(), 3),
            ("connections.refresh_token:k2".to_owned(), 3),
            ("clients.client_secret:k2".to_owned(), 1),
            ("licenses.license_key:k2".to_owned(), 2),
        ]
    );
    let mut client = w.app.client().await;
    let verified = projections::replay_with_ring(&mut client, shared::PROJECTORS, Some(&ctx.keyring().await.unwrap()))
        .await
        .unwrap();
    assert!(verified.is_clean(), "{verified:?}");
}

#[tokio::test]
async fn a_rekey_stopped_after_one_batch_resumes_on_the_next_run_and_a_third_changes_nothing() {
    let (w, _ids) = world_with_nine_secrets().await;
    let ring = rotated(&w);
    let ctx = context_with_ring(&w, &ring);

    let first = rekey::rekey_with(&ctx, Options { max_batches: Some(1), ..batches_of(2) }).await.unwrap();
    assert!(!first.complete, "{first:?}");
    assert_eq!(first.columns.keys().collect::<Vec<_>>(), ["connections.access_token"], "{first:?}");
    assert_eq!(counts(&first, "connections.access_token"), (Some(2), 1, 0, 0));
    let state = key_ids(&w).await;
    assert!(state.contains(&("connections.access_token:k2".into(), 2)), "{state:?}");
    assert!(state.contains(&("connections.access_token:k1".into(), 1)), "{state:?}");
    assert_eq!(state.iter().filter(|(k, _)| k.ends_with(":k1")).map(|(_, n)| n).sum::<i64>(), 7, "{state:?}");

    // The second run finds only what is left: 1 + 2 + 1 + 1 batches. A limit that runs out
    // exactly at the end of the work still reports the run complete.
    let second = rekey::rekey_with(&ctx, Options { max_batches: Some(5), ..batches_of(2) }).await.unwrap();
    assert!(second.complete && second.is_clean(), "{second:?}");
    assert_eq!(counts(&second, "connections.access_token"), (Some(1), 1, 2, 0), "{second:?}");
    assert_eq!(counts(&second, "connections.refresh_token"), (Some(3), 2, 0, 0), "{second:?}");
    assert_eq!(counts(&second, "clients.client_secret"), (Some(1), 1, 0, 0), "{second:?}");
    assert_eq!(counts(&second, "licenses.license_key"), (Some(2), 1, 0, 0), "{second:?}");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k2")), "{:?}", key_ids(&w).await);
    let settled = key_ids(&w).await;

    let third = rekey::rekey_with(&ctx, Options { max_batches: Some(1), ..batches_of(2) }).await.unwrap();
    assert!(third.complete, "{third:?}");
    for (column, n) in [
        ("connections.access_token", 3),
        ("connections.refresh_token", 3),
        ("clients.client_secret", 1),
        ("licenses.license_key", 2),
    ] {
        assert_eq!(counts(&third, column), (None, 0, n, 0), "{column}: {third:?}");
    }
    assert_eq!(key_ids(&w).await, settled);
}

#[tokio::test]
async fn a_value_written_between_rekeys_read_and_its_write_is_kept_and_counted_changed_meanwhile() {
    let (w, ids) = world_with_secrets().await;
    let ring = rotated(&w);
    let ctx = context_with_ring(&w, &ring);
    let k2_ring = KeyRing::parse(&ring.clone().into()).unwrap();

    // The writer (a token refresh with the new ring) has updated the second connection's
    // access token but not committed: rekey reads the old committed k1 value, and its
    // compare-and-set UPDATE of that row waits on the writer's row lock.
    let stream = format!("connection-{}", ids[1]);
    let fresh = k2_ring.encrypt(Owner::new(&stream, "access_token"), "rotated-meanwhile");
    let mut writer = w.app.client().await;
    let tx = writer.transaction().await.unwrap();
    tx.execute("UPDATE connections SET access_token = $1 WHERE connection_id = $2", &[&fresh, &ids[1]]).await.unwrap();
    let writer_pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let watcher = w.app.client().await;

    let (report, ()) = tokio::join!(rekey::rekey_with(&ctx, batches_of(2)), async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&writer_pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "rekey never waited on the writer's row lock");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tx.commit().await.unwrap();
    });
    let report = report.unwrap();

    assert!(report.complete && report.is_clean(), "{report:?}");
    assert_eq!(counts(&report, "connections.access_token"), (Some(2), 2, 0, 1), "{report:?}");
    assert_eq!(counts(&report, "connections.refresh_token"), (Some(3), 2, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "clients.client_secret"), (Some(1), 1, 0, 0), "{report:?}");
    assert_eq!(counts(&report, "licenses.license_key"), (Some(1), 1, 0, 0), "{report:?}");
    let kept: String = watcher
        .query_one("SELECT access_token FROM connections WHERE connection_id = $1", &[&ids[1]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, fresh, "the writer's value is never overwritten");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k2")), "{:?}", key_ids(&w).await);
}

#[tokio::test]
async fn the_command_line_takes_a_batch_size_and_a_batch_limit() {
    let (w, _ids) = world_with_secrets().await;
    let ring = rotated(&w);
    let mut vars: Vec<(&str, &str)> = w.app.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.retain(|(k, _)| *k != "ENCRYPTION_KEYS");
    vars.push(("ENCRYPTION_KEYS", &ring));

    let zero = keyledger(&vars, &["rekey", "--batch-size", "0"]);
    assert!(!zero.status.success());
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("--batch-size"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );

    let out = keyledger(&vars, &["rekey", "--batch-size", "2", "--max-batches", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], false, "{report}");
    assert_eq!(report["columns"]["connections.access_token"]["rekeyed"], json!({"k1": 2}), "{report}");
    assert_eq!(report["columns"]["connections.access_token"]["batches"], 1, "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `keyledger rekey` again"));

    let rest = keyledger(&vars, &["rekey"]);
    assert!(rest.status.success(), "{}", String::from_utf8_lossy(&rest.stderr));
    let report: Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["columns"]["connections.access_token"]["rekeyed"], json!({"k1": 1}), "{report}");
    assert_eq!(report["columns"]["connections.access_token"]["current"], 2, "{report}");
    assert!(key_ids(&w).await.iter().all(|(k, _)| k.ends_with(":k2")));
}
