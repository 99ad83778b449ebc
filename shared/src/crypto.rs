//! Encryption at rest, keyed hashes and random tokens (DESIGN §4.3).
//!
//! Owns the AES-256-GCM key ring and the format of a stored ciphertext
//! (`v1:<key id>:<base64url(nonce | ciphertext | tag)>`). Associated data binds a ciphertext
//! to its owner (stream id) and field, so a value copied to another row fails to decrypt.
//! Nothing here logs or formats a plaintext or a key: [`KeyRing`] redacts itself in `Debug`.

use std::{collections::BTreeMap, fmt};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    digest, hmac,
    rand::{SecureRandom, SystemRandom},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const FORMAT: &str = "v1";

/// Encryption or decryption failed; never carries plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key ring JSON is malformed.
    #[error("key ring: {0}")]
    KeyRing(String),
    /// The stored value is not a keyledger ciphertext.
    #[error("ciphertext is malformed")]
    Malformed,
    /// The ciphertext names a key id the ring does not hold.
    #[error("ciphertext uses unknown key id '{0}'")]
    UnknownKey(String),
    /// Wrong key, tampered value, or a value moved to another owner or field.
    #[error("ciphertext failed authentication (wrong key, tampered, or moved to another owner)")]
    Authentication,
}

/// What a ciphertext belongs to: the owning stream (or row) and the field.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// Owning stream id, e.g. `connection-branch-42`.
    pub stream: &'a str,
    /// Field name, e.g. `access_token`.
    pub field: &'a str,
}

impl<'a> Owner<'a> {
    /// The owner `stream`/`field`.
    pub fn new(stream: &'a str, field: &'a str) -> Self {
        Self { stream, field }
    }

    fn aad(&self) -> Vec<u8> {
        // Length-prefixed so that ("a|b", "c") and ("a", "b|c") never collide.
        let mut aad = Vec::with_capacity(self.stream.len() + self.field.len() + 8);
        aad.extend_from_slice(&(self.stream.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.stream.as_bytes());
        aad.extend_from_slice(self.field.as_bytes());
        aad
    }
}

#[derive(Deserialize)]
struct KeyRingJson {
    current: String,
    keys: BTreeMap<String, String>,
}

/// The AES-256-GCM key ring `{"current": "k2", "keys": {"k1": "<base64 32 bytes>", ...}}`.
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, LessSafeKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// Parses the JSON form; every key must be 32 bytes of standard base64.
    pub fn parse(json: &SecretString) -> Result<Self, CryptoError> {
        let parsed: KeyRingJson = serde_json::from_str(json.expose_secret())
            .map_err(|e| CryptoError::KeyRing(format!("not the expected JSON shape ({:?})", e.classify())))?;
        let mut keys = BTreeMap::new();
        for (id, b64) in &parsed.keys {
            if id.is_empty() || id.contains(':') {
                return Err(CryptoError::KeyRing(format!("key id '{id}' must be non-empty without ':'")));
            }
            let bytes =
                STANDARD.decode(b64.trim()).map_err(|_| CryptoError::KeyRing(format!("key '{id}' is not base64")))?;
            if bytes.len() != 32 {
                return Err(CryptoError::KeyRing(format!("key '{id}' must be 32 bytes, not {}", bytes.len())));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| CryptoError::KeyRing(format!("key '{id}' rejected")))?;
            keys.insert(id.clone(), LessSafeKey::new(key));
        }
        if !keys.contains_key(&parsed.current) {
            return Err(CryptoError::KeyRing(format!("current key '{}' is not in keys", parsed.current)));
        }
        Ok(Self { current: parsed.current, keys })
    }

    /// A fresh ring with one random key, as JSON (for `keyledger keys generate` and tests).
    pub fn generate_json(key_id: &str) -> SecretString {
        let key = random_bytes::<32>();
        SecretString::from(format!(r#"{{"current":"{key_id}","keys":{{"{key_id}":"{}"}}}}"#, STANDARD.encode(key)))
    }

    /// The id new ciphertexts are written with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Encrypts `plaintext` for `owner` under the current key.
    pub fn encrypt(&self, owner: Owner<'_>, plaintext: &str) -> String {
        let key = &self.keys[&self.current];
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plaintext.as_bytes().to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(owner.aad()), &mut buf)
            .expect("AES-GCM sealing cannot fail for in-memory buffers below 64 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        format!("{FORMAT}:{}:{}", self.current, URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value written by [`encrypt`](Self::encrypt) for the same `owner`.
    pub fn decrypt(&self, owner: Owner<'_>, stored: &str) -> Result<SecretString, CryptoError> {
        let mut parts = stored.splitn(3, ':');
        let (Some(FORMAT), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let key = self.keys.get(key_id).ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Malformed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).map_err(|_| CryptoError::Malformed)?;
        let plain = key
            .open_within(nonce, Aad::from(owner.aad()), &mut bytes, NONCE_LEN..)
            .map_err(|_| CryptoError::Authentication)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// The key id a stored ciphertext was written with, if it is one.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        let mut parts = stored.splitn(3, ':');
        (parts.next() == Some(FORMAT)).then(|| parts.next()).flatten()
    }
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).expect("the system random generator is available");
    out
}

/// A URL-safe random token of `N` bytes of entropy.
pub fn random_token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA-256 of `data` under `key` (license-key lookup, DESIGN §4.3).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Equality of two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::parse(&KeyRing::generate_json("k1")).unwrap()
    }

    #[test]
    fn round_trip() {
        let ring = ring();
        let owner = Owner::new("connection-b-42", "access_token");
        let ct = ring.encrypt(owner, "ya29.secret-token");
        assert!(ct.starts_with("v1:k1:"));
        assert!(!ct.contains("ya29"));
        assert_eq!(ring.decrypt(owner, &ct).unwrap().expose_secret(), "ya29.secret-token");
    }

    #[test]
    fn same_plaintext_encrypts_differently() {
        let ring = ring();
        let owner = Owner::new("s", "f");
        assert_ne!(ring.encrypt(owner, "x"), ring.encrypt(owner, "x"));
    }

    #[test]
    fn a_moved_ciphertext_fails_to_decrypt() {
        let ring = ring();
        let ct = ring.encrypt(Owner::new("connection-a", "access_token"), "tok");
        assert!(matches!(
            ring.decrypt(Owner::new("connection-b", "access_token"), &ct),
            Err(CryptoError::Authentication)
        ));
        assert!(matches!(
            ring.decrypt(Owner::new("connection-a", "refresh_token"), &ct),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = ring();
        let owner = Owner::new("s", "f");
        let ct = ring.encrypt(owner, "hello");
        let mut bytes = ct.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(ring.decrypt(owner, &tampered).is_err());
        assert!(matches!(ring.decrypt(owner, "plain"), Err(CryptoError::Malformed)));
    }

    #[test]
    fn rotation_keeps_old_keys_readable() {
        let k1 = STANDARD.encode(random_bytes::<32>());
        let k2 = STANDARD.encode(random_bytes::<32>());
        let parse = |json: String| KeyRing::parse(&SecretString::from(json)).unwrap();
        let old = parse(format!(r#"{{"current":"k1","keys":{{"k1":"{k1}"}}}}"#));
        let rotated = parse(format!(r#"{{"current":"k2","keys":{{"k1":"{k1}","k2":"{k2}"}}}}"#));
        let owner = Owner::new("s", "f");
        let old_ct = old.encrypt(owner, "v");
        let new_ct = rotated.encrypt(owner, "v");
        assert_eq!(KeyRing::key_id_of(&new_ct), Some("k2"));
        assert_eq!(rotated.decrypt(owner, &old_ct).unwrap().expose_secret(), "v");
        assert!(matches!(old.decrypt(owner, &new_ct), Err(CryptoError::UnknownKey(id)) if id == "k2"));
    }

    #[test]
    fn malformed_rings_are_refused_without_echoing_keys() {
        for json in [
            "not json",
            r#"{"current":"k1","keys":{}}"#,
            r#"{"current":"k1","keys":{"k1":"c2hvcnQ="}}"#,
            r#"{"current":"k1","keys":{"k1":"%%%"}}"#,
        ] {
            let err = KeyRing::parse(&SecretString::from(json.to_owned())).unwrap_err().to_string();
            assert!(!err.contains("c2hvcnQ="), "{err}");
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let text = format!("{:?}", ring());
        assert!(text.contains("k1"));
        assert!(!text.contains('='));
    }

    #[test]
    fn hashes_are_stable() {
        assert_eq!(hex::encode(sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hmac_sha256(b"k", b"v"), hmac_sha256(b"k", b"v"));
        assert_ne!(hmac_sha256(b"k", b"v"), hmac_sha256(b"k2", b"v"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
