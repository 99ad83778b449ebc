#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::{Context, relay, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let ctx = Context::from_env(events_relay::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    let publisher = relay::EventBridge::new(ctx.config().event_bus_name.clone());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (ctx, publisher) = (&ctx, &publisher);
        async move {
            let deadline = relay::deadline_from(event.context.deadline, events_relay::SAVE_MARGIN);
            events_relay::handle(ctx, publisher, deadline).await.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
