#![recursion_limit = "256"]

use std::time::SystemTime;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::{Context, config::Config, oauth::Provider, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = token_refresh::configure(Config::from_env()?);
    config.require_encryption_keys()?;
    let ctx = Context::new(config, token_refresh::FUNCTION);
    telemetry::init(ctx.config().log_format);
    let provider = Provider::from_config(ctx.config());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ctx, provider) = (ctx.clone(), provider.clone());
        async move {
            let deadline = shared::deadline::from_millis(event.context.deadline, SystemTime::now());
            token_refresh::handle(&ctx, &provider, &event.payload, deadline).await
        }
    }))
    .await
}
