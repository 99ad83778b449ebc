//! The README's recipes for products (DESIGN §6.15, "Verifying licenses in your product"):
//! `examples/verify_license.rs` (built here) and `examples/verify_license.py` run as a product
//! would, against the real `keyledger serve`, directly and through a man in the middle that
//! changes a byte, forges a "valid", replays or delays an answer, or a stub with its own key.
//! Both recipes must print the same decisions. The README's excerpts of them must be the files'
//! text.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Method, Uri},
    response::Response,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{deploy::root, helpers::serve, licenses::World};

/// One recipe: how to start it.
enum Recipe {
    Rust(PathBuf),
    Python(String),
}

/// The Rust recipe, built now so that a filtered `cargo test` runs the current source (a full
/// `cargo test` has built it already; then this is a no-op).
async fn rust_recipe() -> Recipe {
    // Into the target directory and profile of this build: <target>/<profile>/examples.
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_keyledger")).parent().unwrap();
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "--locked", "--quiet", "-p", "keyledger", "--example", "verify_license", "--target-dir"]);
    cargo.arg(profile_dir.parent().unwrap()).current_dir(root());
    if profile_dir.ends_with("release") {
        cargo.arg("--release");
    }
    let out = cargo.output().await.unwrap();
    assert!(out.status.success(), "building the example: {}", String::from_utf8_lossy(&out.stderr));
    let bin = profile_dir.join("examples/verify_license");
    assert!(bin.exists(), "{} was not built", bin.display());
    Recipe::Rust(bin)
}

/// `python3` (or `KEYLEDGER_PYTHON`) when it has `cryptography` and PyJWT. scripts/test
/// installs them and sets `KEYLEDGER_REQUIRE_PYTHON=1`, so there (and on CI) a missing one
/// fails the test; elsewhere the test says loudly that it did not run.
fn python_recipe() -> Option<Recipe> {
    let python = std::env::var("KEYLEDGER_PYTHON").unwrap_or_else(|_| "python3".into());
    let ready = std::process::Command::new(&python)
        .args(["-c", "import cryptography, jwt"])
        .output()
        .is_ok_and(|out| out.status.success());
    if ready {
        return Some(Recipe::Python(python));
    }
    let required =
        std::env::var("KEYLEDGER_REQUIRE_PYTHON").is_ok_and(|v| v == "1") || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "{python} with cryptography and PyJWT is required here (KEYLEDGER_REQUIRE_PYTHON=1 or CI); scripts/test installs them"
    );
    eprintln!(
        "\n*** SKIPPED the Python recipe: {python} lacks cryptography or PyJWT (scripts/test installs them) ***\n"
    );
    None
}

/// Runs `recipe` with `args`; returns whether it licensed the product, and its output.
async fn run(recipe: &Recipe, args: &[String]) -> (bool, String) {
    let mut cmd = match recipe {
        Recipe::Rust(bin) => Command::new(bin),
        Recipe::Python(python) => {
            let mut cmd = Command::new(python);
            cmd.arg(root().join("examples/verify_license.py"));
            cmd
        }
    };
    let out = cmd.args(args).output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
    let code = out.status.code();
    // A decision, not a crash (a Python traceback exits 1 too, on stderr).
    assert!(matches!(code, Some(0 | 1)) && stderr.is_empty(), "{args:?} exited with {code:?}: {stdout}{stderr}");
    (code == Some(0), stdout)
}

/// Each line of `out` starts with the expected line of the same place, and there are no more.
#[track_caller]
fn assert_lines(out: &str, expected: &[&str]) {
    let lines: Vec<&str> = out.lines().collect();
    let same = lines.len() == expected.len() && lines.iter().zip(expected).all(|(l, e)| l.starts_with(e));
    assert!(same, "expected lines starting with\n{}\ngot\n{out}", expected.join("\n"));
}

/// The real local server, configured like the test's functions, on a free port.
async fn start_server(w: &World) -> (Child, String) {
    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_keyledger"))
        .arg("serve")
        .env_clear()
        .envs(w.app.vars.iter())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            return (server, base);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("keyledger serve did not start");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A signed answer kept for a replay: its `Keyledger-Signature` and its body.
type Kept = Arc<Mutex<Option<(String, Vec<u8>)>>>;

/// What the man in the middle does to the answers of `validate`.
#[derive(Clone)]
enum Tamper {
    /// One byte of the body flipped; the signature header kept.
    ChangeByte,
    /// `"valid":false` / `NOT_ACTIVATED` rewritten into a valid answer.
    ForgeValid,
    /// The first answer passed on and kept; every later request gets it again.
    Replay(Kept),
    /// Held back for a while, then passed on unchanged.
    Delay(Duration),
}

/// A proxy in front of `upstream` that forwards everything and tampers with `validate`.
async fn proxy(upstream: &str, tamper: Tamper) -> String {
    let (http, upstream) = (reqwest::Client::new(), upstream.to_owned());
    let app = Router::new().fallback(move |method: Method, uri: Uri, body: Bytes| {
        let (http, upstream, tamper) = (http.clone(), upstream.clone(), tamper.clone());
        async move {
            let answer = http
                .request(method, format!("{upstream}{uri}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let mut signature = answer.headers().get("keyledger-signature").map(|v| v.to_str().unwrap().to_owned());
            let mut body = answer.bytes().await.unwrap().to_vec();
            if uri.path() == "/v1/licenses/validate" {
                match &tamper {
                    Tamper::ChangeByte => {
                        let middle = body.len() / 2;
                        body[middle] ^= 0x01;
                    }
                    Tamper::ForgeValid => {
                        let text = String::from_utf8(body).unwrap();
                        let forged =
                            text.replace(r#""valid":false"#, r#""valid":true"#).replace("NOT_ACTIVATED", "VALID");
                        assert_ne!(forged, text, "the forgery changed the answer");
                        body = forged.into_bytes();
                    }
                    Tamper::Replay(first) => {
                        let mut first = first.lock().unwrap();
                        match &*first {
                            Some((kept_signature, kept_body)) => {
                                (signature, body) = (Some(kept_signature.clone()), kept_body.clone());
                            }
                            None => *first = Some((signature.clone().unwrap(), body.clone())),
                        }
                    }
                    Tamper::Delay(delay) => tokio::time::sleep(*delay).await,
                }
            }
            let mut response = Response::builder().status(status).header("content-type", "application/json");
            if let Some(signature) = signature {
                response = response.header("keyledger-signature", signature);
            }
            response.body(Body::from(body)).unwrap()
        }
    });
    format!("http://{}", serve(app).await)
}

/// A stand-in for keyledger that says "valid" to everything, signed with its own key (kid
/// `s1` too), with a JWKS of that key: what a pirate puts on the server's host name.
async fn stub() -> String {
    let key = SigningKey::from_bytes(&[7; 32]);
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "s1", "use": "sig", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())}]});
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let (key, jwks) = (key.clone(), jwks.clone());
        async move {
            let (body, signature) = if uri.path() == "/v1/licenses/signing-keys" {
                (jwks.to_string(), None)
            } else {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let answer = json!({"valid": true, "code": "VALID", "ts": ts, "nonce": request["nonce"]}).to_string();
                let sig = URL_SAFE_NO_PAD.encode(key.sign(answer.as_bytes()).to_bytes());
                (answer, Some(format!(r#"keyid="s1", alg="ed25519", sig="{sig}""#)))
            };
            let mut response = Response::builder().header("content-type", "application/json");
            if let Some(signature) = signature {
                response = response.header("keyledger-signature", signature);
            }
            response.body(Body::from(body)).unwrap()
        }
    });
    format!("http://{}", serve(app).await)
}

/// Everything a product meets, for one recipe.
async fn a_product_trusts_only_signed_fresh_answers_and_its_license_file_until_exp(recipe: Recipe) {
    let w = World::new().await;
    let (_server, base) = start_server(&w).await;
    let (id, key) = w.issue(json!({"email": "p@example.com", "max_installations": 2, "entitlements": ["pro"]})).await;
    w.check("activate", &key, "pc-1").await;
    let dir = std::env::temp_dir().join(format!("kl-recipes-{}", uuid::Uuid::new_v4().simple()));
    let at = |name: &str| dir.join(name).display().to_string();
    let args = |server: &str, store: &str, installation: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["--server", server, "--license-key", &key, "--installation-id", installation]
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(["--store".into(), at(store)]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let unreachable = format!("http://127.0.0.1:{}", free_port());

    // Online: a verified answer; the license file is checked out, verified and stored.
    let (licensed, out) = run(&recipe, &args(&base, "store", "pc-1", &[])).await;
    assert!(licensed, "{out}");
    assert_lines(
        &out,
        &["online: VALID (signed by s1, nonce echoed, ts fresh)", "license file stored (exp ", "licensed: online"],
    );
    let exp: i64 = out
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("license file stored (exp ")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let in_a_week = chrono::Utc::now().timestamp() + 7 * 86400;
    assert!((in_a_week - 5..=in_a_week).contains(&exp), "a week by default: {exp}");
    assert!(std::fs::read_to_string(at("store/license.jwt")).unwrap().starts_with("eyJ"), "a compact JWS is stored");
    std::fs::copy(at("store/signing-keys.json"), at("pinned.json")).unwrap();

    // The server unreachable: the stored file, offline, until its exp.
    let (licensed, out) = run(&recipe, &args(&unreachable, "store", "pc-1", &[])).await;
    assert!(licensed, "{out}");
    let until = format!("licensed: offline until {exp}");
    assert_lines(
        &out,
        &["no trustworthy answer: server unreachable", "offline: license file verified (signed by s1)", &until],
    );
    // Another installation's file is not this one's.
    let (licensed, out) = run(&recipe, &args(&unreachable, "store", "pc-2", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(
        &out,
        &[
            "no trustworthy answer: server unreachable",
            "not licensed: stored license file refused: issued to another installation",
        ],
    );

    // One changed byte: the answer is not trusted; without a stored file, no license.
    let changed = proxy(&base, Tamper::ChangeByte).await;
    let (licensed, out) = run(&recipe, &args(&changed, "empty", "pc-1", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(
        &out,
        &["no trustworthy answer: the signature does not verify", "not licensed: no stored license file"],
    );
    let (licensed, out) = run(&recipe, &args(&changed, "store", "pc-1", &[])).await;
    assert!(licensed, "{out}");
    assert_lines(&out, &["no trustworthy answer: the signature does not verify", "offline: ", &until]);

    // A forged "valid" for an installation that is not activated (the real answer says so).
    let (licensed, out) = run(&recipe, &args(&base, "pc-2", "pc-2", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(&out, &["online: NOT_ACTIVATED (signed by s1", "not licensed: NOT_ACTIVATED"]);
    let forged = proxy(&base, Tamper::ForgeValid).await;
    let (licensed, out) = run(&recipe, &args(&forged, "pc-2", "pc-2", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(
        &out,
        &["no trustworthy answer: the signature does not verify", "not licensed: no stored license file"],
    );

    // A replayed answer (validly signed, but for another nonce).
    let replay = proxy(&base, Tamper::Replay(Arc::default())).await;
    let (licensed, out) = run(&recipe, &args(&replay, "store", "pc-1", &[])).await;
    assert!(licensed && out.ends_with("licensed: online\n"), "the first answer passes: {out}");
    let (licensed, out) = run(&recipe, &args(&replay, "store", "pc-1", &[])).await;
    assert!(licensed, "{out}");
    assert_lines(
        &out,
        &[
            "no trustworthy answer: the nonce is not echoed (a replayed answer)",
            "offline: ",
            "licensed: offline until ",
        ],
    );

    // A short-lived file, then an answer held back for longer than the allowed skew.
    let (licensed, out) = run(&recipe, &args(&base, "short", "pc-1", &["--ttl-seconds", "2"])).await;
    assert!(licensed, "{out}");
    let short_exp: i64 = out
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("license file stored (exp ")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let delayed = proxy(&base, Tamper::Delay(Duration::from_millis(2100))).await;
    let (licensed, out) = run(&recipe, &args(&delayed, "empty", "pc-1", &["--max-skew-seconds", "1"])).await;
    assert!(!licensed, "{out}");
    assert_lines(&out, &["no trustworthy answer: ts ", "not licensed: no stored license file"]);
    assert!(out.contains("is more than 1s away (a delayed or replayed answer)"), "{out}");
    // Once its exp has passed, the short-lived file is refused offline.
    while chrono::Utc::now().timestamp() <= short_exp + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (licensed, out) = run(&recipe, &args(&unreachable, "short", "pc-1", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(
        &out,
        &["no trustworthy answer: server unreachable", "not licensed: stored license file refused: expired"],
    );

    // A stub with its own key: believed when the keys come from the network, refused when the
    // product pins the JWKS it ships with.
    let stub = stub().await;
    let (licensed, out) = run(&recipe, &args(&stub, "stub", "pc-1", &[])).await;
    assert!(licensed, "the stub is a convincing one: {out}");
    assert_lines(
        &out,
        &["online: VALID (signed by s1", "license file not renewed: no license file in the answer", "licensed: online"],
    );
    let pinned = at("pinned.json");
    let (licensed, out) = run(&recipe, &args(&stub, "empty", "pc-1", &["--jwks", &pinned])).await;
    assert!(!licensed, "{out}");
    assert_lines(
        &out,
        &["no trustworthy answer: the signature does not verify", "not licensed: no stored license file"],
    );
    let (licensed, out) = run(&recipe, &args(&base, "pinned", "pc-1", &["--jwks", &pinned])).await;
    assert!(licensed, "the real server with pinned keys: {out}");

    // A signed refusal removes the stored file: a suspension is not outlived offline.
    w.admin_call(Method::PATCH, &format!("/v1/licenses/{id}"), Some(json!({"status": "suspended"}))).await;
    let (licensed, out) = run(&recipe, &args(&base, "store", "pc-1", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(&out, &["online: SUSPENDED (signed by s1", "license file removed", "not licensed: SUSPENDED"]);
    let (licensed, out) = run(&recipe, &args(&unreachable, "store", "pc-1", &[])).await;
    assert!(!licensed, "{out}");
    assert_lines(&out, &["no trustworthy answer: server unreachable", "not licensed: no stored license file"]);

    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_rust_recipe_trusts_only_signed_fresh_answers_and_its_license_file_until_exp() {
    a_product_trusts_only_signed_fresh_answers_and_its_license_file_until_exp(rust_recipe().await).await;
}

#[tokio::test]
async fn the_python_recipe_trusts_only_signed_fresh_answers_and_its_license_file_until_exp() {
    if let Some(python) = python_recipe() {
        a_product_trusts_only_signed_fresh_answers_and_its_license_file_until_exp(python).await;
    }
}

/// The README shows parts of the recipes, each after a marker `<!-- excerpt: PATH -->`: every
/// such block must be the file's text, line for line, so the README cannot drift from the
/// files the test above runs.
#[test]
fn the_readme_shows_the_recipes_as_they_are_in_the_files() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut excerpts = std::collections::BTreeMap::<String, usize>::new();
    for part in readme.split("<!-- excerpt: ").skip(1) {
        let (path, rest) = part.split_once(" -->").expect("a marker ends with -->");
        let rest = rest.trim_start_matches('\n');
        assert!(rest.starts_with("```"), "a fenced block follows the marker of {path}");
        let body = &rest[rest.find('\n').unwrap() + 1..];
        let excerpt = &body[..body.find("```").expect("the block ends")];
        let file = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(excerpt.lines().count() >= 3, "an excerpt of {path} worth the name:\n{excerpt}");
        assert!(file.contains(excerpt), "README's excerpt differs from {path}:\n{excerpt}");
        *excerpts.entry(path.to_owned()).or_default() += 1;
    }
    for path in ["examples/verify_license.rs", "examples/verify_license.py"] {
        assert!(excerpts.get(path).is_some_and(|n| *n >= 2), "README shows {path}: {excerpts:?}");
    }
}
