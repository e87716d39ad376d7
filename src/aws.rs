//! Shared SDK configuration: region, credentials chain, retries and timeouts for the
//! CloudFormation and ECS clients. Endpoints come from the SDK's own `AWS_ENDPOINT_URL*`
//! variables, so tests and VPC endpoints need nothing special here.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        // Standard mode retries throttling and transient errors with exponential backoff and
        // full jitter, which is what 500 instances booting at once need.
        .retry_config(RetryConfig::standard().with_max_attempts(6))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(90))
                .build(),
        )
        .load()
        .await
}

/// "Code: message" for a service error, the whole source chain otherwise. The SDK's Display for
/// SdkError is only "service error", which would make a useless FAILURE reason.
pub fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        match (e.code(), e.message()) {
            (Some(code), Some(msg)) => return format!("{code}: {msg}"),
            (Some(code), None) => return code.to_string(),
            _ => {}
        }
    }
    error_chain(err)
}

pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(s) = cur {
        let s_str = s.to_string();
        if !out.contains(&s_str) {
            out.push_str(": ");
            out.push_str(&s_str);
        }
        cur = s.source();
    }
    out
}
