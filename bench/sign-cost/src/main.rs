//! `sign-cost ITERATIONS [BODY_FILE]`: signs a license answer ITERATIONS times with
//! keyledger's own `SigningKeys::signature_header` (shared/src/signing/mod.rs, compiled in
//! by path: the code license-validate runs on every answer) and prints the wall time per
//! signature. Run it under `valgrind --tool=callgrind` with two iteration counts: the
//! difference of the instruction counts divided by the difference of the iterations is the
//! instructions of one signature, independent of other load on the host.

use std::{hint::black_box, time::Instant};

#[path = "../../../shared/src/signing/mod.rs"]
#[allow(dead_code)]
mod signing;

/// What `signing` needs from `shared::crypto` (only for `generate_json`, unused here).
mod crypto {
    pub fn random_bytes<const N: usize>() -> [u8; N] {
        let mut out = [0u8; N];
        aws_lc_rs::rand::fill(&mut out).expect("random");
        out
    }
}

/// A VALID answer of `POST /v1/licenses/validate` as license-validate serialised it in the
/// benchmark (bench/licenses-validate.sh's sample answer), byte for byte.
const ANSWER: &str = include_str!("answer.json");

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args.next().and_then(|a| a.parse().ok()).expect("usage: sign-cost ITERATIONS [BODY_FILE]");
    let body = match args.next() {
        Some(path) => std::fs::read(path).expect("body file"),
        None => ANSWER.trim_end().as_bytes().to_vec(),
    };
    // A fixed seed: the cost does not depend on the key.
    let ring = secrecy::SecretString::from(r#"{"current":"s1","keys":{"s1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#);
    let keys = signing::SigningKeys::parse(&ring).expect("ring");
    let mut total = 0usize;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..iterations {
        total += black_box(keys.signature_header(black_box(&body))).len();
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_ns() - cpu_start;
    let n = iterations.max(1) as f64;
    println!(
        "iterations={iterations} body_bytes={} header_bytes={} wall_ms={:.3} wall_per_sign_us={:.3} cpu_ms={:.3} cpu_per_sign_us={:.3}",
        body.len(),
        total / iterations.max(1) as usize,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / n / 1e3,
        cpu as f64 / 1e6,
        cpu as f64 / n / 1e3,
    );
}

/// CPU time this thread has run, in ns (the first field of /proc/thread-self/schedstat):
/// unlike wall time it does not grow while other work on the host holds the core.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
