//! Entitlements (DESIGN §6.6a): set on issue and by PATCH (an event), listed in answers,
//! `ENTITLEMENTS_MISSING` when a product needs one the license lacks.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{helpers::call, licenses::World};

async fn check(w: &World, route: &str, key: &str, installation: &str, needed: Value) -> Value {
    let body = json!({"license_key": key, "installation_id": installation, "entitlements": needed});
    let answer = call(&w.public, Method::POST, &format!("/v1/licenses/{route}"), None, Some(body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.json
}

#[tokio::test]
async fn entitlements_are_issued_patched_as_an_event_and_checked() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "e@example.com", "entitlements": ["pro", "export", "pro"]})).await;
    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{id}"), None).await;
    assert_eq!(shown.json["entitlements"], json!(["export", "pro"]));

    let refused = check(&w, "activate", &key, "pc-1", json!(["pro", "sso"])).await;
    assert_eq!((refused["valid"].clone(), refused["code"].clone()), (json!(false), json!("ENTITLEMENTS_MISSING")));
    assert_eq!(refused["license"]["installations_used"], 0, "a refused activation takes no slot");
    let ok = check(&w, "activate", &key, "pc-1", json!(["pro"])).await;
    assert_eq!(ok["code"], "VALID");
    assert_eq!(ok["license"]["entitlements"], json!(["export", "pro"]));
    assert_eq!(check(&w, "validate", &key, "pc-1", json!(["sso"])).await["code"], "ENTITLEMENTS_MISSING");

    let patched =
        w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(json!({"entitlements": ["pro", "sso"]}))).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["entitlements"], json!(["pro", "sso"]));
    let valid = check(&w, "validate", &key, "pc-1", json!(["sso"])).await;
    assert_eq!(
        (valid["code"].clone(), valid["license"]["entitlements"].clone()),
        (json!("VALID"), json!(["pro", "sso"]))
    );
    // Repeating the same set appends nothing.
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(json!({"entitlements": ["sso", "pro"]}))).await;
    assert_eq!(
        w.event_types(&id).await,
        ["LicenseIssued", "InstallationActivated", "LicenseUpdated"],
        "one LicenseUpdated for the change"
    );
    // EXPIRED comes before ENTITLEMENTS_MISSING.
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(json!({"expires_at": "2001-01-01T00:00:00Z"})))
        .await;
    assert_eq!(check(&w, "validate", &key, "pc-1", json!(["nope"])).await["code"], "EXPIRED");
    w.replay_is_clean().await;
}

#[tokio::test]
async fn malformed_entitlements_are_a_400_naming_the_field_and_write_nothing() {
    let w = World::new().await;
    let too_many: Vec<String> = (0..65).map(|i| format!("e{i}")).collect();
    for bad in [json!(["has space"]), json!([""]), json!("pro"), json!([1]), json!(too_many)] {
        let answer = w
            .admin_call(Method::POST, "/v1/licenses", Some(json!({"email": "e@example.com", "entitlements": bad})))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.text);
        assert!(answer.text.contains("entitlements"), "{}", answer.text);
        assert!(!answer.text.contains("has space"), "{}", answer.text);
    }
    let count: i64 = w.app.client().await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
    let (_, key) = w.issue(json!({"email": "e@example.com"})).await;
    let body = json!({"license_key": key, "installation_id": "pc", "entitlements": ["bad name"]});
    let answer = call(&w.public, Method::POST, "/v1/licenses/validate", None, Some(body)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("entitlements"), "{}", answer.text);
}
