#![recursion_limit = "256"]

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::{Context, telemetry};

/// Built on first use, not at init: its TLS set-up (root certificates) costs a few
/// milliseconds of every cold start, and only custom-resource events need it.
static HTTP: OnceLock<reqwest::Client> = OnceLock::new();

fn http() -> Result<&'static reqwest::Client, lambda_runtime::Error> {
    if let Some(client) = HTTP.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
    Ok(HTTP.get_or_init(|| client))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ctx = Context::from_env(migrate::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let ctx = ctx.clone();
        async move {
            let deadline = shared::deadline::from_millis(event.context.deadline, SystemTime::now());
            migrate::handle(&ctx, http()?, event.payload, deadline).await.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
