use shared::{Context, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let ctx = Context::from_env(license_validate::FUNCTION)?;
    telemetry::init(ctx.config().log_format);
    ctx.config().require_license_key_pepper()?;
    ctx.config().require_license_signing_keys()?;
    shared::http::serve(license_validate::router(ctx.clone()), ctx.config()).await
}
