//! A test world for OAuth connections: a fresh database, the fake provider, the admin,
//! token-fetch and oauth routers, and the steps a user goes through (register a client,
//! authorize through the browser, fetch tokens).

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::{
    fake_provider::FakeProvider,
    helpers::{Answer, TestApp, call, call_raw},
};

pub struct World {
    pub app: TestApp,
    pub provider: FakeProvider,
    pub admin: Router,
    pub tokens: Router,
    pub callback: Router,
    pub client_secret: String,
}

impl World {
    /// A world whose provider expects `auth_method`.
    pub async fn new(auth_method: &str) -> Self {
        Self::with_vars(auth_method, &[]).await
    }

    pub async fn with_vars(auth_method: &str, vars: &[(&str, &str)]) -> Self {
        let app = TestApp::with_vars(vars).await;
        let client_secret = format!("cs-{}", uuid::Uuid::new_v4().simple());
        let provider = FakeProvider::start("kl-client", &client_secret, auth_method).await;
        let admin = admin::router(app.ctx.clone());
        let tokens = token_fetch::router(app.ctx.clone());
        let callback = oauth::router(app.ctx.clone());
        Self { app, provider, admin, tokens, callback, client_secret }
    }

    /// The registration body for this world's provider.
    pub fn client_body(&self, auth_method: &str, pkce: bool) -> Value {
        json!({
            "name": "fake",
            "authorize_url": self.provider.url("/authorize"),
            "token_url": self.provider.url("/token"),
            "revoke_url": self.provider.url("/revoke"),
            "client_id": "kl-client",
            "client_secret": self.client_secret,
            "redirect_uri": "http://127.0.0.1:9/oauth/callback",
            "scopes": ["read", "write"],
            "auth_method": auth_method,
            "pkce": pkce,
            "extra_authorize_params": {"access_type": "offline", "prompt": "consent"},
        })
    }

    /// Registers a client through the admin API; returns its id.
    pub async fn register(&self, auth_method: &str, pkce: bool) -> String {
        let created = call(
            &self.admin,
            Method::POST,
            "/v1/clients",
            Some(&self.app.admin_key),
            Some(self.client_body(auth_method, pkce)),
        )
        .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        created.json["id"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/connections/authorize`.
    pub async fn start(&self, client_id: &str, connection_id: &str, return_to: Option<&str>) -> Answer {
        let mut body = json!({"client_id": client_id, "connection_id": connection_id});
        if let Some(r) = return_to {
            body["return_to"] = json!(r);
        }
        call(&self.tokens, Method::POST, "/v1/connections/authorize", Some(&self.app.admin_key), Some(body)).await
    }

    /// The browser at the provider: follows the authorize URL and returns the callback query.
    pub async fn consent(&self, authorize_url: &str) -> String {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let answer = http.get(authorize_url).send().await.unwrap();
        assert!(answer.status().is_redirection(), "{}", answer.status());
        let location = answer.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
        url::Url::parse(&location).unwrap().query().unwrap().to_owned()
    }

    /// `GET /oauth/callback?<query>` with an `Accept` header.
    pub async fn callback(&self, query: &str, accept: &str) -> Answer {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("/oauth/callback?{query}"))
            .header(header::ACCEPT, accept)
            .body(Body::empty())
            .unwrap();
        call_raw(&self.callback, request).await
    }

    /// The whole flow for `connection_id`; asserts it connected.
    pub async fn connect(&self, client_id: &str, connection_id: &str) {
        let started = self.start(client_id, connection_id, None).await;
        assert_eq!(started.status, StatusCode::CREATED, "{}", started.text);
        let query = self.consent(started.json["authorize_url"].as_str().unwrap()).await;
        let done = self.callback(&query, "application/json").await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert_eq!(done.json["status"], "connected");
    }

    /// `GET /v1/tokens/{id}` with the admin key.
    pub async fn token(&self, id: &str) -> Answer {
        call(&self.tokens, Method::GET, &format!("/v1/tokens/{id}"), Some(&self.app.admin_key), None).await
    }

    /// Event types of a stream, oldest first, straight from the log.
    pub async fn event_types(&self, stream: &str) -> Vec<String> {
        self.app
            .client()
            .await
            .query("SELECT type FROM events WHERE stream_id = $1 ORDER BY version", &[&stream])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Number of events in the whole log.
    pub async fn event_count(&self) -> i64 {
        self.app.client().await.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0)
    }

    /// A connection's projected status.
    pub async fn status(&self, id: &str) -> String {
        self.app
            .client()
            .await
            .query_one("SELECT status FROM connections WHERE connection_id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }

    /// Everything stored about connections, clients, states and the log, as text.
    pub async fn dump(&self) -> String {
        self.app
            .client()
            .await
            .query_one(
                "SELECT coalesce((SELECT string_agg(t::text, ' ') FROM connections t), '') ||
                        coalesce((SELECT string_agg(t::text, ' ') FROM clients t), '') ||
                        coalesce((SELECT string_agg(t::text, ' ') FROM oauth_states t), '') ||
                        coalesce((SELECT string_agg(t::text, ' ') FROM events t), '')",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Asserts the projections equal a rebuild from the log.
    pub async fn assert_replay_clean(&self) {
        let mut client = self.app.client().await;
        let report = shared::projections::replay(&mut client, shared::PROJECTORS).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}
