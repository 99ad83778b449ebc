//! Log output: JSON lines for CloudWatch or a readable format for a terminal.
//!
//! Owns subscriber set-up only. Secrets never reach a log line because every secret type
//! redacts itself in `Debug`/`Display`; nothing here can undo that.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are ignored (tests call it freely).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,tokio_postgres=warn,aws_config=warn,aws_smithy_runtime=warn,hyper=warn")
    });
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Pretty => {
            registry.with(fmt::layer().with_writer(std::io::stderr).compact().with_target(false)).try_init()
        }
    };
}
