use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = Context::from_env(oauth::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    ctx.config().require_encryption_keys()?;
    shared::http::serve(oauth::router(ctx.clone()), ctx.config()).await
}
