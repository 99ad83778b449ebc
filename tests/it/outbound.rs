//! DESIGN §6.13 outbound addresses through the real routes, the real scheduled refresh and
//! the fake provider: what registration refuses, and what a call refuses after resolution,
//! with a resolver the test controls.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{
    oauth::Provider,
    outbound::{Lookup, LookupFuture, OutboundPolicy},
};

use crate::{helpers::call, oauth_world::World};

const SCHEDULE_EVENT: &str = include_str!("../fixtures/eventbridge-schedule.json");

/// A resolver whose answers the test chooses; a name it does not know does not resolve.
#[derive(Debug)]
struct Dns(HashMap<String, Vec<IpAddr>>);

impl Dns {
    fn one(name: &str, ip: &str) -> Arc<Self> {
        Arc::new(Self(HashMap::from([(name.to_owned(), vec![ip.parse().unwrap()])])))
    }
}

impl Lookup for Dns {
    fn lookup(&self, host: &str) -> LookupFuture {
        let found = self.0.get(host).cloned();
        Box::pin(async move { found.ok_or_else(|| std::io::Error::other("unknown name")) })
    }
}

const REFUSED_EVERYWHERE: &[&str] = &[
    "https://169.254.169.254/latest/meta-data/iam",
    "https://2852039166/token",
    "https://0xa9.254.0.1/token",
    "https://0251.254.169.254/token",
    "https://[::ffff:169.254.169.254]/token",
    "https://[fe80::1]/token",
    "https://0.0.0.0/token",
    "https://224.0.0.251/token",
    "https://255.255.255.255/token",
];

const PRIVATE: &[&str] = &[
    "https://10.0.0.1/token",
    "https://172.16.5.4/token",
    "https://192.168.0.10/token",
    "https://100.64.1.1/token",
    "https://127.0.0.1/token",
    "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
    "https://[::1]/token",
    "https://[fd00::1]/token",
];

async fn register_with(w: &World, field: &str, url: &str) -> crate::helpers::Answer {
    let mut body = w.client_body("client_secret_post", false);
    // The world's fake provider is on loopback http, which a strict deployment refuses too:
    // the other provider URL is a public one, so that only `field` can be at fault.
    body["token_url"] = json!("https://accounts.example.com/token");
    body[field] = json!(url);
    call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(body)).await
}

#[tokio::test]
async fn registration_refuses_internal_provider_addresses_in_any_notation_naming_the_field() {
    let strict = World::with_vars("client_secret_post", &[("OUTBOUND_ALLOW_PRIVATE", "false")]).await;
    for field in ["token_url", "revoke_url"] {
        for url in REFUSED_EVERYWHERE.iter().chain(PRIVATE) {
            let answer = register_with(&strict, field, url).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field} {url}: {}", answer.text);
            assert_eq!(answer.json["field"], field, "{url}");
            let detail = answer.json["detail"].as_str().unwrap();
            assert!(!detail.contains("169.254") && !detail.contains("10.0.0.1"), "echoed: {detail}");
        }
    }
    // Plain http to a public name is refused without OUTBOUND_ALLOW_PRIVATE, https accepted.
    let answer = register_with(&strict, "token_url", "http://localhost:8080/token").await;
    assert_eq!((answer.status, answer.json["field"].clone()), (StatusCode::BAD_REQUEST, json!("token_url")));
    let mut body = strict.client_body("client_secret_post", false);
    body["token_url"] = json!("https://accounts.example.com/token");
    body["revoke_url"] = json!("https://accounts.example.com/revoke");
    let ok = call(&strict.admin, Method::POST, "/v1/clients", Some(&strict.app.admin_key), Some(body)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let id = ok.json["id"].as_str().unwrap();
    for url in ["https://[::ffff:a9fe:a9fe]/t", "https://10.0.0.1/t"] {
        let patch = call(
            &strict.admin,
            Method::PATCH,
            &format!("/v1/clients/{id}"),
            Some(&strict.app.admin_key),
            Some(json!({"revoke_url": url})),
        )
        .await;
        assert_eq!(patch.status, StatusCode::BAD_REQUEST, "{url}: {}", patch.text);
        assert_eq!(patch.json["field"], "revoke_url");
    }
    assert_eq!(strict.event_types(&format!("client-{id}")).await, vec!["ClientRegistered"], "nothing half-written");

    // Where private addresses are allowed (local development, these tests), link-local and
    // the other never-addresses still are not.
    let relaxed = World::new("client_secret_post").await;
    for url in REFUSED_EVERYWHERE {
        let answer = register_with(&relaxed, "token_url", url).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{url}: {}", answer.text);
    }
    for url in PRIVATE {
        let answer = register_with(&relaxed, "token_url", url).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{url}: {}", answer.text);
    }
}

#[tokio::test]
async fn provider_hosts_pins_provider_urls() {
    let w = World::with_vars(
        "client_secret_post",
        &[("OUTBOUND_ALLOW_PRIVATE", "false"), ("PROVIDER_HOSTS", "zoho.com, example.com")],
    )
    .await;
    let answer = register_with(&w, "token_url", "https://accounts.google.com/o/oauth2/token").await;
    assert_eq!((answer.status, answer.json["field"].clone()), (StatusCode::BAD_REQUEST, json!("token_url")));
    let answer = register_with(&w, "token_url", "https://evil-zoho.com/token").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let mut body = w.client_body("client_secret_post", false);
    body["token_url"] = json!("https://accounts.zoho.com/oauth/v2/token");
    body["revoke_url"] = json!("https://accounts.example.com/revoke");
    let ok = call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(body)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

/// A connected `conn-1` (token due for refresh) of a client whose token endpoint is given by
/// the name `localhost` (the name registration accepts over plain http), so the test's
/// resolver decides where that name goes at refresh time.
async fn connected_by_name(w: &World) -> String {
    w.provider.set(|b| b.expires_in = Some(60));
    let mut body = w.client_body("client_secret_post", false);
    body["token_url"] = json!(w.provider.url("/token").replace("127.0.0.1", "localhost"));
    let created = call(&w.admin, Method::POST, "/v1/clients", Some(&w.app.admin_key), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let client = created.json["id"].as_str().unwrap().to_owned();
    w.connect(&client, "conn-1").await;
    client
}

async fn scheduled_refresh(w: &World, provider: &Provider) -> Value {
    let event: Value = serde_json::from_str(SCHEDULE_EVENT).unwrap();
    token_refresh::handle(&w.app.ctx, provider, &event, SystemTime::now() + Duration::from_secs(60)).await.unwrap()
}

fn provider_with(dns: Arc<Dns>) -> Provider {
    let policy = OutboundPolicy { allow_private: true, provider_hosts: vec![] };
    Provider::with_lookup(Duration::from_secs(5), policy, dns)
}

async fn last_event(w: &World) -> (String, Value) {
    let row = w
        .app
        .client()
        .await
        .query_one(
            "SELECT type, data FROM events WHERE stream_id = 'connection-conn-1' ORDER BY version DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_name_that_resolves_to_link_local_at_refresh_time_fails_that_refresh_as_transient() {
    let w = World::new("client_secret_post").await;
    connected_by_name(&w).await;

    // The name resolved to where the provider is: the connection goes exactly there (the
    // system resolver is never asked: this resolver is the only one that knows the answer).
    let report = scheduled_refresh(&w, &provider_with(Dns::one("localhost", "127.0.0.1"))).await;
    assert_eq!(report["refreshed"], 1, "{report}");
    assert_eq!(last_event(&w).await.0, "TokenRefreshed");
    let calls_before = w.provider.refresh_calls();

    // The same name now resolves to the metadata service.
    let report = scheduled_refresh(&w, &provider_with(Dns::one("localhost", "169.254.169.254"))).await;
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(w.provider.refresh_calls(), calls_before, "nothing reached any provider");
    let (kind, data) = last_event(&w).await;
    assert_eq!(kind, "TokenRefreshFailed");
    assert_eq!(data["error_class"], "address_refused");
    let message = data["message"].as_str().unwrap();
    assert!(message.contains("169.254.169.254") && message.contains("localhost"), "{message}");
    assert_eq!(w.status("conn-1").await, "refresh_failing", "transient: retried later, no reauthorization");
}

#[tokio::test]
async fn a_private_address_is_refused_at_call_time_when_private_is_not_allowed() {
    let w = World::new("client_secret_post").await;
    connected_by_name(&w).await;
    let strict = OutboundPolicy { allow_private: false, provider_hosts: vec![] };
    let provider = Provider::with_lookup(Duration::from_secs(5), strict, Dns::one("localhost", "10.1.2.3"));
    let report = scheduled_refresh(&w, &provider).await;
    assert_eq!(report["failed"], 1, "{report}");
    let (kind, data) = last_event(&w).await;
    assert_eq!((kind.as_str(), data["error_class"].as_str()), ("TokenRefreshFailed", Some("address_refused")));
}

#[tokio::test]
async fn a_stored_literal_address_is_checked_at_call_time_too() {
    // A client stored before the check existed (written straight into the projection):
    // reqwest never asks a resolver about a literal, so the call-time check must see it.
    let w = World::new("client_secret_post").await;
    let client = connected_by_name(&w).await;
    let port = w.provider.addr.port();
    w.app
        .client()
        .await
        .execute(
            "UPDATE clients SET token_url = $1 WHERE id = $2",
            &[&format!("http://[::ffff:169.254.169.254]:{port}/token"), &client.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    let report = scheduled_refresh(&w, &Provider::from_config(w.app.ctx.config())).await;
    assert_eq!(report["failed"], 1, "{report}");
    let (kind, data) = last_event(&w).await;
    assert_eq!((kind.as_str(), data["error_class"].as_str()), ("TokenRefreshFailed", Some("address_refused")));
}

#[tokio::test]
async fn connection_errors_do_not_tell_open_ports_from_closed_ones() {
    let w = World::new("client_secret_post").await;
    connected_by_name(&w).await;
    // Nothing listens on port 9 of 127.0.0.2: the text must be the same fixed one as for any
    // unreachable provider, without the OS's "connection refused".
    let closed = provider_with(Dns::one("localhost", "127.0.0.2"));
    scheduled_refresh(&w, &closed).await;
    let (kind, data) = last_event(&w).await;
    assert_eq!(kind, "TokenRefreshFailed");
    let message = data["message"].as_str().unwrap();
    assert!(!message.to_lowercase().contains("refused") && !message.contains("os error"), "{message}");
}
