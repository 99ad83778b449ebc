//! Licenses through the admin API (DESIGN §6.6), plus the helpers the other license test
//! modules share.

use axum::{
    Router,
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use shared::{auth::Scope, projections};

use crate::helpers::{Answer, TestApp, call};

/// One test's license world: its database, the admin router and the public router.
pub struct World {
    pub app: TestApp,
    pub admin: Router,
    pub public: Router,
}

impl World {
    pub async fn new() -> Self {
        let app = TestApp::new().await;
        let admin = admin::router(app.ctx.clone());
        let public = license_validate::router(app.another_context(license_validate::FUNCTION));
        Self { app, admin, public }
    }

    /// Issues a license through the API; returns (id, key).
    pub async fn issue(&self, body: Value) -> (String, String) {
        let answer = self.admin_call(Method::POST, "/v1/licenses", Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        (answer.json["id"].as_str().unwrap().to_owned(), answer.json["license_key"].as_str().unwrap().to_owned())
    }

    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        call(&self.admin, method, path, Some(&self.app.admin_key), body).await
    }

    /// A public check (`validate`, `activate`, `deactivate`) that must answer 200.
    pub async fn check(&self, route: &str, key: &str, installation: &str) -> Value {
        let answer = call(
            &self.public,
            Method::POST,
            &format!("/v1/licenses/{route}"),
            None,
            Some(json!({"license_key": key, "installation_id": installation})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{route}: {}", answer.text);
        answer.json
    }

    /// The event types of license `id`, oldest first.
    pub async fn event_types(&self, id: &str) -> Vec<String> {
        self.app
            .client()
            .await
            .query("SELECT type FROM events WHERE stream_id = $1 ORDER BY version", &[&format!("license-{id}")])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    pub async fn replay_is_clean(&self) {
        let mut client = self.app.ctx.db().get().await.unwrap();
        let report = projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}

#[tokio::test]
async fn issuing_generates_a_readable_key_that_only_show_reveals() {
    let w = World::new().await;
    let created = w
        .admin_call(
            Method::POST,
            "/v1/licenses",
            Some(json!({"email": "anna@example.com", "max_installations": 2, "metadata": {"plan": "pro"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.headers["cache-control"], "no-store");
    let key = created.json["license_key"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 35, "six groups of five: {key}");
    assert_eq!(created.json["status"], "active");
    assert_eq!(created.json["max_installations"], 2);
    assert_eq!(created.json["expires_at"], Value::Null);
    assert!(created.json["created_at"].is_string());

    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{id}"), None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json["license_key"], key.as_str());
    assert_eq!(shown.json["installations"], json!([]));
    assert_eq!(shown.json["metadata"], json!({"plan": "pro"}));

    let listed = w.admin_call(Method::GET, "/v1/licenses", None).await;
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key), "lists never carry the key");
    let found = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": key}))).await;
    assert_eq!((found.status, found.json["id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    assert!(!found.text.contains(&key), "lookups never carry the key");
    assert_eq!(w.event_types(&id).await, vec!["LicenseIssued"]);
}

#[tokio::test]
async fn the_plain_key_is_never_stored_in_licenses_installations_or_events() {
    let w = World::new().await;
    let (_, generated) = w.issue(json!({"email": "a@example.com"})).await;
    let imported = "LEGACY-0000-PLAIN-KEY";
    w.issue(json!({"email": "b@example.com", "license_key": imported})).await;
    assert_eq!(w.check("activate", imported, "host-1").await["code"], "VALID");
    assert_eq!(w.check("validate", imported, "host-1").await["code"], "VALID");
    let dump: String = w
        .app
        .client()
        .await
        .query_one(
            "SELECT (SELECT string_agg(t::text, ' ') FROM licenses t) || (SELECT string_agg(t::text, ' ') FROM installations t)
                 || (SELECT string_agg(e::text, ' ') FROM events e)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for key in [generated.as_str(), imported] {
        assert!(!dump.contains(key), "a plaintext key is stored");
        assert!(!dump.contains(&key.replace('-', "")), "a plaintext key is stored");
    }
}

#[tokio::test]
async fn imported_keys_are_kept_and_a_duplicate_is_409_with_nothing_written() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "old@example.com", "license_key": "ABC-OLD-123"})).await;
    assert_eq!(key, "ABC-OLD-123");
    let again = w
        .admin_call(Method::POST, "/v1/licenses", Some(json!({"email": "x@example.com", "license_key": "ABC-OLD-123"})))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json["code"], "license_key_exists");
    assert!(!again.text.contains("ABC-OLD-123"));
    let events: i64 = w.app.client().await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(events, 1);
    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{id}"), None).await;
    assert_eq!(shown.json["license_key"], "ABC-OLD-123");
    // A past expiry is allowed: the license validates as EXPIRED.
    let (_, old) = w.issue(json!({"email": "p@example.com", "expires_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(w.check("validate", &old, "h").await["code"], "EXPIRED");
}

#[tokio::test]
async fn lists_filter_by_email_and_status_and_page_with_a_cursor() {
    let w = World::new().await;
    let mut anna = Vec::new();
    for n in 0..5 {
        anna.push(w.issue(json!({"email": if n % 2 == 0 { "Anna@Example.com" } else { "anna@example.com" }})).await.0);
    }
    let (bob, _) = w.issue(json!({"email": "bob@example.com"})).await;
    assert_eq!(
        w.admin_call(Method::PATCH, &format!("/v1/licenses/{bob}"), Some(json!({"status": "suspended"}))).await.status,
        StatusCode::OK
    );

    let mut seen = Vec::new();
    let mut path = "/v1/licenses?email=ANNA@example.com&limit=2".to_owned();
    loop {
        let page = w.admin_call(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let items = page.json["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        assert!(items.iter().all(|l| l.get("license_key").is_none()));
        seen.extend(items.iter().map(|l| l["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/licenses?email=anna@example.com&limit=2&cursor={c}"),
            None => break,
        }
    }
    anna.reverse();
    assert_eq!(seen, anna, "every license of the address, newest first, once");

    let suspended = w.admin_call(Method::GET, "/v1/licenses?status=suspended", None).await;
    let ids: Vec<&str> =
        suspended.json["items"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![bob.as_str()]);
    let bad = w.admin_call(Method::GET, "/v1/licenses?status=expired", None).await;
    assert_eq!((bad.status, bad.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    let bad = w.admin_call(Method::GET, "/v1/licenses?cursor=nope", None).await;
    assert_eq!((bad.status, bad.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cursor")));
}

#[tokio::test]
async fn lookup_takes_the_key_in_the_body_and_an_unknown_key_is_404() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "a@example.com", "max_installations": 3})).await;
    w.check("activate", &key, "laptop").await;
    let found =
        w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": format!(" {key} ")}))).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(found.json["id"], id.as_str());
    assert_eq!(found.json["installations"][0]["installation_id"], "laptop");
    assert_eq!(found.json["installations_used"], 1);
    let unknown = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": "NOPE-NOPE"}))).await;
    assert_eq!((unknown.status, unknown.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("license_not_found")));
    // A key with characters no key has is simply not found, as on the public checks.
    for malformed in ["AB C", "' OR 1=1 --", "ÄBC-\u{200B}"] {
        let r = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": malformed}))).await;
        assert_eq!(
            (r.status, r.json["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("license_not_found")),
            "{malformed}"
        );
    }
    let long = w.admin_call(Method::POST, "/v1/licenses/lookup", Some(json!({"license_key": "K".repeat(129)}))).await;
    assert_eq!((long.status, long.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("license_key")));
    // Keys never travel in URLs: there is no GET form of the lookup.
    let get = w.admin_call(Method::GET, "/v1/licenses/lookup", None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn patch_suspends_reinstates_extends_and_changes_limits_and_email() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "a@example.com", "expires_at": "2020-01-01T00:00:00Z"})).await;
    let path = format!("/v1/licenses/{id}");
    let patched = w
        .admin_call(
            Method::PATCH,
            &path,
            Some(json!({"expires_at": "2999-01-01T00:00:00Z", "max_installations": 4, "email": "new@example.com",
                        "max_inactive_days": 30})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["expires_at"], "2999-01-01T00:00:00Z");
    assert_eq!(patched.json["max_installations"], 4);
    assert_eq!(patched.json["email"], "new@example.com");
    assert_eq!(patched.json["max_inactive_days"], 30);
    assert!(patched.json.get("license_key").is_none());
    assert_eq!(w.check("activate", &key, "h1").await["code"], "VALID");

    let suspended = w.admin_call(Method::PATCH, &path, Some(json!({"status": "suspended"}))).await;
    assert_eq!(suspended.json["status"], "suspended");
    assert_eq!(w.check("validate", &key, "h1").await["code"], "SUSPENDED");
    let reinstated = w.admin_call(Method::PATCH, &path, Some(json!({"status": "active"}))).await;
    assert_eq!(reinstated.json["status"], "active");
    assert_eq!(w.check("validate", &key, "h1").await["code"], "VALID");

    // Nothing changes: no event. Null clears.
    assert_eq!(w.admin_call(Method::PATCH, &path, Some(json!({"max_installations": 4}))).await.status, StatusCode::OK);
    let cleared =
        w.admin_call(Method::PATCH, &path, Some(json!({"expires_at": null, "max_inactive_days": null}))).await;
    assert_eq!(
        (cleared.json["expires_at"].clone(), cleared.json["max_inactive_days"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(
        w.event_types(&id).await,
        vec![
            "LicenseIssued",
            "LicenseUpdated",
            "InstallationActivated",
            "LicenseSuspended",
            "LicenseReinstated",
            "LicenseUpdated"
        ]
    );
    for (body, field) in [
        (json!({"status": "revoked"}), "status"),
        (json!({"status": "paused"}), "status"),
        (json!({"max_installations": 0}), "max_installations"),
        (json!({"email": "nope"}), "email"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"colour": "red"}), ""),
    ] {
        let bad = w.admin_call(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}");
        if !field.is_empty() {
            assert_eq!(bad.json["field"], field, "{body}");
        }
    }
    let missing =
        w.admin_call(Method::PATCH, "/v1/licenses/0190b6a4-0000-7000-8000-000000000000", Some(json!({}))).await;
    assert_eq!((missing.status, missing.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("license_not_found")));
    w.replay_is_clean().await;
}

#[tokio::test]
async fn a_revoked_license_stays_visible_and_refuses_every_later_patch() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "a@example.com"})).await;
    let path = format!("/v1/licenses/{id}");
    assert_eq!(w.admin_call(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(w.admin_call(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT, "idempotent");
    let shown = w.admin_call(Method::GET, &path, None).await;
    assert_eq!((shown.status, shown.json["status"].as_str()), (StatusCode::OK, Some("revoked")));
    for body in [json!({"status": "active"}), json!({"status": "suspended"}), json!({"max_installations": 9})] {
        let refused = w.admin_call(Method::PATCH, &path, Some(body)).await;
        assert_eq!((refused.status, refused.json["code"].as_str()), (StatusCode::CONFLICT, Some("license_revoked")));
    }
    assert_eq!(w.check("validate", &key, "h").await["code"], "REVOKED");
    assert_eq!(w.event_types(&id).await, vec!["LicenseIssued", "LicenseRevoked"]);
    let unknown = w.admin_call(Method::DELETE, "/v1/licenses/not-a-uuid", None).await;
    assert_eq!((unknown.status, unknown.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("license_not_found")));
}

#[tokio::test]
async fn an_operator_removes_an_installation_and_its_slot_is_free() {
    let w = World::new().await;
    let (id, key) = w.issue(json!({"email": "a@example.com", "max_installations": 1})).await;
    assert_eq!(w.check("activate", &key, "old-pc").await["code"], "VALID");
    assert_eq!(w.check("activate", &key, "new-pc").await["code"], "TOO_MANY_INSTALLATIONS");
    let path = format!("/v1/licenses/{id}/installations/old-pc");
    assert_eq!(w.admin_call(Method::DELETE, &path, None).await.status, StatusCode::NO_CONTENT);
    let again = w.admin_call(Method::DELETE, &path, None).await;
    assert_eq!((again.status, again.json["code"].as_str()), (StatusCode::NOT_FOUND, Some("installation_not_found")));
    assert_eq!(w.check("validate", &key, "old-pc").await["code"], "NOT_ACTIVATED");
    assert_eq!(w.check("activate", &key, "new-pc").await["code"], "VALID");
    let reason: String = w
        .app
        .client()
        .await
        .query_one("SELECT data->>'reason' FROM events WHERE type = 'InstallationDeactivated'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, "operator");
    let shown = w.admin_call(Method::GET, &format!("/v1/licenses/{id}"), None).await;
    let installs: Vec<&str> = shown.json["installations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["installation_id"].as_str().unwrap())
        .collect();
    assert_eq!(installs, vec!["new-pc"]);
}

#[tokio::test]
async fn license_routes_need_a_key_with_the_license_scopes() {
    let w = World::new().await;
    let reader = w.app.api_key(&[Scope::LicensesRead]).await;
    let writer = w.app.api_key(&[Scope::LicensesWrite]).await;
    let other = w.app.api_key(&[Scope::TokensRead]).await;
    let body = json!({"email": "a@example.com"});
    let post = |key: Option<String>| {
        let body = body.clone();
        let admin = w.admin.clone();
        async move { call(&admin, Method::POST, "/v1/licenses", key.as_deref(), Some(body)).await.status }
    };
    assert_eq!(post(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(Some(reader.clone())).await, StatusCode::FORBIDDEN);
    assert_eq!(post(Some(other.clone())).await, StatusCode::FORBIDDEN);
    assert_eq!(post(Some(writer.clone())).await, StatusCode::CREATED);
    assert_eq!(call(&w.admin, Method::GET, "/v1/licenses", Some(&reader), None).await.status, StatusCode::OK);
    assert_eq!(call(&w.admin, Method::GET, "/v1/licenses", Some(&writer), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(call(&w.admin, Method::GET, "/v1/licenses", Some(&other), None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_issue_requests_name_the_field_and_store_nothing() {
    let w = World::new().await;
    for (body, field) in [
        (json!({}), "email"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"email": "a@example.com", "max_installations": 0}), "max_installations"),
        (json!({"email": "a@example.com", "max_installations": "two"}), "max_installations"),
        (json!({"email": "a@example.com", "max_inactive_days": 0}), "max_inactive_days"),
        (json!({"email": "a@example.com", "license_key": "K".repeat(129)}), "license_key"),
        (json!({"email": "a@example.com", "license_key": "key with spaces"}), "license_key"),
        (json!({"email": "a@example.com", "license_key": "ключ"}), "license_key"),
        (json!({"email": "a@example.com", "metadata": [1, 2]}), "metadata"),
        (json!({"email": "a@example.com", "expires_at": "soon"}), "expires_at"),
        (json!({"email": "a@example.com", "max_installation": 2}), "max_installation"),
    ] {
        let answer = w.admin_call(Method::POST, "/v1/licenses", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.text);
        assert_eq!(answer.headers["content-type"], "application/problem+json");
        assert_eq!(answer.json["field"], field, "{body}: {}", answer.text);
    }
    let events: i64 = w.app.client().await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
    assert_eq!(events, 0);
}

#[tokio::test]
async fn replay_rebuilds_licenses_and_installations_after_a_mixed_history() {
    let w = World::new().await;
    let (a, key_a) = w.issue(json!({"email": "a@example.com", "max_installations": 2, "max_inactive_days": 10})).await;
    let (b, key_b) = w.issue(json!({"email": "b@example.com", "license_key": "IMPORTED-B"})).await;
    for host in ["h1", "h2"] {
        w.check("activate", &key_a, host).await;
    }
    w.app
        .client()
        .await
        .execute("UPDATE installations SET last_seen_at = now() - interval '11 days' WHERE installation_id = 'h1'", &[])
        .await
        .unwrap();
    assert_eq!(w.check("activate", &key_a, "h3").await["code"], "VALID");
    w.check("deactivate", &key_a, "h2").await;
    w.check("activate", &key_b, "b1").await;
    w.check("validate", &key_b, "b1").await;
    w.admin_call(
        Method::PATCH,
        &format!("/v1/licenses/{a}"),
        Some(json!({"status": "suspended", "email": "c@example.com"})),
    )
    .await;
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{a}"), Some(json!({"status": "active"}))).await;
    w.admin_call(Method::DELETE, &format!("/v1/licenses/{b}"), None).await;
    let mut client = w.app.ctx.db().get().await.unwrap();
    let report = projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    let rows = |t: &str| report.tables.iter().find(|r| r.table == t).map(|r| (r.live_rows, r.rebuilt_rows)).unwrap();
    assert_eq!(rows("licenses"), (2, 2));
    assert_eq!(rows("installations"), (2, 2), "h3 and b1 remain");

    // A projection row that the log does not explain is reported.
    client
        .execute("UPDATE licenses SET max_installations = 99 WHERE id = $1", &[&uuid::Uuid::parse_str(&a).unwrap()])
        .await
        .unwrap();
    let report = projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
    assert!(!report.is_clean());
}
