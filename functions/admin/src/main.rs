use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = Context::from_env(admin::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    ctx.config().require_encryption_keys()?;
    ctx.config().require_license_key_pepper()?;
    shared::http::serve(admin::router(ctx.clone()), ctx.config()).await
}
