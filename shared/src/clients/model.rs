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

/// The body of `POST /v1/clients`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    /// Name.
    pub name: String,
    /// Authorization endpoint.
    pub authorize_url: String,
    /// Token endpoint.
    pub token_url: String,
    /// Revocation endpoint.
    #[serde(default)]
    pub revoke_url: Option<String>,
    /// Client id at the provider.
    pub client_id: String,
    /// Client secret at the provider.
    pub client_secret: SecretString,
    /// Redirect URI registered at the provider.
    pub redirect_uri: String,
    /// Requested scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Client authentication method.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// Use PKCE.
    #[serde(default)]
    pub pkce: bool,
    /// Extra authorize parameters.
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Operator data (an object).
    #[serde(default)]
    pub metadata: Option<Value>,
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

fn check_text(field: &str, value: &str, max: usize) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max {
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
        Ok(self)
    }
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
    fn patch_tells_null_from_absent() {
        let p: ClientPatch = serde_json::from_value(json!({"revoke_url": null})).unwrap();
        assert_eq!(p.revoke_url, Some(None));
        let p: ClientPatch = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p.revoke_url, None);
    }
}
