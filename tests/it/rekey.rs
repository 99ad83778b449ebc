//! `keyledger rekey` (issue 17): every projection ciphertext re-encrypted under the ring's
//! current key, counted per table and key id; idempotent; compare-and-set, so two runs at once
//! (or a function writing meanwhile) never rewrite a row twice; and `replay --verify` with the
//! ring proves the old key is still needed by the log.

use axum::http::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::{Context, crypto::KeyRing, projections, rekey};

use crate::{
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
