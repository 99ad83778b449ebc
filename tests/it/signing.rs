//! Signed license answers (DESIGN §6.15): every answer of the public checks carries a
//! `Keyledger-Signature` over its exact bytes, verified here with `ed25519-dalek` (not the
//! aws-lc-rs that signs) against the public JWKS; rotation; the Secrets Manager source.

use axum::{Router, http::Method};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use shared::signing::SigningKeys;

use crate::{
    helpers::{Answer, TestApp, call, secrets_manager},
    licenses::World,
};

/// The JWKS of `router`, as a product would fetch it.
async fn jwks(router: &Router) -> Value {
    let answer = call(router, Method::GET, "/v1/licenses/signing-keys", None, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

/// `Ok(kid)` when `body` verifies under the header's key from `jwks`, with dalek.
pub(crate) fn verify(jwks: &Value, header: &str, body: &[u8]) -> Result<String, String> {
    let param = |name: &str| {
        header
            .split(", ")
            .find_map(|p| p.strip_prefix(&format!("{name}=\"")))
            .map(|v| v.trim_end_matches('"').to_owned())
            .ok_or(format!("no {name} in {header}"))
    };
    let (kid, alg, sig) = (param("keyid")?, param("alg")?, param("sig")?);
    assert_eq!(alg, "ed25519");
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).ok_or("kid not in JWKS")?;
    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
    key.verify(body, &Signature::from_bytes(&sig)).map_err(|e| e.to_string())?;
    Ok(kid)
}

fn signed(answer: &Answer) -> &str {
    answer.headers.get("keyledger-signature").expect("every answer is signed").to_str().unwrap()
}

#[tokio::test]
async fn every_answer_is_signed_over_its_exact_bytes_and_one_changed_byte_fails() {
    let w = World::new().await;
    let keys = jwks(&w.public).await;
    let (_, key) = w.issue(json!({"email": "a@example.com", "max_installations": 1})).await;
    let (_, suspended) = w.issue(json!({"email": "b@example.com"})).await;
    let sid = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": suspended}))).await;
    let sid = sid.json["id"].as_str().unwrap().to_owned();
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{sid}"), Some(json!({"status": "suspended"}))).await;
    let mut codes = Vec::new();
    for (route, key, inst) in [
        ("validate", "NO-SUCH-KEY", "pc-1"),
        ("activate", "NO-SUCH-KEY", "pc-1"),
        ("deactivate", "NO-SUCH-KEY", "pc-1"),
        ("checkout", "NO-SUCH-KEY", "pc-1"),
        ("validate", key.as_str(), "pc-1"),
        ("activate", key.as_str(), "pc-1"),
        ("activate", key.as_str(), "pc-2"),
        ("validate", key.as_str(), "pc-1"),
        ("checkout", key.as_str(), "pc-1"),
        ("deactivate", key.as_str(), "pc-1"),
        ("validate", suspended.as_str(), "pc-1"),
    ] {
        let body = json!({"license_key": key, "installation_id": inst, "nonce": "n-1"});
        let answer = call(&w.public, Method::POST, &format!("/v1/licenses/{route}"), None, Some(body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let header = signed(&answer);
        let bytes = answer.text.as_bytes();
        assert_eq!(verify(&keys, header, bytes), Ok("s1".to_owned()), "{route} {}", answer.text);
        for i in [0, bytes.len() / 2, bytes.len() - 1] {
            let mut forged = bytes.to_vec();
            forged[i] ^= 0x01;
            assert!(verify(&keys, header, &forged).is_err(), "{route}: byte {i} changed still verifies");
        }
        assert_eq!(answer.json["nonce"], "n-1");
        assert!(answer.json["ts"].is_string());
        if route == "checkout" {
            // Only a VALID checkout carries a file; the signature covers it with the rest.
            assert_eq!(answer.json["license_file"].is_string(), answer.json["valid"] == true, "{}", answer.text);
        }
        codes.push(answer.json["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        codes,
        [
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_ACTIVATED",
            "VALID",
            "TOO_MANY_INSTALLATIONS",
            "VALID",
            "VALID",
            "DEACTIVATED",
            "SUSPENDED"
        ]
    );
}

#[tokio::test]
async fn the_jwks_is_public_cacheable_rfc_8037_and_holds_no_private_part() {
    let app = TestApp::new().await;
    let ring = app.vars["LICENSE_SIGNING_KEYS"].clone();
    let seed = serde_json::from_str::<Value>(&ring).unwrap()["keys"]["s1"].as_str().unwrap().to_owned();
    let router = license_validate::router(app.ctx.clone());
    let answer = call(&router, Method::GET, "/v1/licenses/signing-keys", None, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["cache-control"], "public, max-age=3600");
    let keys = answer.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (&k["kty"], &k["crv"], &k["kid"], &k["use"], &k["alg"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("s1"), &json!("sig"), &json!("EdDSA"))
    );
    assert!(k.get("d").is_none());
    let seed_b64url = URL_SAFE_NO_PAD.encode(base64::engine::general_purpose::STANDARD.decode(&seed).unwrap());
    assert!(!answer.text.contains(&seed) && !answer.text.contains(&seed_b64url));
}

/// A ring with the given seeds (base64) and current id.
fn ring_json(current: &str, keys: &[(&str, &str)]) -> String {
    let keys: serde_json::Map<String, Value> = keys.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
    json!({"current": current, "keys": keys}).to_string()
}

fn seed_of(ring: &secrecy::SecretString, id: &str) -> String {
    serde_json::from_str::<Value>(ring.expose_secret()).unwrap()["keys"][id].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn after_rotation_the_new_key_signs_and_the_old_stays_in_the_jwks_until_removed() {
    let s1 = seed_of(&SigningKeys::generate_json("s1"), "s1");
    let s2 = seed_of(&SigningKeys::generate_json("s2"), "s2");
    let before = TestApp::with_vars(&[("LICENSE_SIGNING_KEYS", &ring_json("s1", &[("s1", &s1)]))]).await;
    let old_router = license_validate::router(before.ctx.clone());
    let old_answer = call(
        &old_router,
        Method::POST,
        "/v1/licenses/validate",
        None,
        Some(json!({"license_key": "NOPE", "installation_id": "pc"})),
    )
    .await;

    let rotated = ring_json("s2", &[("s1", &s1), ("s2", &s2)]);
    let mut vars = before.vars.clone();
    vars.insert("LICENSE_SIGNING_KEYS".into(), rotated);
    let router = license_validate::router(shared::Context::new(crate::helpers::config_from(&vars), "license-validate"));
    let keys = jwks(&router).await;
    let kids: Vec<&str> = keys["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["s1", "s2"]);
    let new_answer = call(
        &router,
        Method::POST,
        "/v1/licenses/validate",
        None,
        Some(json!({"license_key": "NOPE", "installation_id": "pc"})),
    )
    .await;
    assert_eq!(verify(&keys, signed(&new_answer), new_answer.text.as_bytes()), Ok("s2".to_owned()));
    // An answer signed before the rotation still verifies with the new JWKS.
    assert_eq!(verify(&keys, signed(&old_answer), old_answer.text.as_bytes()), Ok("s1".to_owned()));

    vars.insert("LICENSE_SIGNING_KEYS".into(), ring_json("s2", &[("s2", &s2)]));
    let retired =
        license_validate::router(shared::Context::new(crate::helpers::config_from(&vars), "license-validate"));
    let keys = jwks(&retired).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert!(verify(&keys, signed(&old_answer), old_answer.text.as_bytes()).is_err());
}

#[tokio::test]
async fn the_signing_ring_comes_from_secrets_manager() {
    let sm = secrets_manager().await;
    let id = format!("keyledger/test/signing/{}", uuid::Uuid::new_v4().simple());
    let ring = SigningKeys::generate_json("s9");
    sm.create_secret().name(&id).secret_string(ring.expose_secret()).send().await.unwrap();
    let app = TestApp::with_vars(&[("LICENSE_SIGNING_KEYS", ""), ("LICENSE_SIGNING_KEYS_SECRET_ID", &id)]).await;
    let router = license_validate::router(app.ctx.clone());
    let keys = jwks(&router).await;
    assert_eq!(keys["keys"][0]["kid"], "s9");
    let answer = call(
        &router,
        Method::POST,
        "/v1/licenses/validate",
        None,
        Some(json!({"license_key": "NOPE", "installation_id": "pc"})),
    )
    .await;
    assert_eq!(verify(&keys, signed(&answer), answer.text.as_bytes()), Ok("s9".to_owned()));
}

#[tokio::test]
async fn without_a_signing_ring_no_answer_goes_out_unsigned() {
    let app = TestApp::with_vars(&[("LICENSE_SIGNING_KEYS", "")]).await;
    let router = license_validate::router(app.ctx.clone());
    let answer = call(
        &router,
        Method::POST,
        "/v1/licenses/validate",
        None,
        Some(json!({"license_key": "NOPE", "installation_id": "pc"})),
    )
    .await;
    assert_eq!(answer.status, 500);
    assert!(answer.headers.get("keyledger-signature").is_none());
    assert!(!answer.text.contains("NOT_FOUND"));
}

/// A public router on `w`'s database whose signing ring is `ring` (`None`: not configured).
fn public_with_ring(w: &World, ring: Option<&str>) -> Router {
    let mut vars = w.app.vars.clone();
    match ring {
        Some(ring) => vars.insert("LICENSE_SIGNING_KEYS".into(), ring.into()),
        None => vars.remove("LICENSE_SIGNING_KEYS"),
    };
    license_validate::router(shared::Context::new(crate::helpers::config_from(&vars), license_validate::FUNCTION))
}

/// (event types of the license, its installations with their `last_seen_at`), to prove a
/// refused request left no trace.
async fn stored(w: &World, id: &str) -> (Vec<String>, Vec<(String, chrono::DateTime<chrono::Utc>)>) {
    let rows = w
        .app
        .client()
        .await
        .query(
            "SELECT installation_id, last_seen_at FROM installations WHERE license_id = $1::text::uuid ORDER BY 1",
            &[&id],
        )
        .await
        .unwrap();
    (w.event_types(id).await, rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

#[tokio::test]
async fn with_a_broken_or_missing_ring_a_writing_check_is_a_plain_500_and_records_nothing() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "a@example.com", "max_installations": 3})).await;
    assert_eq!(w.check("activate", &key, "pc-held").await["code"], "VALID");
    let before = stored(&w, &id).await;
    assert_eq!(before.0, ["LicenseIssued", "InstallationActivated"]);
    let broken = r#"{"current":"s2","keys":{"s1":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#;
    for (ring, router) in [("broken", public_with_ring(&w, Some(broken))), ("missing", public_with_ring(&w, None))] {
        for (route, inst) in [("activate", "pc-new"), ("deactivate", "pc-held"), ("checkout", "pc-held")] {
            let body = json!({"license_key": key, "installation_id": inst, "nonce": "n-1"});
            let answer = call(&router, Method::POST, &format!("/v1/licenses/{route}"), None, Some(body)).await;
            assert_eq!(answer.status, 500, "{ring} {route}: {}", answer.text);
            assert!(answer.headers.get("keyledger-signature").is_none(), "{ring} {route}");
            assert_eq!(answer.json["code"], "internal_error", "{ring} {route}: {}", answer.text);
            assert!(answer.json.get("valid").is_none() && answer.json.get("license").is_none(), "{}", answer.text);
            assert_eq!(stored(&w, &id).await, before, "{ring} {route} wrote something");
        }
    }
}
