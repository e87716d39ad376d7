//! The log: human lines on stderr, redacted, at the verbosity of `-v`.

/// `ECS_BOOTSTRAP_LOG` (an `EnvFilter`) wins over `-v`/`-vv`.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ECS_BOOTSTRAP_LOG").unwrap_or_else(|_| {
        // The SDK's own debug output is noise at -v; at -vv it is wanted.
        let sdk = if verbose >= 2 { "debug" } else { "warn" };
        tracing_subscriber::EnvFilter::new(format!(
            "{default},aws_config={sdk},aws_smithy_runtime={sdk},aws_sdk_cloudformation={sdk},aws_sdk_ecs={sdk},hyper={sdk},reqwest={sdk}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(crate::sys::redact::without_wire_bodies(filter))
        .with_writer(crate::sys::redact::stderr)
        // No colours: the writer escapes every control character (ESC included) so that a
        // template value cannot rewrite or conceal a log line (issue 8), and the formatter's
        // own colour sequences would be escaped with them.
        .with_ansi(false)
        .with_target(false)
        .init();
}
