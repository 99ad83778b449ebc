use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = Context::from_env(token_fetch::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    ctx.config().require_encryption_keys()?;
    shared::http::serve(token_fetch::router(ctx.clone()), ctx.config()).await
}
