//! Provider presets (DESIGN §6.14): what keyledger knows about real OAuth providers, so an
//! operator types a client id and secret instead of a page of URLs.
//!
//! Owns the embedded data files (`shared/presets/<id>.json`, one per provider, each naming the
//! documentation page behind every fact), their typed form [`Preset`], and the rendering of a
//! preset's URL templates with validated parameters ([`Preset::resolve`]). It never performs
//! I/O and never decides HTTP statuses; wiring a resolved preset into a client is the clients
//! domain's job.

mod model;
mod resolve;

use std::sync::LazyLock;

pub use model::{
    AuthMethod, BodyFormat, Capture, CaptureField, ErrorRules, Grant, Param, Preset, ScopeSeparator, Summary,
    SummaryParam, TokenRequest,
};
pub use resolve::ResolvedClient;

/// Why a preset could not be found or its parameters could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PresetError {
    /// No preset has this id.
    #[error("no provider preset '{0}'")]
    UnknownPreset(String),
    /// The preset has no parameter of this name.
    #[error("preset has no parameter '{0}'")]
    UnknownParam(String),
    /// The value given for (or defaulted to) a parameter is not acceptable; `reason` never
    /// contains the value.
    #[error("parameter '{name}' {reason}")]
    InvalidParam { name: String, reason: String },
}

/// The embedded files. Adding a provider is adding a file and a line here; the unit tests
/// load and check every entry.
const FILES: [(&str, &str); 12] = [
    ("atlassian", include_str!("../../presets/atlassian.json")),
    ("github", include_str!("../../presets/github.json")),
    ("google", include_str!("../../presets/google.json")),
    ("hubspot", include_str!("../../presets/hubspot.json")),
    ("microsoft", include_str!("../../presets/microsoft.json")),
    ("notion", include_str!("../../presets/notion.json")),
    ("quickbooks", include_str!("../../presets/quickbooks.json")),
    ("salesforce", include_str!("../../presets/salesforce.json")),
    ("shopify", include_str!("../../presets/shopify.json")),
    ("slack", include_str!("../../presets/slack.json")),
    ("xero", include_str!("../../presets/xero.json")),
    ("zoho", include_str!("../../presets/zoho.json")),
];

static PRESETS: LazyLock<Vec<Preset>> = LazyLock::new(|| {
    // The files are compiled in; `every_embedded_preset_loads_and_validates` proves each one
    // parses and passes `Preset::check`, so a failure here cannot reach a deployed binary.
    FILES
        .iter()
        .map(|(file, text)| {
            Preset::from_json(file, text).unwrap_or_else(|e| panic!("embedded preset {file}.json is invalid: {e}"))
        })
        .collect()
});

/// Every preset, sorted by id.
pub fn list() -> &'static [Preset] {
    &PRESETS
}

/// The preset with this id.
pub fn get(id: &str) -> Result<&'static Preset, PresetError> {
    PRESETS.iter().find(|p| p.id == id).ok_or_else(|| PresetError::UnknownPreset(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_log::redact::is_sensitive_key;
    use std::collections::BTreeMap;

    const REQUIRED: [&str; 12] = [
        "zoho",
        "google",
        "microsoft",
        "salesforce",
        "hubspot",
        "slack",
        "xero",
        "quickbooks",
        "github",
        "atlassian",
        "notion",
        "shopify",
    ];

    fn sample_params(preset: &Preset) -> BTreeMap<String, String> {
        // Shopify's shop has no default; every other parameter renders with its default.
        preset
            .params
            .iter()
            .filter(|(_, p)| p.default.is_none())
            .map(|(name, _)| (name.clone(), "acme-store".to_owned()))
            .collect()
    }

    #[test]
    fn every_embedded_preset_loads_and_validates() {
        for (file, text) in FILES {
            let preset = Preset::from_json(file, text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(preset.id, file, "file name and id agree");
        }
        let ids: Vec<&str> = list().iter().map(|p| p.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "FILES is sorted by id");
        for id in REQUIRED {
            assert!(get(id).is_ok(), "preset {id} exists");
        }
    }

    #[test]
    fn every_preset_renders_https_urls_with_its_default_params() {
        for preset in list() {
            let resolved = preset.resolve(&sample_params(preset)).unwrap_or_else(|e| panic!("{}: {e}", preset.id));
            let urls = [Some(&resolved.authorize_url), Some(&resolved.token_url), resolved.revoke_url.as_ref()];
            for url in urls.into_iter().flatten() {
                let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{}: {url}: {e}", preset.id));
                assert_eq!(parsed.scheme(), "https", "{}: {url}", preset.id);
                assert!(!url.contains('{') && !url.contains('}'), "{}: {url} fully rendered", preset.id);
                assert!(parsed.host_str().is_some_and(|h| h.contains('.')), "{}: {url}", preset.id);
            }
        }
    }

    #[test]
    fn no_preset_captures_a_name_the_secret_rule_refuses() {
        for preset in list() {
            for field in preset.capture.callback.iter().chain(&preset.capture.token) {
                assert!(!is_sensitive_key(field.stored_as()), "{}: {}", preset.id, field.stored_as());
                let leaf = field.path().rsplit('.').next().unwrap_or_default();
                assert!(!is_sensitive_key(leaf), "{}: {}", preset.id, field.path());
            }
        }
    }

    #[test]
    fn every_preset_names_its_documentation_and_a_source_per_fact() {
        for preset in list() {
            assert!(!preset.docs.is_empty(), "{}", preset.id);
            assert!(preset.docs.iter().all(|d| d.starts_with("https://")), "{}", preset.id);
            assert!(!preset.sources.is_empty(), "{}", preset.id);
        }
    }

    #[test]
    fn issue_quirks_are_encoded_where_the_issue_says() {
        let zoho = get("zoho").unwrap();
        assert_eq!(zoho.scope_separator, ScopeSeparator::Comma);
        assert!(zoho.errors.in_success_body);
        assert_eq!(zoho.errors.refresh_error_map.get("invalid_code").map(String::as_str), Some("invalid_grant"));
        assert_eq!(zoho.extra_authorize_params.get("access_type").map(String::as_str), Some("offline"));
        let callback: Vec<&str> = zoho.capture.callback.iter().map(CaptureField::stored_as).collect();
        assert_eq!(callback, ["accounts-server", "location"]);
        assert_eq!(zoho.capture.token[0].stored_as(), "api_domain");
        assert!(zoho.grants.contains(&Grant::ClientCredentials));

        let github = get("github").unwrap();
        assert_eq!(github.token_request.headers.get("Accept").map(String::as_str), Some("application/json"));

        let notion = get("notion").unwrap();
        assert_eq!(notion.token_request.format, BodyFormat::Json);
        assert_eq!(notion.auth_method, AuthMethod::ClientSecretBasic);

        let salesforce = get("salesforce").unwrap();
        assert!(salesforce.assumed_lifetime_secs.is_some());
        let captured: Vec<&str> = salesforce.capture.token.iter().map(CaptureField::path).collect();
        assert_eq!(captured, ["instance_url", "id"]);
        assert!(salesforce.grants.contains(&Grant::ClientCredentials));

        let slack = get("slack").unwrap();
        let paths: Vec<&str> = slack.capture.token.iter().map(CaptureField::path).collect();
        assert!(paths.contains(&"team.id") && paths.contains(&"authed_user.id"));

        assert_eq!(get("quickbooks").unwrap().capture.callback[0].path(), "realmId");
        assert_eq!(get("shopify").unwrap().capture.callback[0].path(), "shop");
        assert!(get("microsoft").unwrap().required_scopes.contains(&"offline_access".to_owned()));
        assert!(get("microsoft").unwrap().grants.contains(&Grant::ClientCredentials));
        assert!(!get("hubspot").unwrap().grants.contains(&Grant::ClientCredentials));
        assert!(get("google").unwrap().grants == [Grant::AuthorizationCode]);
    }

    #[test]
    fn an_unknown_preset_is_named() {
        assert_eq!(get("nope").unwrap_err(), PresetError::UnknownPreset("nope".into()));
    }

    #[test]
    fn summary_has_the_providers_list_item_shape() {
        let summary = serde_json::to_value(get("zoho").unwrap().summary()).unwrap();
        assert_eq!(summary["id"], "zoho");
        assert_eq!(summary["name"], "Zoho");
        assert_eq!(summary["params"]["region"]["default"], "com");
        assert_eq!(summary["params"]["region"]["allowed"][1], "eu");
        assert_eq!(summary["grants"], serde_json::json!(["authorization_code", "client_credentials"]));
        assert!(summary["docs"].as_str().unwrap().starts_with("https://www.zoho.com/"));
        let keys: Vec<&String> = summary.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["docs", "grants", "id", "name", "params"]);
        // Shopify's shop has no default and no list: both are null, not missing.
        let shop = serde_json::to_value(get("shopify").unwrap().summary()).unwrap();
        assert_eq!(shop["params"]["shop"], serde_json::json!({"default": null, "allowed": null}));
    }

    #[test]
    fn the_whole_preset_serializes_back_to_what_was_loaded() {
        for (file, text) in FILES {
            let preset = get(file).unwrap();
            let again: Preset = serde_json::from_value(serde_json::to_value(preset).unwrap()).unwrap();
            assert_eq!(&again, preset, "{file}");
            let _ = text;
        }
    }
}
