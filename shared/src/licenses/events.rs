//! The events of a `license-<uuid>` stream (DESIGN §4.2): the only way a license changes.
//! A key appears in them only as its lookup hash and its ciphertext, never in plain text.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::DeactivationReason;

/// Events of a `license-<uuid>` stream. The key appears only as hash and ciphertext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum LicenseEvent {
    /// A license was issued (or imported from the old license service).
    LicenseIssued {
        /// License id.
        id: Uuid,
        /// Hex HMAC-SHA-256 of the key under the pepper.
        key_hash: String,
        /// The key, encrypted for `license-<id>`/`license_key`.
        license_key: String,
        /// Holder.
        email: String,
        /// Installations that may be active at once.
        max_installations: i32,
        /// Days after which an unseen installation gives up its slot.
        max_inactive_days: Option<i32>,
        /// End of validity.
        expires_at: Option<DateTime<Utc>>,
        /// Operator's free-form data.
        metadata: Value,
        /// What the license grants (absent in events written before entitlements).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        entitlements: Vec<String>,
        /// When the license came to be (the old service's date for imports).
        created_at: DateTime<Utc>,
        /// `api` or `import`.
        source: String,
    },
    /// Some of a license's terms changed; absent fields are unchanged, `null` clears.
    LicenseUpdated {
        /// License id.
        id: Uuid,
        /// New holder.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// New limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_installations: Option<i32>,
        /// New inactivity limit, or `null` for none.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
        max_inactive_days: Option<Option<i32>>,
        /// New end of validity, or `null` for none.
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "double_option")]
        expires_at: Option<Option<DateTime<Utc>>>,
        /// New metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
        /// New entitlements (replace the old).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entitlements: Option<Vec<String>>,
    },
    /// Paused by an operator.
    LicenseSuspended {
        /// License id.
        id: Uuid,
    },
    /// A suspension ended.
    LicenseReinstated {
        /// License id.
        id: Uuid,
    },
    /// Revoked for good (the license stays visible).
    LicenseRevoked {
        /// License id.
        id: Uuid,
    },
    /// An installation took a slot.
    InstallationActivated {
        /// License id.
        id: Uuid,
        /// The product's installation id.
        installation_id: String,
        /// Optional human name.
        name: Option<String>,
        /// When it was activated.
        activated_at: DateTime<Utc>,
    },
    /// An installation gave up its slot.
    InstallationDeactivated {
        /// License id.
        id: Uuid,
        /// The product's installation id.
        installation_id: String,
        /// Why.
        reason: DeactivationReason,
        /// When it had last been seen (the evidence for `inactive`).
        last_seen_at: Option<DateTime<Utc>>,
    },
    /// An installation took a signed offline license file (DESIGN §6.15).
    LicenseCheckedOut {
        /// License id.
        id: Uuid,
        /// The product's installation id.
        installation_id: String,
        /// The file's `iat`.
        issued_at: DateTime<Utc>,
        /// The file's `exp`.
        expires_at: DateTime<Utc>,
        /// The signing key's id (`kid`).
        key_id: String,
    },
}

pub(crate) fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The stream of license `id`.
pub fn stream(id: Uuid) -> String {
    format!("license-{id}")
}

/// The field a license key's ciphertext is bound to (with the stream id).
pub(crate) const KEY_FIELD: &str = "license_key";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_events_tell_absent_from_null() {
        let id = Uuid::nil();
        let cleared = LicenseEvent::LicenseUpdated {
            id,
            email: None,
            max_installations: None,
            max_inactive_days: None,
            expires_at: Some(None),
            metadata: None,
            entitlements: None,
        };
        let json = serde_json::to_value(&cleared).unwrap();
        assert_eq!(json, serde_json::json!({"type": "LicenseUpdated", "id": id, "expires_at": null}));
        assert_eq!(serde_json::from_value::<LicenseEvent>(json).unwrap(), cleared);
    }
}
