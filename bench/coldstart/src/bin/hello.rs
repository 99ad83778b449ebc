//! The baseline: a bare lambda_http + axum function that answers every path with "hello".
//! Built with the same release profile as keyledger's functions.

use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = Router::new().route("/", get(|| async { "hello" })).fallback(|| async { "hello" });
    lambda_http::run(app).await
}
