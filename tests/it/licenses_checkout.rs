//! `POST /v1/licenses/checkout` (DESIGN §6.15): a signed offline license file, verified with
//! `jsonwebtoken` (a JOSE library keyledger does not use) against the public JWKS, with
//! `exp`/`nbf` checked; the answer's own signature; refusals; the event and `last_seen_at`.

use axum::http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use serde_json::{Value, json};

use crate::{
    helpers::{Answer, TestApp, call},
    licenses::World,
};

async fn checkout(w: &World, body: Value) -> Answer {
    let answer = call(&w.public, Method::POST, "/v1/licenses/checkout", None, Some(body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.headers.contains_key("keyledger-signature"), "every checkout answer is signed");
    answer
}

async fn jwks(w: &World) -> JwkSet {
    let answer = call(&w.public, Method::GET, "/v1/licenses/signing-keys", None, None).await;
    serde_json::from_value(answer.json).unwrap()
}

fn verify(set: &JwkSet, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = decode_header(token)?;
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("the header names kid");
    let jwk = set.find(&kid).expect("kid in the JWKS");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["keyledger"]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation).map(|d| d.claims)
}

#[tokio::test]
async fn a_checked_out_license_file_verifies_with_an_independent_jose_library() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "f@example.com", "max_installations": 3, "entitlements": ["pro"]})).await;
    w.check("activate", &key, "pc-1").await;
    let seen_before: chrono::DateTime<chrono::Utc> = w
        .app
        .client()
        .await
        .query_one("SELECT last_seen_at FROM installations WHERE installation_id = 'pc-1'", &[])
        .await
        .unwrap()
        .get(0);
    let answer =
        checkout(&w, json!({"license_key": key, "installation_id": "pc-1", "ttl_seconds": 3600, "nonce": "n-9"})).await;
    assert_eq!((answer.json["valid"].clone(), answer.json["code"].clone()), (json!(true), json!("VALID")));
    assert_eq!(answer.json["nonce"], "n-9");
    let token = answer.json["license_file"].as_str().unwrap();
    let set = jwks(&w).await;
    let claims = verify(&set, token).expect("the file verifies");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["installation_id"], "pc-1");
    assert_eq!(claims["status"], "active");
    assert_eq!(claims["max_installations"], 3);
    assert_eq!(claims["entitlements"], json!(["pro"]));
    let (iat, nbf, exp) =
        (claims["iat"].as_i64().unwrap(), claims["nbf"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 3600);
    assert!(nbf <= chrono::Utc::now().timestamp());
    let expires_at: chrono::DateTime<chrono::Utc> = answer.json["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires_at.timestamp(), exp);

    // One changed byte anywhere in the payload or signature fails.
    let mut bytes = token.as_bytes().to_vec();
    let dot = token.find('.').unwrap();
    for at in [dot + 5, bytes.len() - 3] {
        let original = bytes[at];
        bytes[at] = if original == b'A' { b'B' } else { b'A' };
        assert!(verify(&set, std::str::from_utf8(&bytes).unwrap()).is_err(), "byte {at} changed");
        bytes[at] = original;
    }

    // A sighting and an event.
    let client = w.app.client().await;
    let seen: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT last_seen_at FROM installations WHERE installation_id = 'pc-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(seen > seen_before);
    assert_eq!(w.event_types(&id).await.last().unwrap(), "LicenseCheckedOut");
    let data: Value =
        client.query_one("SELECT data FROM events WHERE type = 'LicenseCheckedOut'", &[]).await.unwrap().get(0);
    assert_eq!(data["expires_at"], answer.json["expires_at"]);
    // The fields the README's outbound-events table shows.
    assert_eq!(data["installation_id"], "pc-1");
    assert!(data["issued_at"].is_string() && data["key_id"].is_string(), "{data}");
    assert!(!data.to_string().contains(&key), "no key in the event");
    assert!(shared::relay::PUBLISHED_TYPES.contains(&"LicenseCheckedOut"));
    w.replay_is_clean().await;
}

#[tokio::test]
async fn an_expired_file_fails_and_the_ttl_is_capped_by_the_maximum_and_the_license() {
    let app = TestApp::with_vars(&[("LICENSE_FILE_MAX_TTL_SECONDS", "600"), ("LICENSE_ISSUER", "keyledger")]).await;
    let admin = admin::router(app.ctx.clone());
    let public = license_validate::router(app.another_context(license_validate::FUNCTION));
    let w = World { app, admin, public };
    let (_, key) = w.issue(json!({"email": "f@example.com"})).await;
    w.check("activate", &key, "pc-1").await;
    let answer = checkout(&w, json!({"license_key": key, "installation_id": "pc-1", "ttl_seconds": 86400})).await;
    let claims = verify(&jwks(&w).await, answer.json["license_file"].as_str().unwrap()).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600, "capped by the maximum");

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc3339();
    let (_, ending) = w.issue(json!({"email": "f@example.com", "expires_at": soon})).await;
    w.check("activate", &ending, "pc-1").await;
    let answer = checkout(&w, json!({"license_key": ending, "installation_id": "pc-1"})).await;
    let claims = verify(&jwks(&w).await, answer.json["license_file"].as_str().unwrap()).unwrap();
    let end: chrono::DateTime<chrono::Utc> = soon.parse().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), end.timestamp(), "never past the license's expiry");

    // A file whose exp has passed is refused by the library.
    let (_, short) = w.issue(json!({"email": "f@example.com"})).await;
    w.check("activate", &short, "pc-1").await;
    let answer = checkout(&w, json!({"license_key": short, "installation_id": "pc-1", "ttl_seconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let err = verify(&jwks(&w).await, answer.json["license_file"].as_str().unwrap()).unwrap_err();
    assert_eq!(*err.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature);
}

#[tokio::test]
async fn checkout_refuses_with_the_usual_codes_and_no_file() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "f@example.com", "entitlements": ["pro"]})).await;
    let cases = [
        (json!({"license_key": "NO-SUCH-KEY", "installation_id": "pc-1"}), "NOT_FOUND"),
        (json!({"license_key": key, "installation_id": "pc-1"}), "NOT_ACTIVATED"),
    ];
    for (body, code) in cases {
        let answer = checkout(&w, body).await;
        assert_eq!((answer.json["valid"].clone(), answer.json["code"].clone()), (json!(false), json!(code)));
        assert_eq!(answer.json["license_file"], Value::Null);
    }
    w.check("activate", &key, "pc-1").await;
    let missing = checkout(&w, json!({"license_key": key, "installation_id": "pc-1", "entitlements": ["sso"]})).await;
    assert_eq!(missing.json["code"], "ENTITLEMENTS_MISSING");
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(json!({"status": "suspended"}))).await;
    let suspended = checkout(&w, json!({"license_key": key, "installation_id": "pc-1"})).await;
    assert_eq!(
        (suspended.json["code"].clone(), suspended.json["license_file"].clone()),
        (json!("SUSPENDED"), Value::Null)
    );
    assert!(!w.event_types(&id).await.contains(&"LicenseCheckedOut".to_owned()));
    let bad = call(
        &w.public,
        Method::POST,
        "/v1/licenses/checkout",
        None,
        Some(json!({"license_key": key, "installation_id": "pc-1", "ttl_seconds": "long"})),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("ttl_seconds"), "{}", bad.text);
}
