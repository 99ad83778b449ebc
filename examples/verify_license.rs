//! What a product does with keyledger's license answers (README, "Verifying licenses in your
//! product"; DESIGN §6.15), with libraries keyledger does not use itself: `ed25519-dalek` for
//! the `Keyledger-Signature` of an answer, `jsonwebtoken` for the license file.
//!
//! ```text
//! verify_license --server URL --license-key KEY --installation-id ID --store DIR
//!                [--ttl-seconds 604800] [--max-skew-seconds 300] [--issuer keyledger] [--jwks FILE]
//! ```
//!
//! Online: fetch the JWKS, validate with a fresh nonce, check the signature over the exact
//! body bytes, the echoed nonce and `ts`; when valid, check out a license file, verify it and
//! store it (with the JWKS) in DIR. Without a trustworthy answer (server unreachable, a
//! changed or replayed answer), verify the stored file offline and accept it until its `exp`.
//! A signed refusal (`SUSPENDED`, `EXPIRED`, ...) removes the stored file. `--jwks` pins the
//! keys the product ships with instead of fetching them. Prints one line per decision; exits 0
//! when the product may run, 1 when not (tests/it/licenses_recipes.rs runs it).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use clap::Parser;
use ed25519_dalek::{Signature, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// keyledger's base URL (its license-validate function).
    #[arg(long)]
    server: String,
    #[arg(long)]
    license_key: String,
    #[arg(long)]
    installation_id: String,
    /// Where the license file and the signing keys are kept between runs.
    #[arg(long)]
    store: PathBuf,
    /// How long the product may run offline (capped by the server).
    #[arg(long, default_value_t = 7 * 86400)]
    ttl_seconds: u64,
    /// How far an answer's `ts` (and a file's `nbf`) may be from this machine's clock.
    #[arg(long, default_value_t = 300)]
    max_skew_seconds: i64,
    #[arg(long, default_value = "keyledger")]
    issuer: String,
    /// A JWKS shipped with the product: trusted instead of the one the server sends.
    #[arg(long)]
    jwks: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
    let licensed = match online(&http, &args).await {
        Ok(licensed) => licensed,
        Err(reason) => {
            println!("no trustworthy answer: {reason}");
            offline(&args)
        }
    };
    if licensed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `Ok(licensed)` from a verified answer; `Err(why)` when there is no answer to trust.
async fn online(http: &reqwest::Client, args: &Args) -> Result<bool, String> {
    let keys = match &args.jwks {
        Some(pinned) => read_json(pinned).ok_or("the pinned JWKS is unreadable")?,
        None => {
            let url = format!("{}/v1/licenses/signing-keys", args.server);
            let answer = http.get(url).send().await.map_err(|e| format!("server unreachable: {e}"))?;
            if answer.status() != reqwest::StatusCode::OK {
                return Err(format!("HTTP {} for the signing keys", answer.status().as_u16()));
            }
            let keys: Value = answer.json().await.map_err(|e| format!("server unreachable: {e}"))?;
            store(args, "signing-keys.json", &keys.to_string());
            keys
        }
    };
    let request = json!({"license_key": args.license_key, "installation_id": args.installation_id});
    let (answer, kid) = post_verified(http, args, &keys, "validate", request.clone()).await?;
    println!("online: {} (signed by {kid}, nonce echoed, ts fresh)", answer["code"].as_str().unwrap_or("?"));
    if answer["valid"] != true {
        // A signed refusal is final: the stored file must not outlive a suspension.
        if std::fs::remove_file(args.store.join("license.jwt")).is_ok() {
            println!("license file removed");
        }
        println!("not licensed: {}", answer["code"].as_str().unwrap_or("?"));
        return Ok(false);
    }
    let mut request = request;
    request["ttl_seconds"] = json!(args.ttl_seconds);
    match post_verified(http, args, &keys, "checkout", request).await {
        Ok((checkout, _)) if checkout["valid"] == true => {
            let verified = match checkout["license_file"].as_str() {
                Some(file) => verify_license_file(args, &keys, file).map(|(claims, _)| (file, claims)),
                None => Err("no license file in the answer".into()),
            };
            match verified {
                Ok((file, claims)) => {
                    store(args, "license.jwt", file);
                    println!("license file stored (exp {})", claims["exp"]);
                }
                Err(reason) => println!("license file not renewed: {reason}"),
            }
        }
        Ok((checkout, _)) => println!("license file not renewed: {}", checkout["code"]),
        Err(reason) => println!("license file not renewed: {reason}"),
    }
    println!("licensed: online");
    Ok(true)
}

/// The stored license file, verified offline: accepted until its `exp`, not a second longer.
fn offline(args: &Args) -> bool {
    let Ok(file) = std::fs::read_to_string(args.store.join("license.jwt")) else {
        println!("not licensed: no stored license file");
        return false;
    };
    let pinned = args.jwks.clone();
    let Some(keys) = read_json(&pinned.unwrap_or_else(|| args.store.join("signing-keys.json"))) else {
        println!("not licensed: no stored signing keys");
        return false;
    };
    match verify_license_file(args, &keys, file.trim()) {
        Ok((claims, kid)) => {
            println!("offline: license file verified (signed by {kid})");
            println!("licensed: offline until {}", claims["exp"]);
            true
        }
        Err(reason) => {
            println!("not licensed: stored license file refused: {reason}");
            false
        }
    }
}

/// POSTs `body` with a fresh nonce to `/v1/licenses/{route}`; returns the answer and the
/// signing key id once its signature, nonce and `ts` are checked.
async fn post_verified(
    http: &reqwest::Client,
    args: &Args,
    keys: &Value,
    route: &str,
    mut body: Value,
) -> Result<(Value, String), String> {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    body["nonce"] = json!(nonce);
    let url = format!("{}/v1/licenses/{route}", args.server);
    let response = http.post(url).json(&body).send().await.map_err(|e| format!("server unreachable: {e}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status().as_u16()));
    }
    let header = response.headers().get("keyledger-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    // The exact bytes: the signature covers them, not a re-serialisation of the JSON.
    let bytes = response.bytes().await.map_err(|e| format!("server unreachable: {e}"))?;
    let kid = verify_signature(keys, header.as_deref().ok_or("the answer is not signed")?, &bytes)?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(|_| "the signed body is not JSON")?;
    if answer["nonce"] != nonce.as_str() {
        return Err("the nonce is not echoed (a replayed answer)".into());
    }
    let ts = answer["ts"].as_str().and_then(|ts| ts.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let ts = ts.ok_or("the answer has no ts")?;
    if (chrono::Utc::now() - ts).num_milliseconds().abs() > args.max_skew_seconds * 1000 {
        return Err(format!("ts {ts} is more than {}s away (a delayed or replayed answer)", args.max_skew_seconds));
    }
    Ok((answer, kid))
}

/// Checks `Keyledger-Signature: keyid="s1", alg="ed25519", sig="…"` over exactly `body` with
/// the key `keyid` of the JWKS; returns the key id.
fn verify_signature(keys: &Value, header: &str, body: &[u8]) -> Result<String, String> {
    let param = |name: &str| {
        header
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    };
    let (Some(kid), Some("ed25519"), Some(sig)) = (param("keyid"), param("alg"), param("sig")) else {
        return Err("malformed Keyledger-Signature".into());
    };
    let x: [u8; 32] =
        URL_SAFE_NO_PAD.decode(public_key(keys, kid)?).ok().and_then(|x| x.try_into().ok()).ok_or("bad key")?;
    let sig: [u8; 64] =
        URL_SAFE_NO_PAD.decode(sig).ok().and_then(|s| s.try_into().ok()).ok_or("malformed signature")?;
    let key = VerifyingKey::from_bytes(&x).map_err(|_| "bad key")?;
    key.verify_strict(body, &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not verify (a forged or changed answer)")?;
    Ok(kid.to_owned())
}

/// Verifies a license file (compact JWS, EdDSA) with the key its header names: signature,
/// `iss`, `exp` (no leeway), `nbf` (the clock skew allowed for `ts`) and the installation.
fn verify_license_file(args: &Args, keys: &Value, file: &str) -> Result<(Value, String), String> {
    let header = jsonwebtoken::decode_header(file).map_err(|e| format!("malformed: {e}"))?;
    let kid = header.kid.ok_or("no kid in the header")?;
    let key = DecodingKey::from_ed_components(public_key(keys, &kid)?).map_err(|e| format!("bad key: {e}"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&args.issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<Value>(file, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) if *e.kind() == ErrorKind::ExpiredSignature => return Err("expired".into()),
        Err(e) if *e.kind() == ErrorKind::InvalidSignature => return Err("the signature does not verify".into()),
        Err(e) => return Err(e.to_string()),
    };
    if claims["installation_id"] != args.installation_id.as_str() {
        return Err("issued to another installation".into());
    }
    if claims["nbf"].as_i64().is_none_or(|nbf| nbf > chrono::Utc::now().timestamp() + args.max_skew_seconds) {
        return Err("not valid yet".into());
    }
    Ok((claims, kid))
}

/// The `x` (base64url Ed25519 public key) of key `kid` of a JWKS.
fn public_key<'a>(keys: &'a Value, kid: &str) -> Result<&'a str, String> {
    let jwk = keys["keys"].as_array().into_iter().flatten().find(|k| k["kid"] == kid && k["kty"] == "OKP");
    jwk.and_then(|k| k["x"].as_str()).ok_or(format!("unknown signing key {kid}"))
}

fn read_json(path: &std::path::Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Replaces `name` in the store whole (a crash never leaves half a file).
fn store(args: &Args, name: &str, contents: &str) {
    let _ = std::fs::create_dir_all(&args.store);
    let partial = args.store.join(format!("{name}.partial"));
    if std::fs::write(&partial, contents).and_then(|()| std::fs::rename(&partial, args.store.join(name))).is_err() {
        println!("cannot write {name} in {}", args.store.display());
    }
}
