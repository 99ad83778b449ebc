//! The typed form of a preset file and the load-time checks every file must pass.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::request_log::redact::is_sensitive_key;

/// One provider, as its data file describes it (DESIGN §6.14). `GET /v1/providers/{id}`
/// shows this whole value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Stable id, equal to the file name (`zoho`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The provider's own documentation pages, most relevant first.
    pub docs: Vec<String>,
    /// Template parameters by name (`region`, `tenant`, `host`, `shop`).
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// Authorization endpoint template; `{name}` is replaced by a parameter's rendered value.
    pub authorize_url: String,
    /// Token endpoint template.
    pub token_url: String,
    /// RFC 7009 revocation endpoint template, when the provider has one.
    pub revoke_url: Option<String>,
    /// How the client authenticates at the token endpoint.
    pub auth_method: AuthMethod,
    /// Whether to send a PKCE challenge.
    pub pkce: bool,
    /// How the `scope` parameter joins scopes.
    pub scope_separator: ScopeSeparator,
    /// Scopes a client gets when it names none.
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Scopes always added (e.g. `offline_access`, without which no refresh token comes).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Extra query parameters on the authorization URL.
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Shape of token requests.
    pub token_request: TokenRequest,
    /// How the provider reports token-endpoint errors.
    pub errors: ErrorRules,
    /// Values kept as the connection's `provider_data`.
    pub capture: Capture,
    /// Lifetime to assume when a token response has no `expires_in`.
    pub assumed_lifetime_secs: Option<u64>,
    /// Refresh this long before expiry, where the provider refuses earlier refreshes or
    /// keyledger's global buffer does not fit.
    pub expiry_buffer_secs: Option<u64>,
    /// Grants the provider supports for this kind of app.
    pub grants: Vec<Grant>,
    /// Fact → documentation URL it was taken from.
    pub sources: BTreeMap<String, String>,
    /// Facts that could not be confirmed from the provider's documentation.
    #[serde(default)]
    pub uncertain: Vec<String>,
}

/// A URL template parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// What the parameter means, for people.
    pub description: String,
    /// Used when `preset_params` does not name the parameter; without one it is required.
    pub default: Option<String>,
    /// The only accepted values, when the provider has a closed list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// An anchored regular expression the value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Text substituted for an accepted value when it differs from the value itself (Zoho's
    /// `ca` data centre lives at `accounts.zohocloud.ca`, not `accounts.zoho.ca`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub render: BTreeMap<String, String>,
}

/// Client authentication at the token endpoint (same names as `POST /v1/clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// HTTP Basic with `client_id:client_secret`.
    ClientSecretBasic,
}

/// How scopes are joined into one `scope` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSeparator {
    /// RFC 6749: space-delimited.
    #[default]
    Space,
    /// Zoho, Slack, Shopify.
    Comma,
}

impl ScopeSeparator {
    /// The separator character as a string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Space => " ",
            Self::Comma => ",",
        }
    }

    /// `scopes` joined with this separator.
    pub fn join(self, scopes: &[String]) -> String {
        scopes.join(self.as_str())
    }
}

/// An OAuth grant type: what a preset supports, what a client allows, and how a connection's
/// tokens are obtained and renewed (DESIGN §6.14). One type for all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Redirect the user, exchange the code; renewed with the refresh token, when the
    /// provider issues one.
    #[default]
    AuthorizationCode,
    /// The client's own credentials, no user; renewed by asking for a new token the same way.
    ClientCredentials,
}

impl Grant {
    /// The wire name (also the `grant_type` of the token request).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AuthorizationCode, Self::ClientCredentials].into_iter().find(|g| g.as_str() == s)
    }

    /// True for the default (left out of connection events, so that old and new ones read
    /// the same).
    pub fn is_authorization_code(&self) -> bool {
        *self == Self::AuthorizationCode
    }
}

/// Body encoding of token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (RFC 6749).
    #[default]
    Form,
    /// `application/json` (Notion, Atlassian).
    Json,
}

/// How token requests are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Body encoding.
    #[serde(default)]
    pub format: BodyFormat,
    /// Extra request headers (GitHub: `Accept: application/json`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// How the token endpoint reports errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ErrorRules {
    /// A 2xx body with an `error` field (or Slack's `"ok": false`) is still an error.
    #[serde(default)]
    pub in_success_body: bool,
    /// Provider error codes on refresh → the RFC 6749 code they mean (Zoho
    /// `invalid_code` → `invalid_grant`, so the connection needs re-authorization).
    #[serde(default)]
    pub refresh_error_map: BTreeMap<String, String>,
}

/// What becomes `provider_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// Callback query parameters.
    #[serde(default)]
    pub callback: Vec<CaptureField>,
    /// Token-response fields; a dotted path reaches into nested objects (`team.id`).
    #[serde(default)]
    pub token: Vec<CaptureField>,
}

/// One captured value: a path, optionally stored under another name. `{"path", "as"}` takes
/// no other field (docs/openapi.json says `additionalProperties: false`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum CaptureField {
    /// Stored under its own path.
    Path(String),
    /// Stored under `as` (Slack's `authed_user.id` becomes `user_id`, because any name
    /// containing `auth` is refused by the secret-name rule).
    Renamed {
        /// Where the value is read.
        path: String,
        /// The `provider_data` key it is stored under.
        #[serde(rename = "as")]
        stored_as: String,
    },
}

impl CaptureField {
    /// Where the value is read (query parameter name or dotted JSON path).
    pub fn path(&self) -> &str {
        match self {
            Self::Path(path) | Self::Renamed { path, .. } => path,
        }
    }

    /// The `provider_data` key.
    pub fn stored_as(&self) -> &str {
        match self {
            Self::Path(path) => path,
            Self::Renamed { stored_as, .. } => stored_as,
        }
    }
}

/// The `GET /v1/providers` list item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Preset id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Parameters with their default and closed list.
    pub params: BTreeMap<String, SummaryParam>,
    /// Supported grants.
    pub grants: Vec<Grant>,
    /// The main documentation page.
    pub docs: String,
}

/// A parameter as the providers list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryParam {
    /// Default value, if any.
    pub default: Option<String>,
    /// Accepted values, if the list is closed.
    pub allowed: Option<Vec<String>>,
}

impl Preset {
    /// Parses and checks one data file; `file` names it in the error.
    pub fn from_json(file: &str, text: &str) -> Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let preset: Preset = serde_path_to_error::deserialize(de).map_err(|e| format!("{file}: {e}"))?;
        preset.check().map_err(|e| format!("{file}: {e}"))?;
        Ok(preset)
    }

    /// The `GET /v1/providers` item.
    pub fn summary(&self) -> Summary {
        Summary {
            id: self.id.clone(),
            name: self.name.clone(),
            params: self
                .params
                .iter()
                .map(|(name, p)| {
                    (name.clone(), SummaryParam { default: p.default.clone(), allowed: p.allowed.clone() })
                })
                .collect(),
            grants: self.grants.clone(),
            docs: self.docs.first().cloned().unwrap_or_default(),
        }
    }

    /// Rules a data file must satisfy beyond its shape: templates name only known
    /// parameters, defaults and closed lists pass their own rules, captured names pass the
    /// secret-name rule of §6.7/§6.13, every source is a URL or a named document.
    fn check(&self) -> Result<(), String> {
        if self.id.is_empty() || !self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err("id must be lowercase ascii letters, digits or _".into());
        }
        if self.grants.is_empty() {
            return Err("grants is empty".into());
        }
        for (field, template) in self.templates() {
            for name in super::resolve::placeholders(template)? {
                if !self.params.contains_key(name) {
                    return Err(format!("{field} uses unknown parameter '{name}'"));
                }
            }
            if !template.starts_with("https://") {
                return Err(format!("{field} is not https"));
            }
        }
        for (name, param) in &self.params {
            if let Some(pattern) = &param.pattern {
                regex_lite::Regex::new(pattern).map_err(|e| format!("params.{name}.pattern: {e}"))?;
                if !pattern.starts_with('^') || !pattern.ends_with('$') {
                    return Err(format!("params.{name}.pattern must be anchored"));
                }
            }
            for value in param.render.keys() {
                if !param.allowed.as_ref().is_some_and(|a| a.contains(value)) {
                    return Err(format!("params.{name}.render names '{value}', which is not allowed"));
                }
            }
            let candidates = param.allowed.iter().flatten().chain(param.default.iter());
            for value in candidates {
                param.accept(name, value).map_err(|e| e.to_string())?;
            }
        }
        for field in self.capture.callback.iter().chain(&self.capture.token) {
            let leaf = field.path().rsplit('.').next().unwrap_or_default();
            if is_sensitive_key(field.stored_as()) || is_sensitive_key(leaf) {
                return Err(format!("capture '{}' looks like a secret", field.stored_as()));
            }
        }
        Ok(())
    }

    pub(super) fn templates(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("authorize_url", Some(&self.authorize_url)),
            ("token_url", Some(&self.token_url)),
            ("revoke_url", self.revoke_url.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, t)| t.map(|t| (field, t.as_str())))
    }
}
