#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ctx = Context::from_env(request_log::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    let router = request_log::router(ctx.clone());
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return shared::http::serve(router, ctx.config()).await;
    }
    // One binary, three triggers: lambda_http::run only understands HTTP events, so the
    // runtime hands over raw JSON and `handle` dispatches on its shape.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (ctx, router) = (ctx.clone(), router.clone());
        async move { request_log::handle(&ctx, router, event.payload, event.context).await }
    }))
    .await
}
