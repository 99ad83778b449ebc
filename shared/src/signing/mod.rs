//! Signed license answers and license files (DESIGN §6.15): the Ed25519 signing key ring,
//! its public JWKS (RFC 8037), the `Keyledger-Signature` header over exact body bytes, and
//! compact JWS (EdDSA) license files.
//!
//! Owns the private seeds: they never leave this module, not through `Debug`, not through
//! an error message, not through any serialisation. Only public keys and signatures do.

use std::{collections::BTreeMap, fmt};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The response header that carries the signature of a license answer.
pub const SIGNATURE_HEADER: &str = "keyledger-signature";

/// The signing key ring is malformed; never carries key material.
#[derive(Debug, thiserror::Error)]
#[error("signing key ring: {0}")]
pub struct SigningKeysError(String);

#[derive(Deserialize)]
struct RingJson {
    current: String,
    keys: BTreeMap<String, String>,
}

/// The Ed25519 key ring `{"current": "s1", "keys": {"s1": "<base64 32-byte seed>"}}`.
///
/// Every key of the ring is published in the JWKS (so answers signed before a rotation
/// still verify); only `current` signs.
pub struct SigningKeys {
    current: String,
    keys: BTreeMap<String, Ed25519KeyPair>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One public key as a JWK (RFC 8037 `OKP`/`Ed25519`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The key id of the ring.
    pub kid: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `EdDSA`.
    pub alg: String,
}

/// The public JWKS of `GET /v1/licenses/signing-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwks {
    /// Every key of the ring, current or not.
    pub keys: Vec<Jwk>,
}

impl SigningKeys {
    /// Parses the JSON form; every seed must be 32 bytes of standard base64.
    pub fn parse(json: &SecretString) -> Result<Self, SigningKeysError> {
        let parsed: RingJson = serde_json::from_str(json.expose_secret())
            .map_err(|e| SigningKeysError(format!("not the expected JSON shape ({:?})", e.classify())))?;
        let mut keys = BTreeMap::new();
        for (id, b64) in &parsed.keys {
            // The id travels inside a quoted header parameter and a JWS header.
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(SigningKeysError(format!("key id '{id}' must be 1-64 of [A-Za-z0-9-_.]")));
            }
            let seed =
                STANDARD.decode(b64.trim()).map_err(|_| SigningKeysError(format!("key '{id}' is not base64")))?;
            if seed.len() != 32 {
                return Err(SigningKeysError(format!("key '{id}' must be a 32-byte seed, not {} bytes", seed.len())));
            }
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(|_| SigningKeysError(format!("key '{id}' rejected")))?;
            keys.insert(id.clone(), pair);
        }
        if !keys.contains_key(&parsed.current) {
            return Err(SigningKeysError(format!("current key '{}' is not in keys", parsed.current)));
        }
        Ok(Self { current: parsed.current, keys })
    }

    /// A fresh ring with one random seed, as JSON (`keyledger keys generate-signing`, tests).
    pub fn generate_json(key_id: &str) -> SecretString {
        let seed = crate::crypto::random_bytes::<32>();
        // Built as JSON, not by formatting: an id with a quote must give a ring that `parse`
        // refuses by name, not a broken document.
        let ring = serde_json::json!({"current": key_id, "keys": {key_id: STANDARD.encode(seed)}});
        SecretString::from(ring.to_string())
    }

    /// The id of the key that signs.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    fn current(&self) -> &Ed25519KeyPair {
        &self.keys[&self.current]
    }

    /// Every public key of the ring as a JWKS.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .keys
            .iter()
            .map(|(kid, pair)| Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                kid: kid.clone(),
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                use_: "sig".into(),
                alg: "EdDSA".into(),
            })
            .collect();
        Jwks { keys }
    }

    /// The `Keyledger-Signature` header value over exactly `body`.
    pub fn signature_header(&self, body: &[u8]) -> String {
        let sig = self.current().sign(body);
        format!(r#"keyid="{}", alg="ed25519", sig="{}""#, self.current, URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// A compact JWS (`alg` EdDSA, `typ` JWT, `kid` the current key) of `claims`.
    pub fn jws(&self, claims: &impl Serialize) -> Result<String, serde_json::Error> {
        let header = serde_json::to_vec(&serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.current}))?;
        let payload = serde_json::to_vec(claims)?;
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
        URL_SAFE_NO_PAD.encode_string(header, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let sig = self.current().sign(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(json: &str) -> Result<SigningKeys, SigningKeysError> {
        SigningKeys::parse(&SecretString::from(json.to_owned()))
    }

    #[test]
    fn debug_and_errors_never_show_a_seed() {
        let json = SigningKeys::generate_json("s1");
        let seed = serde_json::from_str::<serde_json::Value>(json.expose_secret()).unwrap()["keys"]["s1"]
            .as_str()
            .unwrap()
            .to_owned();
        let keys = SigningKeys::parse(&json).unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains(&seed), "{debug}");
        assert!(debug.contains("s1"));
        let short = format!(r#"{{"current":"s1","keys":{{"s1":"{}"}}}}"#, &seed[..20]);
        let err = ring(&short).unwrap_err().to_string();
        assert!(!err.contains(&seed[..20]), "{err}");
    }

    #[test]
    fn malformed_rings_are_refused() {
        for bad in [
            "{}",
            r#"{"current":"s2","keys":{"s1":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
            r#"{"current":"s1","keys":{"s1":"not base64!"}}"#,
            r#"{"current":"s1","keys":{"s1":"AAAA"}}"#,
            r#"{"current":"a\"b","keys":{"a\"b":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}}"#,
        ] {
            assert!(ring(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_known_seed_gives_the_rfc_8032_public_key() {
        // RFC 8032 §7.1, test 1.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let keys = ring(&format!(r#"{{"current":"s1","keys":{{"s1":"{}"}}}}"#, STANDARD.encode(seed))).unwrap();
        let jwk = &keys.jwks().keys[0];
        assert_eq!(
            hex::encode(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            (jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str(), jwk.use_.as_str()),
            ("OKP", "Ed25519", "EdDSA", "sig")
        );
        // The empty message's signature from the RFC.
        let header = keys.signature_header(b"");
        let sig =
            hex::encode(URL_SAFE_NO_PAD.decode(header.split("sig=\"").nth(1).unwrap().trim_end_matches('"')).unwrap());
        assert_eq!(
            sig,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(header.starts_with(r#"keyid="s1", alg="ed25519", sig=""#));
    }
}
