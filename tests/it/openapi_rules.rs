//! What schemathesis (scripts/contract) found where docs/openapi.json and the code disagreed,
//! pinned with the code's side of each rule as the document now states it: each license check
//! reads its own body and ignores the fields it does not take; checkout's `ttl_seconds`
//! bounds; `preset_params` on a client without a preset; capture entries and quirk headers;
//! tag filters with odd but allowed names.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{helpers::call, licenses::World as Licenses, oauth_world::World};

async fn check(w: &Licenses, route: &str, body: Value) -> crate::helpers::Answer {
    call(&w.public, Method::POST, &format!("/v1/licenses/{route}"), None, Some(body)).await
}

fn with(base: &Value, extra: Value) -> Value {
    let mut body = base.clone();
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn each_check_reads_its_own_fields_and_ignores_the_others_unread() {
    let w = Licenses::new().await;
    let (_, key) = w.issue(json!({"email": "o@example.com", "max_installations": 2})).await;
    let base = json!({"license_key": key, "installation_id": "pc-1"});
    // Not taken by the route, so never judged: ttl 0, a number no field could hold, U+0000
    // in an unknown field.
    let ignored = json!({"ttl_seconds": 0, "extra": {"n": 1.7976931348623157e308}, "other": "\u{0}"});
    let activated = check(&w, "activate", with(&base, with(&ignored, json!({"name": "office pc"})))).await;
    assert_eq!(
        (activated.status, activated.json["code"].as_str()),
        (StatusCode::OK, Some("VALID")),
        "{}",
        activated.text
    );
    for route in ["validate", "deactivate"] {
        let body = with(&base, with(&ignored, json!({"name": "office pc"})));
        let answer = check(&w, route, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{route}: {}", answer.text);
    }
    // deactivate takes no entitlements: a list that would be refused elsewhere is ignored.
    let again = check(&w, "activate", base.clone()).await;
    assert_eq!(again.json["code"], "VALID");
    let off = check(&w, "deactivate", with(&base, json!({"entitlements": ["not a name!"]}))).await;
    assert_eq!((off.status, off.json["code"].as_str()), (StatusCode::OK, Some("DEACTIVATED")), "{}", off.text);
    // The fields a route does take are still checked, naming the field.
    for (route, extra, field) in [
        ("activate", json!({"name": "\u{84}"}), "name"),
        ("validate", json!({"name": "\u{84}"}), "name"),
        ("deactivate", json!({"name": "\u{84}"}), "name"),
        ("activate", json!({"name": "a\u{0}b"}), "name"),
        ("validate", json!({"entitlements": ["not a name!"]}), "entitlements"),
        ("validate", json!({"nonce": 1.7976931348623157e308}), "nonce"),
        ("deactivate", json!({"nonce": "has space"}), "nonce"),
        ("checkout", json!({"entitlements": "pro"}), "entitlements"),
    ] {
        let answer = check(&w, route, with(&base, extra.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{route} {extra}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{route} {extra}: {}", answer.text);
    }
    let missing = check(&w, "validate", json!({"license_key": key, "name": "x"})).await;
    assert_eq!((missing.status, missing.json["field"].as_str()), (StatusCode::BAD_REQUEST, Some("installation_id")));
}

#[tokio::test]
async fn checkout_takes_a_ttl_of_one_second_or_more_and_caps_a_longer_one() {
    let w = Licenses::new().await;
    let (_, key) = w.issue(json!({"email": "t@example.com", "max_installations": 1})).await;
    w.check("activate", &key, "pc-1").await;
    let base = json!({"license_key": key, "installation_id": "pc-1", "name": "\u{84}"});
    let exp_minus_iat = |answer: &crate::helpers::Answer| {
        let token = answer.json["license_file"].as_str().expect("a license file");
        let claims = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
        )
        .unwrap();
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    };
    for (ttl, lifetime) in
        [(json!(1), 1), (json!(3600), 3600), (json!(u64::MAX), 30 * 86_400), (json!(null), 30 * 86_400)]
    {
        let answer = check(&w, "checkout", with(&base, json!({"ttl_seconds": ttl}))).await;
        assert_eq!((answer.status, answer.json["code"].as_str()), (StatusCode::OK, Some("VALID")), "{}", answer.text);
        assert_eq!(exp_minus_iat(&answer), lifetime, "ttl {ttl}");
    }
    for ttl in [json!(0), json!(-1), json!(1.5), json!(18_446_744_073_709_551_616.0), json!("60")] {
        let answer = check(&w, "checkout", with(&base, json!({"ttl_seconds": ttl}))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "ttl {ttl}: {}", answer.text);
        assert_eq!(answer.json["field"], "ttl_seconds", "ttl {ttl}: {}", answer.text);
    }
}

#[tokio::test]
async fn preset_params_for_a_client_without_a_preset_is_a_409_naming_the_field_and_changes_nothing() {
    let w = World::new("client_secret_post").await;
    let id = w.register("client_secret_post", false).await;
    let before = call(&w.admin, Method::GET, &format!("/v1/clients/{id}"), Some(&w.app.admin_key), None).await;
    for params in [json!({}), json!({"region": "eu"})] {
        let body = json!({"preset_params": params, "name": "renamed"});
        let patched =
            call(&w.admin, Method::PATCH, &format!("/v1/clients/{id}"), Some(&w.app.admin_key), Some(body)).await;
        assert_eq!(patched.status, StatusCode::CONFLICT, "{}", patched.text);
        assert_eq!(patched.json["code"], "client_has_no_preset");
        assert_eq!(patched.json["field"], "preset_params");
    }
    let after = call(&w.admin, Method::GET, &format!("/v1/clients/{id}"), Some(&w.app.admin_key), None).await;
    assert_eq!(before.json, after.json, "nothing half-written");
    // null reads as absent, so it is no change of parameters.
    let null = json!({"preset_params": null});
    let patched = call(&w.admin, Method::PATCH, &format!("/v1/clients/{id}"), Some(&w.app.admin_key), Some(null)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
}

#[tokio::test]
async fn capture_entries_take_no_other_field_and_quirk_headers_are_ascii() {
    let w = World::new("client_secret_post").await;
    let base = json!({"name": "c", "authorize_url": w.provider.url("/authorize"), "token_url": w.provider.url("/token"),
        "client_id": "x", "client_secret": "y", "redirect_uri": "http://127.0.0.1:9/oauth/callback"});
    for (extra, field) in [
        (json!({"capture": {"token": [{"path": "team.id", "as": "team", "also": 1}]}}), "capture.token[0]"),
        (
            json!({"quirks": {"token_request": {"headers": {"Accept": "application/jsön"}}}}),
            "quirks.token_request.headers.Accept",
        ),
        (
            json!({"quirks": {"token_request": {"headers": {"Accept": "a\u{7f}"}}}}),
            "quirks.token_request.headers.Accept",
        ),
    ] {
        let answer =
            call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(with(&base, extra.clone()))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{extra}: {}", answer.text);
        assert_eq!(answer.json["field"], field, "{extra}: {}", answer.text);
    }
    let ok = with(
        &base,
        json!({"capture": {"token": [{"path": "team.id", "as": "team"}]},
            "quirks": {"token_request": {"headers": {"Accept": "application/json; q=1\t"}}}}),
    );
    let answer = call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(ok)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
}

#[tokio::test]
async fn tag_filters_with_odd_but_allowed_names_and_values_work() {
    let w = World::new("client_secret_post").await;
    let client = w.register("client_secret_post", false).await;
    let tags = json!({"a.b:c-D_9": "x y/ü", "Z": "-"});
    let body = json!({"client_id": client, "connection_id": "c-1", "tags": tags});
    let started = call(&w.tokens, Method::POST, "/v1/connections/authorize", Some(&w.app.admin_key), Some(body)).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
    let query = w.consent(started.json["authorize_url"].as_str().unwrap()).await;
    assert_eq!(w.callback(&query, "application/json").await.status, StatusCode::OK);
    let key = Some(w.app.admin_key.as_str());
    let found = call(&w.tokens, Method::GET, "/v1/connections?tag.a.b%3Ac-D_9=x%20y%2F%C3%BC&tag.Z=-", key, None).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.json["items"][0]["connection_id"], "c-1", "{}", found.text);
    assert_eq!(found.json["items"][0]["tags"], tags);
    let other = call(&w.tokens, Method::GET, "/v1/connections?tag.a.b:c-D_9=x", key, None).await;
    assert_eq!(other.json["items"], json!([]), "{}", other.text);
    for query in ["tag.a%20b=x", "tag.a=%07", "tag.a=", "tag.=x", &format!("tag.{}=x", "n".repeat(65))] {
        let refused = call(&w.tokens, Method::GET, &format!("/v1/connections?{query}"), key, None).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}: {}", refused.text);
        assert_eq!(refused.json["field"], "tag", "{query}: {}", refused.text);
    }
}
