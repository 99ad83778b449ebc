//! Rendering a preset's URL templates with caller-given parameters. Parameter values end up
//! in host names, so each is checked against the preset's closed list or pattern and against
//! a host-safe character set before it is substituted; what renders must parse as an https
//! URL on a host built only from the template and checked values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::PresetError;
use super::model::{AuthMethod, Capture, ErrorRules, Grant, Param, Preset, ScopeSeparator, TokenRequest};

/// A preset with its parameters applied: every field a client needs, ready to be merged with
/// the caller's explicit overrides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedClient {
    /// The preset's id.
    pub preset: String,
    /// Every parameter with its effective value (defaults filled in), as the client remembers it.
    pub preset_params: BTreeMap<String, String>,
    /// Rendered authorization endpoint.
    pub authorize_url: String,
    /// Rendered token endpoint.
    pub token_url: String,
    /// Rendered revocation endpoint, if any.
    pub revoke_url: Option<String>,
    /// Client authentication method.
    pub auth_method: AuthMethod,
    /// Send a PKCE challenge.
    pub pkce: bool,
    /// Scope separator.
    pub scope_separator: ScopeSeparator,
    /// Scopes to use when the caller names none.
    pub default_scopes: Vec<String>,
    /// Scopes always added.
    pub required_scopes: Vec<String>,
    /// Extra authorization URL parameters.
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Token request shape.
    pub token_request: TokenRequest,
    /// Error rules.
    pub errors: ErrorRules,
    /// Capture lists.
    pub capture: Capture,
    /// Lifetime when `expires_in` is missing.
    pub assumed_lifetime_secs: Option<u64>,
    /// Provider-specific expiry buffer.
    pub expiry_buffer_secs: Option<u64>,
    /// Supported grants.
    pub grants: Vec<Grant>,
}

impl ResolvedClient {
    /// `requested` (or the preset's defaults when empty) plus every required scope, in order,
    /// without duplicates.
    pub fn scopes(&self, requested: &[String]) -> Vec<String> {
        let base = if requested.is_empty() { &self.default_scopes } else { requested };
        let mut out: Vec<String> = Vec::with_capacity(base.len() + self.required_scopes.len());
        for scope in base.iter().chain(&self.required_scopes) {
            if !out.contains(scope) {
                out.push(scope.clone());
            }
        }
        out
    }
}

impl Param {
    /// Checks `value` for the parameter `name`. The reason never repeats the value.
    pub(super) fn accept(&self, name: &str, value: &str) -> Result<(), PresetError> {
        let invalid = |reason: &str| PresetError::InvalidParam { name: name.to_owned(), reason: reason.to_owned() };
        if value.is_empty() || value.len() > 100 {
            return Err(invalid("must be 1 to 100 characters"));
        }
        // Values become part of a host or path: letters, digits, '.', '-' only, no leading or
        // trailing dot, no empty label. This holds even if a file's pattern were too loose.
        let host_safe = value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !value.starts_with(['.', '-'])
            && !value.ends_with(['.', '-'])
            && !value.contains("..");
        if !host_safe {
            return Err(invalid("may hold only letters, digits, '.' and '-'"));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.iter().any(|a| a == value)
        {
            return Err(invalid(&format!("must be one of: {}", allowed.join(", "))));
        }
        if let Some(pattern) = &self.pattern {
            // Patterns are checked when the file loads; an invalid one refuses every value.
            let matches = regex_lite::Regex::new(pattern).is_ok_and(|re| re.is_match(value));
            if !matches {
                return Err(invalid(&format!("must match {pattern}")));
            }
        }
        Ok(())
    }
}

impl Preset {
    /// Renders the URL templates with `params` (caller values; defaults fill the rest).
    /// An unknown parameter, a missing required one, or a value outside the parameter's
    /// list or pattern is an error naming the parameter.
    pub fn resolve(&self, params: &BTreeMap<String, String>) -> Result<ResolvedClient, PresetError> {
        if let Some(unknown) = params.keys().find(|k| !self.params.contains_key(*k)) {
            return Err(PresetError::UnknownParam(unknown.clone()));
        }
        let mut effective = BTreeMap::new();
        let mut rendered = BTreeMap::new();
        for (name, param) in &self.params {
            let value = params
                .get(name)
                .or(param.default.as_ref())
                .ok_or_else(|| PresetError::InvalidParam { name: name.clone(), reason: "is required".into() })?;
            param.accept(name, value)?;
            let text = param.render.get(value).unwrap_or(value);
            rendered.insert(name.as_str(), text.clone());
            effective.insert(name.clone(), value.clone());
        }
        let render = |template: &str| -> Result<String, PresetError> {
            let mut out = template.to_owned();
            for (name, text) in &rendered {
                out = out.replace(&format!("{{{name}}}"), text);
            }
            let parsed = url::Url::parse(&out).map_err(|_| PresetError::InvalidParam {
                name: self.params.keys().next().cloned().unwrap_or_default(),
                reason: "does not form a valid URL".into(),
            })?;
            if parsed.scheme() != "https" {
                return Err(PresetError::InvalidParam {
                    name: self.params.keys().next().cloned().unwrap_or_default(),
                    reason: "does not form an https URL".into(),
                });
            }
            Ok(out)
        };
        Ok(ResolvedClient {
            preset: self.id.clone(),
            preset_params: effective,
            authorize_url: render(&self.authorize_url)?,
            token_url: render(&self.token_url)?,
            revoke_url: self.revoke_url.as_deref().map(render).transpose()?,
            auth_method: self.auth_method,
            pkce: self.pkce,
            scope_separator: self.scope_separator,
            default_scopes: self.default_scopes.clone(),
            required_scopes: self.required_scopes.clone(),
            extra_authorize_params: self.extra_authorize_params.clone(),
            token_request: self.token_request.clone(),
            errors: self.errors.clone(),
            capture: self.capture.clone(),
            assumed_lifetime_secs: self.assumed_lifetime_secs,
            expiry_buffer_secs: self.expiry_buffer_secs,
            grants: self.grants.clone(),
        })
    }
}

/// The `{name}` placeholders of a template, in order. An unbalanced brace is an error.
pub(super) fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| format!("unclosed '{{' in {template}"))?;
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad placeholder in {template}"));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray '}}' in {template}"));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::super::{PresetError, get};
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn zoho_region_renders_the_data_centres_accounts_server() {
        let zoho = get("zoho").unwrap();
        let default = zoho.resolve(&BTreeMap::new()).unwrap();
        assert_eq!(default.token_url, "https://accounts.zoho.com/oauth/v2/token");
        assert_eq!(default.preset_params, params(&[("region", "com")]));
        let eu = zoho.resolve(&params(&[("region", "eu")])).unwrap();
        assert_eq!(eu.authorize_url, "https://accounts.zoho.eu/oauth/v2/auth");
        assert_eq!(eu.revoke_url.as_deref(), Some("https://accounts.zoho.eu/oauth/v2/token/revoke"));
        let ca = zoho.resolve(&params(&[("region", "ca")])).unwrap();
        assert_eq!(ca.token_url, "https://accounts.zohocloud.ca/oauth/v2/token");
        let au = zoho.resolve(&params(&[("region", "com.au")])).unwrap();
        assert_eq!(au.token_url, "https://accounts.zoho.com.au/oauth/v2/token");
    }

    #[test]
    fn a_value_outside_the_allowed_list_is_named_without_echoing_it() {
        let err = get("zoho").unwrap().resolve(&params(&[("region", "mars")])).unwrap_err();
        let PresetError::InvalidParam { name, reason } = &err else { panic!("{err:?}") };
        assert_eq!(name, "region");
        assert!(!reason.contains("mars"), "{reason}");
        assert!(!err.to_string().contains("mars"));
    }

    #[test]
    fn an_unknown_parameter_is_named() {
        let err = get("zoho").unwrap().resolve(&params(&[("region", "eu"), ("tenant", "x")])).unwrap_err();
        assert_eq!(err, PresetError::UnknownParam("tenant".into()));
        let err = get("google").unwrap().resolve(&params(&[("region", "eu")])).unwrap_err();
        assert_eq!(err, PresetError::UnknownParam("region".into()));
    }

    #[test]
    fn microsoft_tenant_defaults_to_common_and_accepts_ids_and_domains() {
        let ms = get("microsoft").unwrap();
        let common = ms.resolve(&BTreeMap::new()).unwrap();
        assert_eq!(common.token_url, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
        let id = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let by_id = ms.resolve(&params(&[("tenant", id)])).unwrap();
        assert_eq!(by_id.authorize_url, format!("https://login.microsoftonline.com/{id}/oauth2/v2.0/authorize"));
        assert!(ms.resolve(&params(&[("tenant", "contoso.onmicrosoft.com")])).is_ok());
        for bad in ["evil/../x", "a b", "contoso", "x?y=1", "common#"] {
            let err = ms.resolve(&params(&[("tenant", bad)])).unwrap_err();
            assert!(matches!(&err, PresetError::InvalidParam { name, .. } if name == "tenant"), "{bad}: {err:?}");
        }
    }

    #[test]
    fn salesforce_host_is_login_or_test_only() {
        let sf = get("salesforce").unwrap();
        assert_eq!(
            sf.resolve(&BTreeMap::new()).unwrap().token_url,
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            sf.resolve(&params(&[("host", "test")])).unwrap().authorize_url,
            "https://test.salesforce.com/services/oauth2/authorize"
        );
        assert!(sf.resolve(&params(&[("host", "evil.example.com/x")])).is_err());
        assert!(sf.resolve(&params(&[("host", "mydomain.my")])).is_err());
    }

    #[test]
    fn shopify_shop_is_required_and_must_be_a_single_host_label() {
        let shopify = get("shopify").unwrap();
        let err = shopify.resolve(&BTreeMap::new()).unwrap_err();
        assert_eq!(err, PresetError::InvalidParam { name: "shop".into(), reason: "is required".into() });
        let ok = shopify.resolve(&params(&[("shop", "acme-store")])).unwrap();
        assert_eq!(ok.token_url, "https://acme-store.myshopify.com/admin/oauth/access_token");
        for bad in ["evil.com#", "evil.com", "-x", "Acme", "a_b", "a/b", "x@evil.com", ""] {
            let err = shopify.resolve(&params(&[("shop", bad)])).unwrap_err();
            assert!(matches!(&err, PresetError::InvalidParam { name, .. } if name == "shop"), "{bad}: {err:?}");
        }
    }

    #[test]
    fn required_scopes_are_added_once_and_defaults_fill_an_empty_request() {
        let ms = get("microsoft").unwrap().resolve(&BTreeMap::new()).unwrap();
        let requested = vec!["User.Read".to_owned(), "offline_access".to_owned()];
        assert_eq!(ms.scopes(&requested), ["User.Read", "offline_access"]);
        assert_eq!(ms.scopes(&["User.Read".to_owned()]), ["User.Read", "offline_access"]);
        let xero = get("xero").unwrap().resolve(&BTreeMap::new()).unwrap();
        assert_eq!(xero.scopes(&[]), ["openid", "profile", "email", "offline_access"]);
        assert_eq!(ScopeSeparator::Comma.join(&["a".into(), "b".into()]), "a,b");
        assert_eq!(ScopeSeparator::Space.join(&["a".into(), "b".into()]), "a b");
    }

    #[test]
    fn placeholders_are_parsed_and_malformed_templates_refused() {
        assert_eq!(placeholders("https://{shop}.x/{a_b}").unwrap(), ["shop", "a_b"]);
        assert!(placeholders("https://{shop.x").is_err());
        assert!(placeholders("https://shop}.x").is_err());
        assert!(placeholders("https://{}.x").is_err());
    }

    #[test]
    fn a_file_that_breaks_a_rule_is_refused_with_the_reason() {
        let good = include_str!("../../presets/shopify.json");
        let cases = [
            (good.replace("\"grants\"", "\"grantz\""), "unknown field"),
            (
                good.replace("{shop}.myshopify.com/admin/oauth/authorize", "{store}.myshopify.com"),
                "unknown parameter 'store'",
            ),
            (good.replace("\"callback\": [\"shop\"]", "\"callback\": [\"session_token\"]"), "looks like a secret"),
            (
                good.replace("https://{shop}.myshopify.com/admin/oauth/access_token", "http://{shop}.myshopify.com/t"),
                "not https",
            ),
            (good.replace("^[a-z0-9][a-z0-9-]*$", "[a-z]+"), "anchored"),
        ];
        for (text, expected) in cases {
            let err = Preset::from_json("shopify", &text).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let zoho = include_str!("../../presets/zoho.json").replace("\"default\": \"com\"", "\"default\": \"mars\"");
        assert!(Preset::from_json("zoho", &zoho).unwrap_err().contains("region"));
    }
}
