//! Cold start of a Lambda `bootstrap`, measured against a minimal Runtime API stub:
//!
//! - **init**: from spawning the process to its first `GET /runtime/invocation/next`;
//! - **first invocation**: from handing it the event to receiving its response;
//! - **peak memory**: the process's `VmHWM` (peak resident set) after that response.
//!
//! Usage: `coldstart BOOTSTRAP EVENT_FILE RUNS [KEY=VALUE…]` (the pairs are the function's
//! environment). Prints one JSON line per run and a summary line (median, min, max).

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::json;
use tokio::sync::Notify;

#[derive(Default)]
struct Marks {
    next: Option<Instant>,
    handed: Option<Instant>,
    answered: Option<Instant>,
    answer: Option<String>,
    error: Option<String>,
}

#[derive(Clone)]
struct Stub {
    event: Arc<Vec<u8>>,
    marks: Arc<Mutex<Marks>>,
    done: Arc<Notify>,
}

async fn next(State(stub): State<Stub>) -> impl IntoResponse {
    let first = {
        let mut m = stub.marks.lock().unwrap();
        if m.next.is_none() {
            m.next = Some(Instant::now());
            true
        } else {
            false
        }
    };
    if !first {
        // One invocation per process: the second poll waits until the process is killed.
        std::future::pending::<()>().await;
    }
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "coldstart-1".parse().unwrap());
    headers.insert("lambda-runtime-deadline-ms", deadline.as_millis().to_string().parse().unwrap());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:coldstart".parse().unwrap(),
    );
    headers.insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    stub.marks.lock().unwrap().handed = Some(Instant::now());
    (headers, stub.event.as_ref().clone())
}

async fn response(State(stub): State<Stub>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    let mut m = stub.marks.lock().unwrap();
    m.answered = Some(Instant::now());
    m.answer = Some(String::from_utf8_lossy(&body).into_owned());
    stub.done.notify_one();
    StatusCode::ACCEPTED
}

async fn error(State(stub): State<Stub>, body: Bytes) -> StatusCode {
    let mut m = stub.marks.lock().unwrap();
    m.answered = Some(Instant::now());
    m.error = Some(String::from_utf8_lossy(&body).into_owned());
    stub.done.notify_one();
    StatusCode::ACCEPTED
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Run {
    init_ms: f64,
    first_ms: f64,
    peak_kib: u64,
    answer: String,
}

async fn run_once(bootstrap: &str, event: Arc<Vec<u8>>, env: &[(String, String)]) -> Result<Run, String> {
    let stub = Stub { event, marks: Arc::default(), done: Arc::default() };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut cmd = tokio::process::Command::new(bootstrap);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "coldstart")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env("_HANDLER", "bootstrap")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawning {bootstrap}: {e}"))?;
    let pid = child.id().unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(30), stub.done.notified()).await;
    let peak_kib = peak_rss_kib(pid).unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    answered.map_err(|_| "no answer within 30 s".to_owned())?;
    let m = stub.marks.lock().unwrap();
    if let Some(e) = &m.error {
        return Err(format!("the function answered an error: {e}"));
    }
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    Ok(Run {
        init_ms: ms(started, m.next.unwrap()),
        first_ms: ms(m.handed.unwrap(), m.answered.unwrap()),
        peak_kib,
        answer: m.answer.clone().unwrap_or_default(),
    })
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, event_file, runs, env @ ..] = args.as_slice() else {
        eprintln!("usage: coldstart BOOTSTRAP EVENT_FILE RUNS [KEY=VALUE...]");
        std::process::exit(2);
    };
    let event = Arc::new(std::fs::read(event_file).expect("event file"));
    let runs: usize = runs.parse().expect("RUNS is a number");
    let env: Vec<(String, String)> =
        env.iter().map(|kv| kv.split_once('=').expect("KEY=VALUE")).map(|(k, v)| (k.into(), v.into())).collect();
    let (mut init, mut first, mut peak) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        match run_once(bootstrap, event.clone(), &env).await {
            Ok(r) => {
                // The HTTP status for API Gateway answers, else the start of the answer.
                let answer: serde_json::Value = serde_json::from_str(&r.answer).unwrap_or_default();
                let outcome = answer
                    .get("statusCode")
                    .cloned()
                    .unwrap_or_else(|| json!(r.answer.chars().take(80).collect::<String>()));
                println!(
                    "{}",
                    json!({"run": i, "init_ms": r.init_ms, "first_invocation_ms": r.first_ms, "peak_rss_mib": r.peak_kib as f64 / 1024.0, "answer": outcome})
                );
                init.push(r.init_ms);
                first.push(r.first_ms);
                peak.push(r.peak_kib as f64 / 1024.0);
            }
            Err(e) => {
                eprintln!("run {i}: {e}");
                std::process::exit(1);
            }
        }
    }
    let (i, f, p) = (stats(init), stats(first), stats(peak));
    println!(
        "{}",
        json!({"bootstrap": bootstrap, "runs": runs,
               "init_ms": {"median": i.0, "min": i.1, "max": i.2},
               "first_invocation_ms": {"median": f.0, "min": f.1, "max": f.2},
               "peak_rss_mib": {"median": p.0, "min": p.1, "max": p.2}})
    );
}
