//! A fake OAuth 2.0 provider served over real HTTP on a loopback port inside the test:
//! authorization codes bound to PKCE challenges, client authentication checked per method,
//! refresh-token rotation with reuse detection (`invalid_grant`), the client-credentials
//! grant (RFC 6749 §4.4, no refresh token), and knobs to answer 500,
//! be slow, omit fields or shape scopes differently. It counts every call.
//!
//! The quirks of real providers (DESIGN §6.14) are switches of the same fake, so one
//! provider on one local port plays Zoho, Notion, GitHub, Salesforce, Slack or Shopify:
//! errors inside HTTP 200, a provider's own code for a dead refresh token, JSON-only token
//! requests, form-encoded answers unless `Accept: application/json`, extra callback query
//! values, and a refusal to refresh before the provider's own window.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

/// How the fake lists granted scopes.
#[derive(Debug, Clone)]
pub enum ScopeStyle {
    /// `"a b"`.
    Space,
    /// `"a,b"`.
    Comma,
    /// `["a", "b"]`.
    Array,
    /// No `scope` member.
    Omit,
}

/// Behaviour switches; change them between steps of a test.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answer every token request with this status (500, 429…) instead of tokens.
    pub fail_status: Option<u16>,
    /// Sleep this long before answering a token request.
    pub delay: Duration,
    /// Answer refreshes with `invalid_grant` whatever the token.
    pub refuse_refresh: bool,
    /// Issue a new refresh token on refresh (and retire the old one).
    pub rotate: bool,
    /// Include a refresh token in code exchanges.
    pub refresh_token_on_code: bool,
    /// `expires_in`, or none at all.
    pub expires_in: Option<i64>,
    /// Scope shape.
    pub scope_style: ScopeStyle,
    /// Extra members of every token answer (Zoho's `api_domain`).
    pub extra: Map<String, Value>,
    /// Answer OAuth errors with HTTP 200 (Zoho).
    pub errors_in_200: bool,
    /// Slack's convention: `"ok": true|false` in every answer (with `errors_in_200`).
    pub ok_member: bool,
    /// The code sent for a dead refresh token (`invalid_grant`; Zoho says `invalid_code`).
    pub dead_refresh_code: String,
    /// Accept only JSON token requests (Notion); a form body is `invalid_request`.
    pub json_requests_only: bool,
    /// Answer form-encoded unless the request says `Accept: application/json` (GitHub).
    pub form_unless_accept_json: bool,
    /// Extra query values on the redirect to the callback (`accounts-server`, `realmId`).
    pub callback_extra: Vec<(String, String)>,
    /// Refuse a refresh while the current token has more than this many seconds left.
    pub refresh_window: Option<i64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            fail_status: None,
            delay: Duration::ZERO,
            refuse_refresh: false,
            rotate: true,
            refresh_token_on_code: true,
            expires_in: Some(3600),
            scope_style: ScopeStyle::Space,
            extra: Map::new(),
            errors_in_200: false,
            ok_member: false,
            dead_refresh_code: "invalid_grant".into(),
            json_requests_only: false,
            form_unless_accept_json: false,
            callback_extra: Vec::new(),
            refresh_window: None,
        }
    }
}

struct Grant {
    challenge: Option<(String, String)>,
    redirect_uri: String,
    scope: String,
}

/// A token request as the fake saw it: Content-Type, Accept, body members.
pub type SeenRequest = (String, String, HashMap<String, String>);

/// The fake's state, shared with the test.
pub struct ProviderState {
    /// Expected client id.
    pub client_id: String,
    /// Expected client secret.
    pub client_secret: Mutex<String>,
    /// Expected client authentication: `client_secret_post` or `client_secret_basic`.
    pub auth_method: Mutex<String>,
    /// Behaviour.
    pub behaviour: Mutex<Behaviour>,
    /// Token endpoint calls with `grant_type=refresh_token`.
    pub refresh_calls: AtomicUsize,
    /// Token endpoint calls with `grant_type=authorization_code`.
    pub code_calls: AtomicUsize,
    /// Token endpoint calls with `grant_type=client_credentials`.
    pub client_credentials_calls: AtomicUsize,
    /// The `scope` of the last client-credentials request.
    pub last_client_credentials_scope: Mutex<Option<String>>,
    /// Revocation calls.
    pub revoke_calls: AtomicUsize,
    /// Tokens revoked, with their hints.
    pub revoked: Mutex<Vec<(String, String)>>,
    /// Every access and refresh token ever issued (to look for them where they must not be).
    pub issued: Mutex<Vec<String>>,
    /// How each token request authenticated (`post`, `basic`, `none`).
    pub auth_seen: Mutex<Vec<String>>,
    /// The last authorize request's query.
    pub last_authorize: Mutex<HashMap<String, String>>,
    /// The last token request: its Content-Type, Accept and body members.
    pub last_token_request: Mutex<Option<SeenRequest>>,
    /// Refresh tokens refused for being early (the provider's own window).
    pub early_refusals: AtomicUsize,
    /// The path of every request, in order (a tenant in a Microsoft URL is in it).
    pub paths: Mutex<Vec<String>>,
    /// When the access token issued with each live refresh token expires (unix seconds).
    expiry_of: Mutex<HashMap<String, i64>>,
    /// Refresh tokens that still work.
    live_refresh: Mutex<HashSet<String>>,
    codes: Mutex<HashMap<String, Grant>>,
    counter: AtomicUsize,
}

/// A running fake provider.
#[derive(Clone)]
pub struct FakeProvider {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<ProviderState>,
}

impl FakeProvider {
    /// Starts a provider that expects `client_id`/`client_secret` via `auth_method`.
    pub async fn start(client_id: &str, client_secret: &str, auth_method: &str) -> Self {
        let state = Arc::new(ProviderState {
            client_id: client_id.to_owned(),
            client_secret: Mutex::new(client_secret.to_owned()),
            auth_method: Mutex::new(auth_method.to_owned()),
            behaviour: Mutex::new(Behaviour::default()),
            refresh_calls: AtomicUsize::new(0),
            code_calls: AtomicUsize::new(0),
            client_credentials_calls: AtomicUsize::new(0),
            last_client_credentials_scope: Mutex::new(None),
            revoke_calls: AtomicUsize::new(0),
            revoked: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            auth_seen: Mutex::new(Vec::new()),
            last_authorize: Mutex::new(HashMap::new()),
            last_token_request: Mutex::new(None),
            early_refusals: AtomicUsize::new(0),
            paths: Mutex::new(Vec::new()),
            expiry_of: Mutex::new(HashMap::new()),
            live_refresh: Mutex::new(HashSet::new()),
            codes: Mutex::new(HashMap::new()),
            counter: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            // The same endpoints at the paths of the presets' URL templates, so that a test
            // can keep a rendered path (Microsoft's tenant) and change only the origin.
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/admin/oauth/authorize", get(authorize))
            .route("/admin/oauth/access_token", post(token))
            .layer(axum::middleware::from_fn_with_state(state.clone(), record_path))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    /// `http://127.0.0.1:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes the behaviour.
    pub fn set(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.behaviour.lock().unwrap());
    }

    /// Refresh calls so far.
    pub fn refresh_calls(&self) -> usize {
        self.state.refresh_calls.load(Ordering::SeqCst)
    }

    /// Client-credentials calls so far.
    pub fn client_credentials_calls(&self) -> usize {
        self.state.client_credentials_calls.load(Ordering::SeqCst)
    }

    /// Every token issued so far.
    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    /// Issues a token pair outside any flow (for seeding many connections at once).
    pub fn mint(&self) -> (String, String) {
        let n = self.state.counter.fetch_add(1, Ordering::SeqCst);
        let (access, refresh) = (format!("at-m{n}"), format!("rt-m{n}-{}", uuid::Uuid::new_v4().simple()));
        self.state.live_refresh.lock().unwrap().insert(refresh.clone());
        self.state.issued.lock().unwrap().extend([access.clone(), refresh.clone()]);
        (access, refresh)
    }

    /// Kills every live refresh token (as a provider does when a user revokes access).
    pub fn forget_refresh_tokens(&self) {
        self.state.live_refresh.lock().unwrap().clear();
    }
}

async fn record_path(
    State(s): State<Arc<ProviderState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    s.paths.lock().unwrap().push(request.uri().path().to_owned());
    next.run(request).await
}

async fn authorize(State(s): State<Arc<ProviderState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    *s.last_authorize.lock().unwrap() = q.clone();
    if q.get("client_id") != Some(&s.client_id) || q.get("response_type").map(String::as_str) != Some("code") {
        return (StatusCode::BAD_REQUEST, "bad authorize request").into_response();
    }
    let code = format!("code-{}", s.counter.fetch_add(1, Ordering::SeqCst));
    let challenge =
        q.get("code_challenge").map(|c| (c.clone(), q.get("code_challenge_method").cloned().unwrap_or_default()));
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    s.codes.lock().unwrap().insert(
        code.clone(),
        Grant { challenge, redirect_uri: redirect_uri.clone(), scope: q.get("scope").cloned().unwrap_or_default() },
    );
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", q.get("state").map_or("", |v| v));
    for (k, v) in &s.behaviour.lock().unwrap().callback_extra {
        target.query_pairs_mut().append_pair(k, v);
    }
    Redirect::to(target.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": format!("fake provider says {error}")})))
        .into_response()
}

/// An OAuth error as this provider's quirks shape it.
fn quirky_error(b: &Behaviour, status: StatusCode, error: &str) -> Response {
    let status = if b.errors_in_200 { StatusCode::OK } else { status };
    let mut body = json!({"error": error, "error_description": format!("fake provider says {error}")});
    if b.ok_member {
        body["ok"] = json!(false);
    }
    (status, axum::Json(body)).into_response()
}

/// A token answer as this provider's quirks shape it.
fn answer(b: &Behaviour, headers: &HeaderMap, mut body: Value) -> Response {
    if b.ok_member {
        body["ok"] = json!(true);
    }
    let wants_json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"));
    if b.form_unless_accept_json && !wants_json {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in body.as_object().unwrap() {
            form.append_pair(k, &v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
        return ([(header::CONTENT_TYPE, "application/x-www-form-urlencoded")], form.finish()).into_response();
    }
    axum::Json(body).into_response()
}

/// The members of a form or JSON token request body.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> (String, HashMap<String, String>) {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let fields = if content_type.starts_with("application/json") {
        serde_json::from_slice::<Map<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    (content_type, fields)
}

fn client_authenticated(s: &ProviderState, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let expected = s.auth_method.lock().unwrap().clone();
    let secret = s.client_secret.lock().unwrap().clone();
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "));
    let seen = match (basic, form.contains_key("client_secret")) {
        (Some(_), false) => "basic",
        (None, true) => "post",
        (None, false) => "none",
        (Some(_), true) => "both",
    };
    s.auth_seen.lock().unwrap().push(seen.to_owned());
    match expected.as_str() {
        "client_secret_basic" => {
            let Some(decoded) = basic.and_then(|b| STANDARD.decode(b).ok()).and_then(|b| String::from_utf8(b).ok())
            else {
                return false;
            };
            let Some((id, sec)) = decoded.split_once(':') else { return false };
            let unescape =
                |v: &str| url::form_urlencoded::parse(format!("v={v}").as_bytes()).next().unwrap().1.into_owned();
            seen == "basic" && unescape(id) == s.client_id && unescape(sec) == secret
        }
        _ => {
            seen == "post" && form.get("client_id") == Some(&s.client_id) && form.get("client_secret") == Some(&secret)
        }
    }
}

fn issue(s: &ProviderState, b: &Behaviour, scope: &str, with_refresh: bool) -> Value {
    let n = s.counter.fetch_add(1, Ordering::SeqCst);
    let access = format!("at-{n}-{}", uuid::Uuid::new_v4().simple());
    let mut body = b.extra.clone();
    body.insert("access_token".into(), json!(access));
    body.insert("token_type".into(), json!("bearer"));
    s.issued.lock().unwrap().push(access);
    if let Some(e) = b.expires_in {
        body.insert("expires_in".into(), json!(e));
    }
    if with_refresh {
        let refresh = format!("rt-{n}-{}", uuid::Uuid::new_v4().simple());
        s.live_refresh.lock().unwrap().insert(refresh.clone());
        let expiry = chrono::Utc::now().timestamp() + b.expires_in.unwrap_or(3600);
        s.expiry_of.lock().unwrap().insert(refresh.clone(), expiry);
        s.issued.lock().unwrap().push(refresh.clone());
        body.insert("refresh_token".into(), json!(refresh));
    }
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    match b.scope_style {
        ScopeStyle::Space => body.insert("scope".into(), json!(scopes.join(" "))),
        ScopeStyle::Comma => body.insert("scope".into(), json!(scopes.join(","))),
        ScopeStyle::Array => body.insert("scope".into(), json!(scopes)),
        ScopeStyle::Omit => None,
    };
    Value::Object(body)
}

async fn token(State(s): State<Arc<ProviderState>>, headers: HeaderMap, raw: axum::body::Bytes) -> Response {
    let (content_type, form) = parse_body(&headers, &raw);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    *s.last_token_request.lock().unwrap() = Some((content_type.clone(), accept, form.clone()));
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    match grant_type.as_str() {
        "refresh_token" => s.refresh_calls.fetch_add(1, Ordering::SeqCst),
        "client_credentials" => s.client_credentials_calls.fetch_add(1, Ordering::SeqCst),
        _ => s.code_calls.fetch_add(1, Ordering::SeqCst),
    };
    let b = s.behaviour.lock().unwrap().clone();
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    if let Some(status) = b.fail_status {
        return (StatusCode::from_u16(status).unwrap(), "upstream trouble").into_response();
    }
    if b.json_requests_only && !content_type.starts_with("application/json") {
        return quirky_error(&b, StatusCode::BAD_REQUEST, "invalid_request");
    }
    if !client_authenticated(&s, &headers, &form) {
        return quirky_error(&b, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match grant_type.as_str() {
        "authorization_code" => {
            let Some(grant) = form.get("code").and_then(|c| s.codes.lock().unwrap().remove(c)) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if form.get("redirect_uri") != Some(&grant.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            if let Some((challenge, method)) = &grant.challenge {
                let Some(verifier) = form.get("code_verifier") else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                };
                let computed = URL_SAFE_NO_PAD.encode(shared::crypto::sha256(verifier.as_bytes()));
                if method != "S256" || &computed != challenge {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
            }
            answer(&b, &headers, issue(&s, &b, &grant.scope, b.refresh_token_on_code))
        }
        "refresh_token" => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            };
            if b.refuse_refresh {
                return quirky_error(&b, StatusCode::BAD_REQUEST, &b.dead_refresh_code);
            }
            if let Some(window) = b.refresh_window {
                let expiry = s.expiry_of.lock().unwrap().get(rt).copied();
                if expiry.is_some_and(|e| e - chrono::Utc::now().timestamp() > window) {
                    s.early_refusals.fetch_add(1, Ordering::SeqCst);
                    return quirky_error(&b, StatusCode::BAD_REQUEST, "invalid_request");
                }
            }
            let live = {
                let mut set = s.live_refresh.lock().unwrap();
                if b.rotate { set.remove(rt) } else { set.contains(rt) }
            };
            if !live {
                // Reuse of a rotated refresh token: real providers kill the grant here.
                return quirky_error(&b, StatusCode::BAD_REQUEST, &b.dead_refresh_code);
            }
            answer(&b, &headers, issue(&s, &b, "read write", b.rotate))
        }
        // RFC 6749 §4.4: no refresh token; the client asks again.
        "client_credentials" => {
            let scope = form.get("scope").cloned();
            *s.last_client_credentials_scope.lock().unwrap() = scope.clone();
            answer(&b, &headers, issue(&s, &b, scope.as_deref().unwrap_or("read"), false))
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

async fn revoke(
    State(s): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.revoke_calls.fetch_add(1, Ordering::SeqCst);
    if !client_authenticated(&s, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let token = form.get("token").cloned().unwrap_or_default();
    s.live_refresh.lock().unwrap().remove(&token);
    s.revoked.lock().unwrap().push((token, form.get("token_type_hint").cloned().unwrap_or_default()));
    StatusCode::OK.into_response()
}
