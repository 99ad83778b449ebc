#![recursion_limit = "256"]

use std::time::{Duration, SystemTime};

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ctx = Context::from_env(migrate::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ctx, http) = (ctx.clone(), http.clone());
        async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            migrate::handle(&ctx, &http, event.payload, deadline).await.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
