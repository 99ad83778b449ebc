//! First-deploy provisioning done by `migrate`: turning the key ring placeholder the template
//! creates into a real key ring, before any function needs it.
//!
//! CloudFormation can generate a random string but not the key ring's JSON of base64 keys,
//! so the template stores [`KEY_RING_PLACEHOLDER`] and `migrate` replaces it once. This
//! module must never overwrite a real key ring: only the exact placeholder is replaced, and
//! not when the previous version of the secret holds a ring (somebody reset the secret, and
//! generating a new ring would make every stored token unreadable).

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::{
    context::Context,
    crypto::KeyRing,
    secrets::{SecretSource, SecretsError},
};

/// The value the template gives the key ring secret; `migrate` generates key `k1` for it.
pub const KEY_RING_PLACEHOLDER: &str = r#"{"keyledger": "generate-on-first-deploy"}"#;

/// What happened to the key ring.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyRingState {
    /// It was a valid key ring already.
    Present,
    /// The placeholder was replaced by a new ring.
    Generated,
    /// The key ring is not a Secrets Manager secret (local configuration): nothing to do.
    NotManaged,
}

/// Provisioning failed; the message names the secret, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Secrets Manager failed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The secret holds something that is neither a key ring nor the placeholder.
    #[error("ENCRYPTION_KEYS_SECRET_ID '{id}': {reason}")]
    Refused {
        /// The secret id.
        id: String,
        /// Why nothing was written.
        reason: String,
    },
}

fn is_placeholder(raw: &SecretString) -> bool {
    let parsed: Option<serde_json::Value> = serde_json::from_str(raw.expose_secret()).ok();
    parsed == serde_json::from_str(KEY_RING_PLACEHOLDER).ok()
}

/// Makes sure the key ring secret holds a key ring, generating one in place of the placeholder.
pub async fn ensure_key_ring(ctx: &Context) -> Result<KeyRingState, ProvisionError> {
    let Some(SecretSource::SecretsManager(id)) = &ctx.config().encryption_keys else {
        return Ok(KeyRingState::NotManaged);
    };
    let refused = |reason: &str| ProvisionError::Refused { id: id.clone(), reason: reason.to_owned() };
    let secrets = ctx.secrets();
    let current = secrets.fetch(&SecretSource::SecretsManager(id.clone())).await?;
    if KeyRing::parse(&current).is_ok() {
        return Ok(KeyRingState::Present);
    }
    if !is_placeholder(&current) {
        return Err(refused("holds neither a key ring nor the template's placeholder; nothing was changed"));
    }
    if let Some(previous) = secrets.fetch_stage(id, "AWSPREVIOUS").await?
        && KeyRing::parse(&previous).is_ok()
    {
        return Err(refused(
            "was reset to the placeholder but its AWSPREVIOUS version holds a key ring; restore that version \
             (aws secretsmanager update-secret-version-stage) instead of generating new keys",
        ));
    }
    secrets.put(id, &KeyRing::generate_json("k1")).await?;
    tracing::info!(secret_id = %id, "generated the encryption key ring");
    Ok(KeyRingState::Generated)
}
