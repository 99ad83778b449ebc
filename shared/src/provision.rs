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
    signing::SigningKeys,
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
    /// The secret holds something that is neither a ring nor the placeholder.
    #[error("{variable} '{id}': {reason}")]
    Refused {
        /// The configuration variable that names the secret.
        variable: &'static str,
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

/// A ring kept in Secrets Manager that `migrate` generates on the first deploy.
struct Ring {
    /// The `*_SECRET_ID` variable, for messages.
    variable: &'static str,
    /// True when the secret's value is a usable ring of this kind.
    is_ring: fn(&SecretString) -> bool,
    /// A new ring's JSON.
    generate: fn() -> SecretString,
}

const ENCRYPTION_RING: Ring = Ring {
    variable: "ENCRYPTION_KEYS_SECRET_ID",
    is_ring: |raw| KeyRing::parse(raw).is_ok(),
    generate: || KeyRing::generate_json("k1"),
};

const SIGNING_RING: Ring = Ring {
    variable: "LICENSE_SIGNING_KEYS_SECRET_ID",
    is_ring: |raw| SigningKeys::parse(raw).is_ok(),
    generate: || SigningKeys::generate_json("s1"),
};

/// Makes sure the key ring secret holds a key ring, generating one in place of the placeholder.
pub async fn ensure_key_ring(ctx: &Context) -> Result<KeyRingState, ProvisionError> {
    ensure(ctx, ctx.config().encryption_keys.as_ref(), &ENCRYPTION_RING).await
}

/// Makes sure the license signing-key secret (DESIGN §6.15) holds an Ed25519 ring, generating
/// one (key `s1`) in place of the placeholder. The new seed goes from `migrate` straight to
/// Secrets Manager: it is never logged or answered.
pub async fn ensure_signing_keys(ctx: &Context) -> Result<KeyRingState, ProvisionError> {
    ensure(ctx, ctx.config().license_signing_keys.as_ref(), &SIGNING_RING).await
}

async fn ensure(ctx: &Context, source: Option<&SecretSource>, ring: &Ring) -> Result<KeyRingState, ProvisionError> {
    let Some(SecretSource::SecretsManager(id)) = source else {
        return Ok(KeyRingState::NotManaged);
    };
    let refused =
        |reason: &str| ProvisionError::Refused { variable: ring.variable, id: id.clone(), reason: reason.to_owned() };
    let secrets = ctx.secrets();
    let current = secrets.fetch(&SecretSource::SecretsManager(id.clone())).await?;
    if (ring.is_ring)(&current) {
        return Ok(KeyRingState::Present);
    }
    if !is_placeholder(&current) {
        return Err(refused("holds neither a key ring nor the template's placeholder; nothing was changed"));
    }
    if let Some(previous) = secrets.fetch_stage(id, "AWSPREVIOUS").await?
        && (ring.is_ring)(&previous)
    {
        return Err(refused(
            "was reset to the placeholder but its AWSPREVIOUS version holds a key ring; restore that version \
             (aws secretsmanager update-secret-version-stage) instead of generating new keys",
        ));
    }
    secrets.put(id, &(ring.generate)()).await?;
    tracing::info!(secret_id = %id, variable = ring.variable, "generated a key ring");
    Ok(KeyRingState::Generated)
}
