//! The OAuth 2.0 protocol towards providers: pending states, PKCE, authorize URLs, the
//! token endpoint (code exchange, refresh) and revocation, and how provider answers are read.
//!
//! Owns the outbound HTTP client (built once per execution environment: timeouts, no
//! redirects followed, since a token endpoint that redirects is misconfigured or hostile; no
//! proxy; every address checked by `outbound` after resolution), and what of a token answer
//! is kept (`capture`: the standard fields and the named ones, nothing else),
//! the classification of provider failures (`invalid_grant` versus transient), and the
//! `oauth_states` table. Only the SHA-256 of a state is stored, and the PKCE verifier is
//! encrypted. It never logs or returns a token, a secret or a verifier, and it never
//! decides what a failure means for a connection (that is `connections`).

mod answer;
mod state;

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::{
    clients::{AuthMethod, BodyFormat, ProviderClient, Quirks},
    config::Config,
    outbound::{self, GuardedResolver, Lookup, OutboundPolicy, SystemLookup},
};

pub use crate::capture::{self, CaptureError, CapturePath};
pub use answer::{classify_error, parse_scopes, parse_token_response};
use answer::{map_refresh_error, ok_false_error};
pub use state::{NewState, PendingState, Pkce, StateError, authorize_url, challenge_of, consume_state, create_state};

/// How long a pending authorization may take.
pub const STATE_TTL: Duration = Duration::from_secs(600);
/// A provider answer larger than this is not a token response.
const MAX_BODY: usize = 256 * 1024;
/// Longest provider text kept in an event or a log line.
const MAX_MESSAGE: usize = 300;

/// Why a call to a provider failed, as far as what to do next is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The grant (refresh token or code) is dead: only a new authorization helps.
    InvalidGrant,
    /// The provider refused the request for another reason (`invalid_client`, …).
    Rejected,
    /// No answer in time.
    Timeout,
    /// A 5xx, or `temporarily_unavailable`.
    ServerError,
    /// A 429.
    RateLimited,
    /// The connection to the provider failed.
    Network,
    /// An answer that is not a token response.
    InvalidResponse,
    /// The provider's URL or the address its name resolved to is not one keyledger may call
    /// (DESIGN §6.13). Transient: DNS or the configuration may change.
    AddressRefused,
}

impl ErrorClass {
    /// Worth trying again later without a new authorization.
    pub fn is_transient(self) -> bool {
        !matches!(self, Self::InvalidGrant | Self::Rejected)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::RateLimited => "rate_limited",
            Self::Network => "network",
            Self::InvalidResponse => "invalid_response",
            Self::AddressRefused => "address_refused",
        }
    }
}

/// A failed provider call; `message` is safe to store and log (never a token).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", class.as_str())]
pub struct ProviderError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The provider's OAuth `error` code, when it sent one.
    pub error: Option<String>,
    /// Explanation (the provider's `error_description`, or ours).
    pub message: String,
    /// The provider's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl ProviderError {
    fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, error: None, message: clip(&message.into()), retry_after: None }
    }

    /// The OAuth error code to show a caller (`invalid_grant`, `server_error`, …).
    pub fn code(&self) -> &str {
        self.error.as_deref().unwrap_or(self.class.as_str())
    }
}

fn clip(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE).collect();
    if text.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

/// A successful token endpoint answer.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// A (new) refresh token, when the provider sent one.
    pub refresh_token: Option<SecretString>,
    /// `Bearer` unless the provider says otherwise.
    pub token_type: String,
    /// Lifetime in seconds, when the provider gave one.
    pub expires_in: Option<i64>,
    /// Granted scopes, when the provider listed them.
    pub scopes: Option<Vec<String>>,
    /// Other fields of the answer (Zoho's `api_domain`, …), without anything token-like.
    pub provider_data: Map<String, Value>,
}

impl TokenSet {
    /// Absolute expiry from `now`.
    pub fn expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expires_in.map(|s| now + chrono::Duration::seconds(s))
    }
}

/// Where and how to call a provider's token and revocation endpoints.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    pub revoke_url: Option<String>,
    /// Client id at the provider.
    pub client_id: String,
    /// Client secret (redacted in `Debug`).
    pub client_secret: SecretString,
    /// Client authentication.
    pub auth_method: AuthMethod,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
    /// Token-response fields to keep as the connection's `provider_data` (§6.14 `capture`).
    pub capture: Vec<CapturePath>,
    /// The provider's departures from RFC 6749 (body format, headers, errors, lifetime).
    pub quirks: Quirks,
}

impl From<&ProviderClient> for TokenEndpoint {
    fn from(c: &ProviderClient) -> Self {
        Self {
            token_url: c.settings.token_url.clone(),
            revoke_url: c.settings.revoke_url.clone(),
            client_id: c.settings.client_id.clone(),
            client_secret: c.client_secret.clone(),
            auth_method: c.settings.auth_method,
            redirect_uri: c.settings.redirect_uri.clone(),
            capture: c.settings.token_capture(),
            quirks: c.settings.quirks.clone(),
        }
    }
}

/// The provider HTTP client, built on its first use rather than at start-up: building it
/// loads the TLS trust roots (milliseconds), and most cold starts of `token-fetch` and
/// `oauth` answer without calling a provider (a warm token, a status, a redirect).
#[derive(Debug)]
struct LazyHttp {
    client: OnceLock<reqwest::Client>,
    timeout: Duration,
    policy: OutboundPolicy,
    lookup: Arc<dyn Lookup>,
}

impl LazyHttp {
    fn client(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the provider's name itself, past the check.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(self.policy.clone(), self.lookup.clone())))
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("keyledger/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a TLS backend that cannot start fails here: a network-level failure.
            .map_err(|e| ProviderError::new(ErrorClass::Network, format!("the HTTP client cannot be built: {e}")))?;
        // Two first calls at once may both build one; the second is dropped unused.
        Ok(self.client.get_or_init(|| built))
    }
}

/// The outbound HTTP client for providers; clone it freely (one connection pool inside).
#[derive(Debug, Clone)]
pub struct Provider {
    /// The client, its address policy and resolver: one `Arc`, so that a clone per request
    /// (axum's `State`) is one reference count.
    http: Arc<LazyHttp>,
    /// A shorter bound than the client's for each call made through this handle (a
    /// scheduled refresh with little time left); `None`: the client's timeout.
    call_timeout: Option<Duration>,
}

impl Provider {
    /// The client `config` describes (timeout, `OUTBOUND_ALLOW_PRIVATE`, `PROVIDER_HOSTS`).
    /// Nothing is built yet: a TLS backend that cannot start fails the first provider call.
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.provider_timeout, OutboundPolicy::from_config(config))
    }

    /// A client whose every call is bounded by `timeout`, follows no redirect and reaches
    /// only addresses `policy` allows, resolved by the system resolver.
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> Self {
        Self::with_lookup(timeout, policy, Arc::new(SystemLookup))
    }

    /// [`Provider::new`] resolving names through `lookup` (tests make a name resolve to an
    /// address of their choice).
    pub fn with_lookup(timeout: Duration, policy: OutboundPolicy, lookup: Arc<dyn Lookup>) -> Self {
        let http = LazyHttp { client: OnceLock::new(), timeout, policy, lookup };
        Self { http: Arc::new(http), call_timeout: None }
    }

    /// The same client (same pool) with every call bounded by `timeout` when that is shorter
    /// than the client's own: a call that would outlive its caller's deadline times out
    /// instead, before any answer arrives, so no token the provider issued is ever dropped.
    pub fn with_call_timeout(&self, timeout: Duration) -> Self {
        Self { call_timeout: Some(timeout), ..self.clone() }
    }

    /// The literal part of the address check (scheme, `PROVIDER_HOSTS`, IP literals, which
    /// reqwest connects to without asking the resolver), before any byte is sent.
    fn check(&self, url: &str) -> Result<(), ProviderError> {
        outbound::check_url_str(&self.http.policy, url)
            .map_err(|e| ProviderError::new(ErrorClass::AddressRefused, e.to_string()))
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        endpoint: &TokenEndpoint,
        code: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<TokenSet, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", endpoint.redirect_uri.clone()),
        ];
        if let Some(v) = code_verifier {
            form.push(("code_verifier", v.expose_secret().to_owned()));
        }
        self.token_request(endpoint, form).await
    }

    /// Uses a refresh token (RFC 6749 §6).
    pub async fn refresh(
        &self,
        endpoint: &TokenEndpoint,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        self.token_request(endpoint, form).await.map_err(|e| map_refresh_error(e, &endpoint.quirks))
    }

    /// Asks for a token with the client's own credentials (RFC 6749 §4.4); `scopes` go as
    /// one `scope` joined with the client's separator (a space by default), left out when
    /// empty.
    pub async fn client_credentials(
        &self,
        endpoint: &TokenEndpoint,
        scopes: &[String],
    ) -> Result<TokenSet, ProviderError> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !scopes.is_empty() {
            form.push(("scope", endpoint.quirks.scope_separator.join(scopes)));
        }
        self.token_request(endpoint, form).await
    }

    /// Revokes a token at `revoke_url` (RFC 7009); any 2xx is success.
    pub async fn revoke(
        &self,
        endpoint: &TokenEndpoint,
        revoke_url: &str,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), ProviderError> {
        let form = vec![("token", token.expose_secret().to_owned()), ("token_type_hint", hint.to_owned())];
        self.check(revoke_url)?;
        let response = self.post(endpoint, revoke_url, form)?.send().await.map_err(send_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = read_body(response).await.unwrap_or_default();
        Err(classify_error(status.as_u16(), &bytes, None).unwrap_or_else(|| {
            ProviderError::new(ErrorClass::Rejected, format!("revocation answered HTTP {}", status.as_u16()))
        }))
    }

    fn post(
        &self,
        endpoint: &TokenEndpoint,
        url: &str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut request = self.http.client()?.post(url).header(reqwest::header::ACCEPT, "application/json");
        // Quirk headers (validated at registration: never Authorization or Content-Type)
        // replace the defaults of the same name.
        for (name, value) in &endpoint.quirks.token_request.headers {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(value),
            ) {
                request = request.header(name, value);
            }
        }
        match endpoint.auth_method {
            AuthMethod::ClientSecretPost => {
                form.push(("client_id", endpoint.client_id.clone()));
                form.push(("client_secret", endpoint.client_secret.expose_secret().to_owned()));
            }
            AuthMethod::ClientSecretBasic => {
                request = request.header(reqwest::header::AUTHORIZATION, basic_auth(endpoint));
            }
        }
        let request = match endpoint.quirks.token_request.format {
            BodyFormat::Form => request.form(&form),
            // Notion, Atlassian: the same members as a JSON object.
            BodyFormat::Json => {
                let body: Map<String, Value> =
                    form.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
                request.json(&body)
            }
        };
        Ok(match self.call_timeout {
            Some(limit) => request.timeout(limit),
            None => request,
        })
    }

    async fn token_request(
        &self,
        endpoint: &TokenEndpoint,
        form: Vec<(&'static str, String)>,
    ) -> Result<TokenSet, ProviderError> {
        self.check(&endpoint.token_url)?;
        let response = self.post(endpoint, &endpoint.token_url, form)?.send().await.map_err(send_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let form_encoded = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let bytes = read_body(response).await?;
        if let Some(err) = classify_error(status, &bytes, retry_after) {
            return Err(err);
        }
        if endpoint.quirks.errors.in_success_body
            && let Some(err) = ok_false_error(&bytes)
        {
            return Err(err);
        }
        if (300..400).contains(&status) {
            return Err(ProviderError::new(
                ErrorClass::InvalidResponse,
                format!("token endpoint redirected (HTTP {status})"),
            ));
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::new(ErrorClass::Rejected, format!("token endpoint answered HTTP {status}")));
        }
        let mut set = parse_token_response(&bytes, form_encoded, &endpoint.capture)?;
        if set.expires_in.is_none() {
            // Salesforce sends no expires_in: the preset's assumed lifetime applies.
            set.expires_in = endpoint.quirks.assumed_lifetime_secs.and_then(|s| i64::try_from(s).ok());
        }
        Ok(set)
    }
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 wants it: both parts form-urlencoded first.
fn basic_auth(endpoint: &TokenEndpoint) -> String {
    let id: String = form_urlencoded::byte_serialize(endpoint.client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(endpoint.client_secret.expose_secret().as_bytes()).collect();
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn send_error(e: reqwest::Error) -> ProviderError {
    // Fixed texts only: reqwest's own can carry the URL, and "connection refused" versus
    // "reset" versus "timed out" would let an admin key map which ports are open.
    if let Some(refused) = outbound::refusal_in(&e) {
        ProviderError::new(ErrorClass::AddressRefused, refused.to_string())
    } else if e.is_timeout() {
        ProviderError::new(ErrorClass::Timeout, "the provider did not answer in time")
    } else {
        ProviderError::new(ErrorClass::Network, "could not reach the provider")
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY {
                    return Err(ProviderError::new(ErrorClass::InvalidResponse, "the provider's answer is too large"));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(send_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<TokenSet, ProviderError> {
        parse_token_response(&serde_json::to_vec(&v).unwrap(), false, &[CapturePath::parse("api_domain").unwrap()])
    }

    #[test]
    fn a_full_answer_is_read() {
        let t = parse(json!({"access_token": "a", "refresh_token": "r", "token_type": "bearer", "expires_in": 3600,
                             "scope": "read write", "api_domain": "https://www.zohoapis.eu", "id_token": "jwt"}))
        .unwrap();
        assert_eq!(t.access_token.expose_secret(), "a");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "r");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.scopes.unwrap(), vec!["read", "write"]);
        assert_eq!(t.provider_data.get("api_domain"), Some(&json!("https://www.zohoapis.eu")));
        assert!(!t.provider_data.contains_key("id_token"));
    }

    #[test]
    fn a_slack_shaped_answer_keeps_only_standard_and_captured_fields() {
        let body = json!({"ok": true, "access_token": "xoxb-top", "token_type": "bot", "scope": "chat:write",
            "team": {"id": "T1", "name": "Acme"}, "enterprise": null,
            "authed_user": {"id": "U1", "scope": "x", "access_token": "xoxp-user", "refresh_token": "xoxe-user",
                            "token_type": "user"},
            "bot": {"bot_user_id": "B1", "bot_access_token": "xoxb-bot"}, "incoming_webhook": {"url": "https://hooks/x"}});
        let capture: Vec<CapturePath> =
            ["team.id", "authed_user.id"].iter().map(|p| CapturePath::parse(p).unwrap()).collect();
        let t = parse_token_response(&serde_json::to_vec(&body).unwrap(), false, &capture).unwrap();
        assert_eq!(Value::Object(t.provider_data.clone()), json!({"team.id": "T1", "authed_user.id": "U1"}));
        let t = parse_token_response(&serde_json::to_vec(&body).unwrap(), false, &[]).unwrap();
        assert!(t.provider_data.is_empty());
        assert_eq!(t.access_token.expose_secret(), "xoxb-top");
    }

    #[test]
    fn a_provider_description_is_bounded_cleaned_and_redacted() {
        let body = json!({"error": "invalid_client", "error_description": format!("bad\u{0}\r\nBearer abc.def {}", "x".repeat(400))});
        let e = classify_error(401, &serde_json::to_vec(&body).unwrap(), None).unwrap();
        assert!(!e.message.contains("abc.def"), "{}", e.message);
        assert!(!e.message.chars().any(char::is_control));
        assert!(e.message.chars().count() <= MAX_MESSAGE + 1);
        assert_eq!(e.code(), "invalid_client");
    }

    #[test]
    fn a_minimal_answer_is_read() {
        let t = parse(json!({"access_token": "a"})).unwrap();
        assert!(t.refresh_token.is_none());
        assert_eq!(t.expires_in, None);
        assert!(t.scopes.is_none());
        assert_eq!(t.token_type, "Bearer");
        let t = parse(json!({"access_token": "a", "expires_in": "120"})).unwrap();
        assert_eq!(t.expires_in, Some(120));
    }

    #[test]
    fn scope_variants() {
        assert_eq!(parse_scopes(&json!("a b  c")).unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_scopes(&json!("a,b, c")).unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_scopes(&json!(["a", "b", "a"])).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_scopes(&json!("")).unwrap(), Vec::<String>::new());
        assert!(parse_scopes(&json!(7)).is_none());
    }

    #[test]
    fn a_form_encoded_answer_is_read() {
        let t = parse_token_response(b"access_token=a&scope=x%2Cy&token_type=bearer", true, &[]).unwrap();
        assert_eq!(t.scopes.unwrap(), vec!["x", "y"]);
    }

    #[test]
    fn errors_are_classified() {
        let c =
            |status, body: Value| classify_error(status, &serde_json::to_vec(&body).unwrap(), None).map(|e| e.class);
        assert_eq!(c(400, json!({"error": "invalid_grant"})), Some(ErrorClass::InvalidGrant));
        // Zoho's code, known since before presets (clients registered by hand rely on it).
        assert_eq!(c(200, json!({"error": "invalid_code"})), Some(ErrorClass::InvalidGrant));
        // Any other provider code is a plain rejection until the client's quirks map it.
        assert_eq!(c(200, json!({"error": "bad_refresh_token"})), Some(ErrorClass::Rejected));
        let github = Quirks {
            errors: crate::clients::ErrorRules {
                in_success_body: true,
                refresh_error_map: [("bad_refresh_token".to_owned(), "invalid_grant".to_owned())].into(),
            },
            ..Quirks::default()
        };
        let refused = classify_error(200, br#"{"error": "bad_refresh_token"}"#, None).unwrap();
        assert_eq!(map_refresh_error(refused, &github).class, ErrorClass::InvalidGrant);
        let busy = classify_error(503, br#"{"error": "bad_refresh_token"}"#, None).unwrap();
        assert_eq!(map_refresh_error(busy, &github).class, ErrorClass::ServerError);
        assert_eq!(ok_false_error(br#"{"ok": false, "error": "invalid_code"}"#).unwrap().code(), "invalid_code");
        assert!(ok_false_error(br#"{"ok": true, "access_token": "x"}"#).is_none());
        assert_eq!(c(401, json!({"error": "invalid_client"})), Some(ErrorClass::Rejected));
        assert_eq!(c(400, json!({"error": "temporarily_unavailable"})), Some(ErrorClass::ServerError));
        assert_eq!(c(503, json!({})), Some(ErrorClass::ServerError));
        assert_eq!(c(429, json!({"error": "invalid_grant"})), Some(ErrorClass::RateLimited));
        assert_eq!(c(200, json!({"access_token": "a"})), None);
        assert!(classify_error(502, b"<html>bad gateway</html>", None).unwrap().class.is_transient());
        assert!(!ErrorClass::InvalidGrant.is_transient());
    }

    #[test]
    fn missing_access_token_is_an_invalid_response() {
        assert_eq!(parse(json!({"token_type": "Bearer"})).unwrap_err().class, ErrorClass::InvalidResponse);
        assert_eq!(parse_token_response(b"<html>", false, &[]).unwrap_err().class, ErrorClass::InvalidResponse);
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::generate();
        assert_eq!(p.verifier.expose_secret().len(), 43);
        assert_eq!(challenge_of(p.verifier.expose_secret()), p.challenge);
    }

    #[test]
    fn basic_auth_encodes_both_parts() {
        let e = TokenEndpoint {
            token_url: String::new(),
            revoke_url: None,
            client_id: "id:1".into(),
            client_secret: SecretString::from("s&c ret"),
            auth_method: AuthMethod::ClientSecretBasic,
            redirect_uri: String::new(),
            capture: Vec::new(),
            quirks: Quirks::default(),
        };
        let header = basic_auth(&e);
        let decoded = String::from_utf8(STANDARD.decode(header.trim_start_matches("Basic ")).unwrap()).unwrap();
        assert_eq!(decoded, "id%3A1:s%26c+ret");
    }
}
