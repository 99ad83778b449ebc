//! What of a provider's token response keyledger keeps besides the tokens (DESIGN §6.13,
//! §6.14): the fields a client's `capture` list names, by dotted path (`team.id`). The list is
//! an allow-list: nothing it does not name reaches an event, a projection or a log, and a
//! path whose field name (its last segment, as the request log judges `user[password]`) looks
//! like a secret (the redaction rule, §6.7) can never be on it. Only scalars are captured, so
//! naming an object (`bot`) cannot bring the secrets inside it along.
//!
//! A rule about provider data, below both `clients` (which validates a client's capture
//! list) and `oauth` (which applies it to a token answer): it imports neither.

use serde_json::{Map, Value};

use crate::{
    events::{self, RecordedEvent},
    request_log::redact::is_sensitive_key,
};

/// Longest accepted capture path, in characters.
const MAX_PATH: usize = 200;
/// Deepest accepted capture path, in segments.
const MAX_SEGMENTS: usize = 8;

/// One dotted path into a provider answer (`api_domain`, `team.id`, `authed_user.id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CapturePath {
    segments: Vec<String>,
    /// The `provider_data` key, when it is not the dotted path (Slack's `authed_user.id`
    /// kept as `user_id`).
    key: Option<String>,
}

/// Why a capture path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// Empty, too long, too deep, an empty segment or a control character.
    #[error("a capture path is 1 to 200 characters of dot-separated, non-empty names")]
    Malformed,
    /// A segment whose name looks like a credential.
    #[error("'{0}' looks like a secret and cannot be captured")]
    Sensitive(String),
}

impl CapturePath {
    /// Parses `team.id`; refuses a segment the request-log redaction would treat as secret.
    pub fn parse(path: &str) -> Result<Self, CaptureError> {
        if path.is_empty() || path.chars().count() > MAX_PATH || path.chars().any(char::is_control) {
            return Err(CaptureError::Malformed);
        }
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_SEGMENTS || segments.iter().any(|s| s.trim().is_empty()) {
            return Err(CaptureError::Malformed);
        }
        // Slack's `authed_user.id` is an id under a parent whose name merely contains "auth";
        // the field's own name is what says whether it holds a credential.
        if let Some(last) = segments.last()
            && is_sensitive_key(last)
        {
            return Err(CaptureError::Sensitive(last.clone()));
        }
        Ok(Self { segments, key: None })
    }

    /// [`CapturePath::parse`], kept under `key` instead of the dotted path; a key that looks
    /// like a secret is refused like a path would be.
    pub fn parse_as(path: &str, key: &str) -> Result<Self, CaptureError> {
        let mut parsed = Self::parse(path)?;
        if key == path {
            return Ok(parsed);
        }
        if key.is_empty() || key.chars().count() > MAX_PATH || key.chars().any(char::is_control) {
            return Err(CaptureError::Malformed);
        }
        if is_sensitive_key(key) {
            return Err(CaptureError::Sensitive(key.to_owned()));
        }
        parsed.key = Some(key.to_owned());
        Ok(parsed)
    }

    /// The `provider_data` key the value is stored under.
    pub fn key(&self) -> String {
        self.key.clone().unwrap_or_else(|| self.as_dotted())
    }

    /// The dotted form.
    pub fn as_dotted(&self) -> String {
        self.segments.join(".")
    }

    fn lookup<'a>(&self, root: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        rest.iter().try_fold(root.get(first)?, |v, seg| v.as_object()?.get(seg))
    }
}

impl std::fmt::Display for CapturePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_dotted())
    }
}

impl serde::Serialize for CapturePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_dotted())
    }
}

impl<'de> serde::Deserialize<'de> for CapturePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Only the scalar values `capture` names, keyed by their dotted path (`{"team.id": "T1"}`),
/// so the result is flat and cannot smuggle a nested object. Objects and arrays are never
/// captured whole: a named path must end at a string, number or boolean.
pub fn select(answer: &Map<String, Value>, capture: &[CapturePath]) -> Map<String, Value> {
    let mut out = Map::new();
    for path in capture {
        if let Some(v) = path.lookup(answer)
            && matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
        {
            out.insert(path.key(), v.clone());
        }
    }
    out
}

/// [`select`] over a stored `provider_data` value (already flat when written by this code;
/// older events may hold a whole provider answer). A flat key equal to a captured path is
/// kept as well, so what [`select`] wrote reads back unchanged.
pub fn select_stored(stored: &Value, capture: &[CapturePath]) -> Value {
    let Value::Object(map) = stored else { return Value::Object(Map::new()) };
    let mut out = select(map, capture);
    for path in capture {
        let key = path.key();
        if let Some(v) = map.get(&key)
            && matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
        {
            out.insert(key, v.clone());
        }
    }
    Value::Object(out)
}

/// An event's data as a reader may see it: decoded into the stream's event enum and encoded
/// again (so the enum is the allow-list of fields and an old event can hold no more than a
/// new one), without `secret_fields`, and with any `provider_data` cut to what `capture`
/// names. Data the enum cannot read is shown as `{}`, never raw.
pub fn public_event_data<E>(event: &RecordedEvent, secret_fields: &[&str], capture: &[CapturePath]) -> Value
where
    E: serde::de::DeserializeOwned + serde::Serialize,
{
    let Some(Value::Object(mut map)) = event.decode::<E>().ok().and_then(|e| events::encode(&e).ok()).map(|(_, d)| d)
    else {
        tracing::warn!(position = event.position, event_type = %event.event_type, "event data unreadable; hidden");
        return Value::Object(Map::new());
    };
    map.retain(|k, _| !secret_fields.contains(&k.as_str()));
    if let Some(data) = map.get_mut("provider_data") {
        *data = select_stored(data, capture);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(p: &[&str]) -> Vec<CapturePath> {
        p.iter().map(|p| CapturePath::parse(p).unwrap()).collect()
    }

    #[test]
    fn secret_looking_paths_are_refused() {
        for bad in [
            "access_token",
            "authed_user.access_token",
            "bot.bot_access_token",
            "client_secret",
            "id_token",
            "refresh_token",
            "password",
            "team.api_key",
            "key",
            "session_id",
            "x.private_key",
        ] {
            assert!(matches!(CapturePath::parse(bad), Err(CaptureError::Sensitive(_))), "{bad}");
        }
        for bad in ["", ".", "team.", ".id", "a..b", "a\u{0}b", &"x".repeat(201), "a.b.c.d.e.f.g.h.i"] {
            assert_eq!(CapturePath::parse(bad), Err(CaptureError::Malformed), "{bad:?}");
        }
        for ok in ["api_domain", "team.id", "authed_user.id", "instance_url", "accounts-server"] {
            assert_eq!(CapturePath::parse(ok).unwrap().as_dotted(), ok);
        }
    }

    #[test]
    fn only_named_scalars_are_selected() {
        let answer = json!({"ok": true, "team": {"id": "T1", "name": "Acme"}, "api_domain": "https://x",
            "authed_user": {"id": "U1", "access_token": "xoxp-1"}, "bot": {"bot_access_token": "xoxb-1"},
            "nested": {"a": 1}});
        let Value::Object(map) = answer else { unreachable!() };
        let got = select(&map, &paths(&["team.id", "authed_user.id", "api_domain", "nested", "missing.x"]));
        assert_eq!(Value::Object(got), json!({"team.id": "T1", "authed_user.id": "U1", "api_domain": "https://x"}));
        assert!(select(&map, &[]).is_empty());
    }

    #[test]
    fn a_renamed_path_is_stored_under_its_key_and_a_secret_key_is_refused() {
        let answer = json!({"authed_user": {"id": "U1", "access_token": "xoxp-1"}});
        let Value::Object(map) = answer else { unreachable!() };
        let renamed = CapturePath::parse_as("authed_user.id", "user_id").unwrap();
        assert_eq!(Value::Object(select(&map, std::slice::from_ref(&renamed))), json!({"user_id": "U1"}));
        assert_eq!(select_stored(&json!({"user_id": "U1", "x": 1}), &[renamed]), json!({"user_id": "U1"}));
        assert!(matches!(CapturePath::parse_as("team.id", "access_token"), Err(CaptureError::Sensitive(_))));
        assert_eq!(CapturePath::parse_as("team.id", "team.id").unwrap(), CapturePath::parse("team.id").unwrap());
    }

    #[test]
    fn stored_values_are_filtered_the_same_way() {
        let old = json!({"authed_user": {"access_token": "xoxp-1", "id": "U1"}, "team.id": "T1", "x": "y"});
        assert_eq!(
            select_stored(&old, &paths(&["authed_user.id", "team.id"])),
            json!({"authed_user.id": "U1", "team.id": "T1"})
        );
        assert_eq!(select_stored(&old, &[]), json!({}));
        assert_eq!(select_stored(&json!("text"), &[]), json!({}));
    }
}
