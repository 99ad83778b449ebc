//! Filling a client's settings from a provider preset (DESIGN §6.14): the preset renders its
//! URL templates with `preset_params` and supplies every field the request leaves out; a
//! field given explicitly wins. Errors name the unknown preset or parameter and never repeat
//! a refused value.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Error,
    model::{AuthMethod, ClientSettings, NewClient, Quirks},
};
use crate::providers::{self, PresetError, ResolvedClient};

/// `text` when it is short and plain enough to repeat in an error, else a placeholder.
fn nameable(text: &str) -> &str {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain { text } else { "(unprintable)" }
}

/// The preset `id` rendered with `params`; errors name the preset or the parameter.
pub(super) fn resolve(id: &str, params: &BTreeMap<String, String>) -> Result<ResolvedClient, Error> {
    let preset = providers::get(id).map_err(|_| {
        Error::invalid("preset", format!("no provider preset '{}'; GET /v1/providers lists them", nameable(id)))
    })?;
    preset.resolve(params).map_err(|e| match e {
        PresetError::UnknownPreset(_) => Error::invalid("preset", "no such provider preset"),
        PresetError::UnknownParam(name) => {
            let name = nameable(&name);
            Error::invalid(format!("preset_params.{name}"), format!("preset '{}' has no parameter '{name}'", preset.id))
        }
        PresetError::InvalidParam { name, reason } => {
            Error::invalid(format!("preset_params.{name}"), format!("preset_params.{name} {reason}"))
        }
    })
}

/// The quirks a resolved preset implies.
pub(super) fn quirks_of(r: &ResolvedClient) -> Quirks {
    Quirks {
        scope_separator: r.scope_separator,
        token_request: r.token_request.clone(),
        errors: r.errors.clone(),
        assumed_lifetime_secs: r.assumed_lifetime_secs,
        expiry_buffer_secs: r.expiry_buffer_secs,
    }
}

fn auth_method_of(r: &ResolvedClient) -> AuthMethod {
    match r.auth_method {
        providers::AuthMethod::ClientSecretPost => AuthMethod::ClientSecretPost,
        providers::AuthMethod::ClientSecretBasic => AuthMethod::ClientSecretBasic,
    }
}

/// The settings a `POST /v1/clients` body describes, the preset (if any) filling what the
/// body leaves out. Not yet validated.
pub(super) fn new_settings(new: &NewClient) -> Result<ClientSettings, Error> {
    let resolved = match &new.preset {
        Some(id) => Some(resolve(id, &new.preset_params.clone().unwrap_or_default())?),
        None if new.preset_params.is_some() => {
            return Err(Error::invalid("preset_params", "preset_params needs a preset"));
        }
        None => None,
    };
    settings_from(new, resolved.as_ref())
}

/// The settings of `new` with the resolved preset `r` (if any) filling what `new` leaves out.
fn settings_from(new: &NewClient, r: Option<&ResolvedClient>) -> Result<ClientSettings, Error> {
    let required = |field: &str, value: Option<String>| {
        value.ok_or_else(|| Error::invalid(field, format!("{field} is required (or a preset that sets it)")))
    };
    let requested = new.scopes.clone().unwrap_or_default();
    Ok(ClientSettings {
        name: required("name", new.name.clone().or_else(|| r.map(|r| r.preset.clone())))?,
        authorize_url: required(
            "authorize_url",
            new.authorize_url.clone().or_else(|| r.map(|r| r.authorize_url.clone())),
        )?,
        token_url: required("token_url", new.token_url.clone().or_else(|| r.map(|r| r.token_url.clone())))?,
        revoke_url: match &new.revoke_url {
            Some(explicit) => explicit.clone(),
            None => r.and_then(|r| r.revoke_url.clone()),
        },
        client_id: new.client_id.clone(),
        redirect_uri: new.redirect_uri.clone(),
        scopes: match r {
            Some(r) => r.scopes(&requested),
            None => requested,
        },
        auth_method: new.auth_method.or_else(|| r.map(auth_method_of)).unwrap_or_default(),
        pkce: new.pkce.or_else(|| r.map(|r| r.pkce)).unwrap_or(false),
        extra_authorize_params: new
            .extra_authorize_params
            .clone()
            .or_else(|| r.map(|r| r.extra_authorize_params.clone()))
            .unwrap_or_default(),
        metadata: new.metadata.clone().unwrap_or_else(|| Value::Object(Default::default())),
        preset: r.map(|r| r.preset.clone()),
        preset_params: r.map(|r| r.preset_params.clone()).unwrap_or_default(),
        capture: new.capture.clone().or_else(|| r.map(|r| r.capture.clone())).unwrap_or_default(),
        grants: new.grants.clone().or_else(|| r.map(|r| r.grants.clone())).unwrap_or_else(super::model::default_grants),
        quirks: new.quirks.clone().unwrap_or_else(|| r.map(quirks_of).unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::Preset;

    /// No embedded preset documents a refresh window (none of their sources says a provider
    /// refuses early refreshes), so a test-only preset, read by the same loader as the
    /// embedded files, carries one.
    fn buffered_preset() -> Preset {
        let text = include_str!("../../presets/hubspot.json")
            .replace("\"id\": \"hubspot\"", "\"id\": \"buffered\"")
            .replace("\"expiry_buffer_secs\": null", "\"expiry_buffer_secs\": 120");
        Preset::from_json("buffered", &text).unwrap()
    }

    fn new_client(extra: Value) -> NewClient {
        let mut body = json!({"preset": "buffered", "client_id": "id", "client_secret": "secret",
                              "redirect_uri": "https://api.example.com/oauth/callback"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_presets_expiry_buffer_is_the_clients_unless_the_client_names_its_own() {
        let resolved = buffered_preset().resolve(&BTreeMap::new()).unwrap();
        assert_eq!(resolved.expiry_buffer_secs, Some(120));

        let from_preset = settings_from(&new_client(json!({})), Some(&resolved)).unwrap();
        assert_eq!(from_preset.quirks.expiry_buffer_secs, Some(120));
        assert_eq!(from_preset.quirks, quirks_of(&resolved), "the other quirks come along");

        let explicit = new_client(json!({"quirks": {"expiry_buffer_secs": 60}}));
        assert_eq!(settings_from(&explicit, Some(&resolved)).unwrap().quirks.expiry_buffer_secs, Some(60));
        // Explicit quirks replace the preset's as a whole: naming none means no buffer.
        let without = new_client(json!({"quirks": {}}));
        assert_eq!(settings_from(&without, Some(&resolved)).unwrap().quirks.expiry_buffer_secs, None);
    }
}
