//! The shape of a client: its settings, the events of its stream, the request bodies of
//! `POST` and `PATCH /v1/clients`, and the rules every setting must satisfy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use url::{Host, Url};
use uuid::Uuid;

use super::Error;
use crate::capture::{CaptureError, CapturePath};
pub use crate::providers::{BodyFormat, Capture, CaptureField, ErrorRules, Grant, ScopeSeparator, TokenRequest};

/// How keyledger authenticates itself at the provider's token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded `client_id:client_secret`.
    ClientSecretBasic,
}

impl AuthMethod {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    /// Parses a wire name as stored in the projection.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            _ => None,
        }
    }
}

/// Every setting of a client except its secret; events carry it whole so that a replay
/// never has to merge partial changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientSettings {
    /// Operator-chosen name, e.g. `zoho-crm`.
    pub name: String,
    /// The provider's authorization endpoint.
    pub authorize_url: String,
    /// The provider's token endpoint.
    pub token_url: String,
    /// The provider's revocation endpoint (RFC 7009), if it has one.
    pub revoke_url: Option<String>,
    /// keyledger's client id at the provider.
    pub client_id: String,
    /// Where the provider sends the browser back (keyledger's `/oauth/callback`).
    pub redirect_uri: String,
    /// Scopes requested on authorization.
    pub scopes: Vec<String>,
    /// Client authentication at the token endpoint.
    pub auth_method: AuthMethod,
    /// Whether authorizations use PKCE (S256).
    pub pkce: bool,
    /// Extra query parameters of the authorize URL (`access_type=offline`, `prompt=consent`).
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Free-form operator data.
    pub metadata: Value,
    /// The provider preset the client was made from (DESIGN §6.14), if any.
    #[serde(default)]
    pub preset: Option<String>,
    /// The preset's parameters with their effective values (defaults filled in).
    #[serde(default)]
    pub preset_params: BTreeMap<String, String>,
    /// What becomes the connection's `provider_data`: callback query parameters and
    /// token-response fields (dotted paths), none of them secret-looking (§6.13).
    #[serde(default)]
    pub capture: Capture,
    /// The grants the client may use.
    #[serde(default = "default_grants")]
    pub grants: Vec<Grant>,
    /// How this provider departs from RFC 6749 (set by a preset, or given explicitly).
    #[serde(default)]
    pub quirks: Quirks,
}

pub(super) fn default_grants() -> Vec<Grant> {
    vec![Grant::AuthorizationCode]
}

/// A provider's departures from RFC 6749, as data (DESIGN §6.14).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Quirks {
    /// How scopes are joined on the authorize URL (`comma` for Zoho, Slack, Shopify).
    pub scope_separator: ScopeSeparator,
    /// Token request body encoding and extra headers (GitHub's `Accept: application/json`).
    pub token_request: TokenRequest,
    /// How errors arrive: in a 2xx body, and which provider codes on refresh mean which
    /// RFC 6749 code (Zoho `invalid_code` → `invalid_grant`).
    pub errors: ErrorRules,
    /// The lifetime to assume when a token response has no `expires_in` (Salesforce).
    pub assumed_lifetime_secs: Option<u64>,
    /// Refresh no earlier than this long before expiry, inline and scheduled alike (for a
    /// provider that refuses early refreshes); the global buffers apply when unset.
    pub expiry_buffer_secs: Option<u64>,
}

/// Headers keyledger sets itself on a token request; a quirk may not replace them.
const RESERVED_HEADERS: &[&str] = &["authorization", "content-type", "content-length", "host", "transfer-encoding"];
/// RFC 6749 codes a provider's refresh error may be mapped to.
const MAPPABLE_CODES: &[&str] = &["invalid_grant", "invalid_client", "temporarily_unavailable", "server_error"];
/// Longest assumed lifetime (a year) and expiry buffer (a day).
const MAX_LIFETIME: u64 = 366 * 86_400;
const MAX_BUFFER: u64 = 86_400;

impl Quirks {
    /// Checks every quirk; 400 naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in &self.token_request.headers {
            let field = format!("quirks.token_request.headers.{name}");
            let name_ok = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
            if !name_ok || RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(Error::invalid(field, "a header name must be a token and not one keyledger sets itself"));
            }
            // Settings travel in events (and outbound events) in plain text: no credentials.
            if crate::request_log::redact::is_sensitive_key(name) {
                return Err(Error::invalid(field, "a header that looks like a credential cannot be a quirk"));
            }
            // `HeaderValue` would also take bytes past ASCII; the rule (and docs/openapi.json)
            // is visible ASCII, space and tab.
            if value.len() > 500 || !value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
                return Err(Error::invalid(field, "a header value is at most 500 visible ASCII characters"));
            }
        }
        for (code, meaning) in &self.errors.refresh_error_map {
            let field = format!("quirks.errors.refresh_error_map.{code}");
            if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::invalid(field, "an error code is 1 to 64 visible ASCII characters"));
            }
            if !MAPPABLE_CODES.contains(&meaning.as_str()) {
                return Err(Error::invalid(field, format!("must be one of: {}", MAPPABLE_CODES.join(", "))));
            }
        }
        if self.assumed_lifetime_secs.is_some_and(|s| s == 0 || s > MAX_LIFETIME) {
            return Err(Error::invalid(
                "quirks.assumed_lifetime_secs",
                format!("assumed_lifetime_secs must be 1 to {MAX_LIFETIME}"),
            ));
        }
        if self.expiry_buffer_secs.is_some_and(|s| s > MAX_BUFFER) {
            return Err(Error::invalid(
                "quirks.expiry_buffer_secs",
                format!("expiry_buffer_secs must be 0 to {MAX_BUFFER}"),
            ));
        }
        Ok(())
    }
}

/// Events of a `client-<uuid>` stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ClientEvent {
    /// A client was registered; `client_secret` is a ciphertext.
    ClientRegistered {
        /// Client id (keyledger's).
        id: Uuid,
        /// Its settings.
        settings: ClientSettings,
        /// Ciphertext bound to `client-<id>`/`client_secret`.
        client_secret: String,
    },
    /// Settings changed; carries all of them as they are after the change.
    ClientUpdated {
        /// Client id.
        id: Uuid,
        /// The settings after the change.
        settings: ClientSettings,
    },
    /// A new secret replaced the old one.
    ClientSecretRotated {
        /// Client id.
        id: Uuid,
        /// Ciphertext bound to `client-<id>`/`client_secret`.
        client_secret: String,
    },
    /// The client was deleted (kept in the log; hidden from the API).
    ClientDeleted {
        /// Client id.
        id: Uuid,
    },
}

/// The body of `POST /v1/clients`. With `preset`, every field but `client_id`,
/// `client_secret` and `redirect_uri` may be left out: the preset fills it; a field given
/// explicitly overrides the preset's value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Name (default: the preset's id).
    #[serde(default)]
    pub name: Option<String>,
    /// Provider preset id (`zoho`, `microsoft`, …; `GET /v1/providers`).
    #[serde(default)]
    pub preset: Option<String>,
    /// The preset's template parameters (`{"region": "eu"}`).
    #[serde(default)]
    pub preset_params: Option<BTreeMap<String, String>>,
    /// Authorization endpoint.
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// Token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Revocation endpoint; `null` for none.
    #[serde(default, deserialize_with = "present")]
    pub revoke_url: Option<Option<String>>,
    /// Client id at the provider.
    pub client_id: String,
    /// Client secret at the provider.
    pub client_secret: SecretString,
    /// Redirect URI registered at the provider.
    pub redirect_uri: String,
    /// Requested scopes (with a preset: its defaults when empty, its required ones added).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Client authentication method.
    #[serde(default)]
    pub auth_method: Option<AuthMethod>,
    /// Use PKCE.
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Extra authorize parameters.
    #[serde(default)]
    pub extra_authorize_params: Option<BTreeMap<String, String>>,
    /// Operator data (an object).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// What to keep as `provider_data`.
    #[serde(default)]
    pub capture: Option<Capture>,
    /// Allowed grants.
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// Provider quirks.
    #[serde(default)]
    pub quirks: Option<Quirks>,
}

/// The body of `PATCH /v1/clients/{id}`: every field optional; `revoke_url: null` removes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// Name.
    pub name: Option<String>,
    /// Authorization endpoint.
    pub authorize_url: Option<String>,
    /// Token endpoint.
    pub token_url: Option<String>,
    /// Revocation endpoint; `Some(None)` removes it.
    #[serde(default, deserialize_with = "present")]
    pub revoke_url: Option<Option<String>>,
    /// Client id at the provider.
    pub client_id: Option<String>,
    /// A new client secret.
    pub client_secret: Option<SecretString>,
    /// Redirect URI.
    pub redirect_uri: Option<String>,
    /// Requested scopes.
    pub scopes: Option<Vec<String>>,
    /// Client authentication method.
    pub auth_method: Option<AuthMethod>,
    /// Use PKCE.
    pub pkce: Option<bool>,
    /// Extra authorize parameters (replaces the old set).
    pub extra_authorize_params: Option<BTreeMap<String, String>>,
    /// Operator data (replaces the old value).
    pub metadata: Option<Value>,
    /// New preset parameters; the preset's URLs are rendered again with them (fields given
    /// in the same body still win).
    pub preset_params: Option<BTreeMap<String, String>>,
    /// What to keep as `provider_data` (replaces the old lists).
    pub capture: Option<Capture>,
    /// Allowed grants.
    pub grants: Option<Vec<Grant>>,
    /// Provider quirks (replace the old ones).
    pub quirks: Option<Quirks>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A client as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    /// keyledger's id of the client.
    pub id: Uuid,
    /// Settings.
    #[serde(flatten)]
    pub settings: ClientSettings,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A client with its decrypted secret, for talking to the provider; never serialized.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    /// keyledger's id of the client.
    pub id: Uuid,
    /// Settings.
    pub settings: ClientSettings,
    /// The client secret.
    pub client_secret: SecretString,
}

/// The parameters keyledger itself sets on an authorize URL; extra parameters may not override them.
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] =
    &["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

/// True for hosts on which plain `http` is allowed (a provider on this machine, in tests).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a provider or redirect URL: absolute, `https` (or `http` on a loopback host), no
/// credentials and no fragment. Tokens and secrets travel to these URLs, so plain `http`
/// across a network is refused.
pub fn parse_endpoint(field: &str, value: &str) -> Result<Url, Error> {
    if value.chars().count() > MAX_URL_CHARS {
        return Err(Error::invalid(field, format!("{field} must be at most {MAX_URL_CHARS} characters")));
    }
    let url =
        Url::parse(value.trim()).map_err(|e| Error::invalid(field, format!("{field} is not an absolute URL: {e}")))?;
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !scheme_ok {
        return Err(Error::invalid(
            field,
            format!("{field} must use https (plain http only on 127.0.0.1, ::1 or localhost)"),
        ));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(field, format!("{field} needs a host and no user information")));
    }
    if url.fragment().is_some() {
        return Err(Error::invalid(field, format!("{field} must not have a fragment")));
    }
    Ok(url)
}

/// Longest provider or redirect URL, in characters, as sent (what docs/openapi.json states).
pub const MAX_URL_CHARS: usize = 2048;

fn check_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    // The length is that of the text as sent; surrounding white space is then dropped.
    let too_long = value.chars().count() > max;
    let value = value.trim();
    if value.is_empty() || too_long {
        return Err(Error::invalid(field, format!("{field} must be 1 to {max} characters")));
    }
    Ok(value.to_owned())
}

impl ClientSettings {
    /// Checks every field and normalises the text ones; 400 naming the first bad field.
    pub fn validate(mut self) -> Result<Self, Error> {
        self.name = check_text("name", &self.name, 100)?;
        self.client_id = check_text("client_id", &self.client_id, 500)?;
        self.authorize_url = parse_endpoint("authorize_url", &self.authorize_url)?.to_string();
        self.token_url = parse_endpoint("token_url", &self.token_url)?.to_string();
        self.redirect_uri = parse_endpoint("redirect_uri", &self.redirect_uri)?.to_string();
        self.revoke_url = match self.revoke_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(parse_endpoint("revoke_url", url)?.to_string()),
        };
        let mut scopes = Vec::with_capacity(self.scopes.len());
        for (i, scope) in self.scopes.iter().enumerate() {
            let scope = scope.trim();
            if scope.is_empty() || scope.len() > 500 || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::invalid(
                    format!("scopes[{i}]"),
                    "a scope must be 1 to 500 characters without spaces",
                ));
            }
            if !scopes.iter().any(|s: &String| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        self.scopes = scopes;
        for key in self.extra_authorize_params.keys() {
            if key.is_empty() || RESERVED_AUTHORIZE_PARAMS.contains(&key.as_str()) {
                return Err(Error::invalid(
                    format!("extra_authorize_params.{key}"),
                    format!("'{key}' is set by keyledger and cannot be an extra parameter"),
                ));
            }
        }
        if !self.metadata.is_object() {
            return Err(Error::invalid("metadata", "metadata must be a JSON object"));
        }
        for (list, fields) in [("callback", &self.capture.callback), ("token", &self.capture.token)] {
            if fields.len() > MAX_CAPTURE {
                return Err(Error::invalid(format!("capture.{list}"), format!("at most {MAX_CAPTURE} entries")));
            }
            for (i, f) in fields.iter().enumerate() {
                let field = format!("capture.{list}[{i}]");
                capture_path(f).map_err(|e| match e {
                    CaptureError::Sensitive(_) => Error::invalid(
                        field.clone(),
                        format!("{field} looks like a secret; only non-secret values can be captured"),
                    ),
                    CaptureError::Malformed => {
                        Error::invalid(field.clone(), format!("{field}: {}", CaptureError::Malformed))
                    }
                })?;
                if list == "callback" && CALLBACK_OWN.contains(&f.path()) {
                    return Err(Error::invalid(field, "code, state, error and error_description are keyledger's own"));
                }
            }
        }
        if self.grants.is_empty() {
            return Err(Error::invalid("grants", "grants must name at least one grant"));
        }
        self.grants.dedup();
        self.quirks.validate()?;
        Ok(self)
    }

    /// The token-response fields to keep, ready for the token endpoint.
    pub fn token_capture(&self) -> Vec<CapturePath> {
        self.capture.token.iter().filter_map(|f| capture_path(f).ok()).collect()
    }

    /// Every captured key, callback and token alike: what connection history may show of a
    /// stored `provider_data`.
    pub fn all_capture(&self) -> Vec<CapturePath> {
        self.capture.callback.iter().chain(&self.capture.token).filter_map(|f| capture_path(f).ok()).collect()
    }
}

/// At most this many captured values per list.
const MAX_CAPTURE: usize = 20;
/// Callback parameters keyledger reads itself.
const CALLBACK_OWN: &[&str] = &["code", "state", "error", "error_description"];

/// A capture entry as a [`CapturePath`]: the field's own name (the path's last segment) and
/// a renamed key pass the secret-name rule (§6.13).
pub fn capture_path(field: &CaptureField) -> Result<CapturePath, CaptureError> {
    CapturePath::parse_as(field.path(), field.stored_as())
}

/// The capture lists of a client as the token endpoint and history need them, from the
/// stored JSON (`{"token": [...], "callback": [...]}`). Unreadable data is
/// [`Error::Corrupt`]: refused rather than read as "capture nothing" (fails closed).
pub fn stored_capture(value: &Value) -> Result<Capture, Error> {
    serde_json::from_value(value.clone()).map_err(|e| Error::Corrupt(format!("capture: {e}")))
}

pub(super) fn check_secret(secret: &SecretString) -> Result<(), Error> {
    let len = secret.expose_secret().len();
    if len == 0 || len > 4096 {
        return Err(Error::invalid("client_secret", "client_secret must be 1 to 4096 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(e: Error) -> Option<String> {
        match e {
            Error::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    #[test]
    fn urls_and_texts_are_bounded_as_sent() {
        let long = format!("https://a.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(field(parse_endpoint("redirect_uri", &long).unwrap_err()).as_deref(), Some("redirect_uri"));
        let fits = format!("https://a.example.com/{}", "a".repeat(MAX_URL_CHARS - 30));
        assert!(parse_endpoint("token_url", &fits).is_ok());
        assert!(check_text("name", &format!(" {} ", "n".repeat(99)), 100).is_err());
        assert_eq!(check_text("name", &format!("{} ", "n".repeat(99)), 100).unwrap(), "n".repeat(99));
    }

    fn settings() -> ClientSettings {
        ClientSettings {
            name: " zoho-crm ".into(),
            authorize_url: "https://accounts.zoho.com/oauth/v2/auth".into(),
            token_url: "https://accounts.zoho.com/oauth/v2/token".into(),
            revoke_url: Some("".into()),
            client_id: "1000.ABC".into(),
            redirect_uri: "https://api.example.com/oauth/callback".into(),
            scopes: vec!["ZohoCRM.modules.ALL".into(), "ZohoCRM.modules.ALL".into()],
            auth_method: AuthMethod::ClientSecretPost,
            pkce: true,
            extra_authorize_params: BTreeMap::from([("access_type".into(), "offline".into())]),
            metadata: json!({}),
            preset: None,
            preset_params: BTreeMap::new(),
            capture: Capture::default(),
            grants: default_grants(),
            quirks: Quirks::default(),
        }
    }

    #[test]
    fn valid_settings_are_normalised() {
        let s = settings().validate().unwrap();
        assert_eq!(s.name, "zoho-crm");
        assert_eq!(s.revoke_url, None);
        assert_eq!(s.scopes, vec!["ZohoCRM.modules.ALL".to_owned()]);
    }

    #[test]
    fn token_urls_must_be_https_except_on_loopback() {
        for ok in ["https://p.example/token", "http://127.0.0.1:8080/token", "http://localhost/t", "http://[::1]:9/t"] {
            assert!(parse_endpoint("token_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://p.example/token",
            "ftp://p.example/token",
            "/token",
            "https://user:pw@p.example/token",
            "https://p.example/token#x",
            "http://127.0.0.1.example.com/t",
        ] {
            let err = parse_endpoint("token_url", bad).unwrap_err();
            assert_eq!(field(err).as_deref(), Some("token_url"), "{bad}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut ClientSettings)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|s| s.name = " ".into())),
            ("authorize_url", Box::new(|s| s.authorize_url = "http://evil.example/a".into())),
            ("revoke_url", Box::new(|s| s.revoke_url = Some("http://evil.example/r".into()))),
            ("redirect_uri", Box::new(|s| s.redirect_uri = "nope".into())),
            ("scopes[0]", Box::new(|s| s.scopes = vec!["a b".into()])),
            (
                "extra_authorize_params.state",
                Box::new(|s| {
                    s.extra_authorize_params.insert("state".into(), "x".into());
                }),
            ),
            ("metadata", Box::new(|s| s.metadata = json!([1]))),
        ];
        for (name, change) in cases {
            let mut s = settings();
            change(&mut s);
            assert_eq!(field(s.validate().unwrap_err()).as_deref(), Some(name));
        }
    }

    #[test]
    fn captures_grants_and_quirks_are_checked() {
        type Change = Box<dyn Fn(&mut ClientSettings)>;
        let cases: Vec<(&str, Change)> = vec![
            ("capture.token[0]", Box::new(|s| s.capture.token = vec![CaptureField::Path("refresh_token".into())])),
            (
                "capture.token[1]",
                Box::new(|s| {
                    s.capture.token = vec![CaptureField::Path("team.id".into()), CaptureField::Path("a..b".into())]
                }),
            ),
            ("capture.callback[0]", Box::new(|s| s.capture.callback = vec![CaptureField::Path("state".into())])),
            ("grants", Box::new(|s| s.grants.clear())),
            ("quirks.assumed_lifetime_secs", Box::new(|s| s.quirks.assumed_lifetime_secs = Some(0))),
            ("quirks.expiry_buffer_secs", Box::new(|s| s.quirks.expiry_buffer_secs = Some(90_000))),
            (
                "quirks.token_request.headers.X-Api-Key",
                Box::new(|s| {
                    s.quirks.token_request.headers.insert("X-Api-Key".into(), "k".into());
                }),
            ),
            (
                "quirks.token_request.headers.Content-Type",
                Box::new(|s| {
                    s.quirks.token_request.headers.insert("Content-Type".into(), "text/plain".into());
                }),
            ),
        ];
        for (name, change) in cases {
            let mut s = settings();
            change(&mut s);
            assert_eq!(field(s.validate().unwrap_err()).as_deref(), Some(name));
        }
        let mut ok = settings();
        ok.capture.token = vec![
            CaptureField::Path("authed_user.id".into()),
            CaptureField::Renamed { path: "authed_user.id".into(), stored_as: "user_id".into() },
        ];
        ok.quirks.token_request.headers.insert("Accept".into(), "application/json".into());
        let ok = ok.validate().unwrap();
        let keys: Vec<String> = ok.token_capture().iter().map(CapturePath::key).collect();
        assert_eq!(keys, ["authed_user.id", "user_id"]);
    }

    #[test]
    fn settings_of_old_events_read_with_the_defaults() {
        let mut old = serde_json::to_value(settings()).unwrap();
        for k in ["preset", "preset_params", "capture", "grants", "quirks"] {
            old.as_object_mut().unwrap().remove(k);
        }
        let s: ClientSettings = serde_json::from_value(old).unwrap();
        assert_eq!(s.grants, [Grant::AuthorizationCode]);
        assert_eq!(s.quirks, Quirks::default());
        assert!(s.capture.token.is_empty() && s.preset.is_none());
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: ClientPatch = serde_json::from_value(json!({"revoke_url": null})).unwrap();
        assert_eq!(p.revoke_url, Some(None));
        let p: ClientPatch = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p.revoke_url, None);
    }
}
