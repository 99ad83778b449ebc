//! A fake OAuth 2.0 provider served over real HTTP on a loopback port inside the test:
//! authorization codes bound to PKCE challenges, client authentication checked per method,
//! refresh-token rotation with reuse detection (`invalid_grant`), the client-credentials
//! grant (RFC 6749 §4.4, no refresh token), and knobs to answer 500,
//! be slow, omit fields or shape scopes differently. It counts every call.

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
        }
    }
}

struct Grant {
    challenge: Option<(String, String)>,
    redirect_uri: String,
    scope: String,
}

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
            live_refresh: Mutex::new(HashSet::new()),
            codes: Mutex::new(HashMap::new()),
            counter: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
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
    Redirect::to(target.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": format!("fake provider says {error}")})))
        .into_response()
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

async fn token(
    State(s): State<Arc<ProviderState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
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
    if !client_authenticated(&s, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
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
            axum::Json(issue(&s, &b, &grant.scope, b.refresh_token_on_code)).into_response()
        }
        "refresh_token" => {
            let Some(rt) = form.get("refresh_token") else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
            };
            if b.refuse_refresh {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let live = {
                let mut set = s.live_refresh.lock().unwrap();
                if b.rotate { set.remove(rt) } else { set.contains(rt) }
            };
            if !live {
                // Reuse of a rotated refresh token: real providers kill the grant here.
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            axum::Json(issue(&s, &b, "read write", b.rotate)).into_response()
        }
        // RFC 6749 §4.4: no refresh token; the client asks again.
        "client_credentials" => {
            let scope = form.get("scope").cloned();
            *s.last_client_credentials_scope.lock().unwrap() = scope.clone();
            axum::Json(issue(&s, &b, scope.as_deref().unwrap_or("read"), false)).into_response()
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
