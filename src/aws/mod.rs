//! Shared SDK configuration: region, credentials chain, retries and timeouts, and the one place
//! the CloudFormation, ECS and Auto Scaling clients are made ([`Clients`]): CloudFormation
//! identity-signed as the cfn helpers do ([`identity_auth`]), or SigV4 when credentials are
//! named. Endpoints come from the SDK's own `AWS_ENDPOINT_URL*` variables unless [`Endpoints`]
//! names one (`-u`, a test's local stub).

pub(crate) mod credentials;
pub mod identity_auth;
pub(crate) mod imds;
pub(crate) mod region;
pub(crate) mod tls;

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// For callers without a run deadline (`init`, `--dry-run --stack`): a few retries, bounded
/// at 90 s, as before the deadline existed. Without root CA certificates the clients get an
/// empty trust store (see [`crate::aws::tls`]): the problem is logged once, and each HTTPS call then
/// fails with a certificate error instead of panicking in the SDK.
pub async fn sdk_config(region: &str) -> SdkConfig {
    let roots = crate::aws::tls::native_roots();
    if let Err(e) = &roots {
        tracing::error!(error = %e, "HTTPS to AWS will fail");
    }
    let chain = credentials::default_chain(region).await;
    build(
        region,
        6,
        Duration::from_secs(10),
        Duration::from_secs(90),
        roots.is_ok(),
        SharedCredentialsProvider::new(chain),
    )
    .await
}

/// Enough attempts that throttling is retried until the run's deadline stops it (the caller
/// bounds every call with [`crate::boot::deadline::Deadline`]); the SDK's retry quota still stops a
/// client that only ever sees errors.
const MAX_ATTEMPTS: u32 = 30;

/// The SDK config for a run whose deadline is `deadline`: standard retry mode (throttling codes,
/// HTTP 429/500/502/503/504, timeouts and connection errors retried; exponential backoff with
/// full jitter, capped at 20 s), which is what 500 instances booting at once need. Errors such
/// as AccessDenied or ValidationError are not retried: waiting cannot fix them.
///
/// Fails at once, naming where it looked, when the system has no usable root CA certificate:
/// every call would fail (or, in a debug build, panic inside the SDK), and retrying until the
/// deadline cannot install one.
pub async fn sdk_config_within(
    region: &str,
    deadline: Duration,
) -> Result<SdkConfig, crate::error::Error> {
    crate::aws::tls::native_roots()?;
    Ok(build(
        region,
        MAX_ATTEMPTS,
        attempt_timeout(deadline),
        deadline,
        true,
        credentials::run_chain(),
    )
    .await)
}

async fn build(
    region: &str,
    attempts: u32,
    attempt: Duration,
    operation: Duration,
    have_roots: bool,
    credentials: SharedCredentialsProvider,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !have_roots {
        loader = loader.http_client(crate::aws::tls::imds_http_client());
    }
    loader
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        // The cache's default load timeout (5 s) would cut off an IMDS that is slow at boot;
        // the operation timeout (the run's deadline) is the bound that matters.
        .identity_cache(IdentityCache::lazy().load_timeout(operation).build())
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        )
        .load()
        .await
}

/// How CloudFormation calls are authenticated.
#[derive(Debug, Clone)]
pub enum CfnAuth {
    /// The instance identity (`CFN_V1`): what the cfn helpers use when no credentials are
    /// named, and so what a classic stack's instance role (no `cloudformation:*`) allows.
    Identity(identity_auth::ProofSource),
    /// SigV4 with these credentials (`--role`, keys, a credential file), or with the config's
    /// own chain when `None` (`--dry-run --stack` from a workstation).
    SigV4(Option<SharedCredentialsProvider>),
}

impl CfnAuth {
    /// cfn-init's rule (`cfnbootstrap/cfn_client.py:65-66@25fabe91`): named credentials sign
    /// SigV4, none means the instance identity. `--role NAME` names that role's credentials
    /// (`cfnbootstrap/util.py:453-464`, `get_creds_or_die`).
    pub fn from_flags(
        keys: Option<aws_credential_types::Credentials>,
        role: Option<&str>,
    ) -> CfnAuth {
        match (keys, role) {
            (Some(k), _) => CfnAuth::SigV4(Some(SharedCredentialsProvider::new(k))),
            (None, Some(r)) => CfnAuth::SigV4(Some(SharedCredentialsProvider::new(
                credentials::InstanceRole::named(r),
            ))),
            (None, None) => CfnAuth::Identity(identity_auth::ProofSource::Imds),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            CfnAuth::Identity(_) => "instance identity (CFN_V1)",
            CfnAuth::SigV4(_) => "SigV4",
        }
    }
}

/// Endpoints given explicitly (`-u`, a test's local stub). `None`: the SDK's own choice, which
/// reads `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL` (tests, VPC endpoints) before the
/// regional endpoint.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub cloudformation: Option<String>,
    pub ecs: Option<String>,
    pub autoscaling: Option<String>,
}

/// The AWS clients of a run or a command, made in one place: one SDK config (region,
/// credentials, retries, timeouts), CloudFormation signed as [`CfnAuth`] says, and the
/// endpoints and HTTP client (a proxy) applied to each.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sdk: SdkConfig,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl Clients {
    pub fn new(
        sdk: SdkConfig,
        auth: CfnAuth,
        endpoints: &Endpoints,
        http: Option<SharedHttpClient>,
    ) -> Clients {
        let cloudformation = cloudformation_in(
            &sdk,
            auth,
            endpoints.cloudformation.as_deref(),
            http.clone(),
            None,
        );
        let mut ecs = aws_sdk_ecs::config::Builder::from(&sdk);
        let mut autoscaling = aws_sdk_autoscaling::config::Builder::from(&sdk);
        if let Some(u) = &endpoints.ecs {
            ecs = ecs.endpoint_url(u);
        }
        if let Some(u) = &endpoints.autoscaling {
            autoscaling = autoscaling.endpoint_url(u);
        }
        if let Some(h) = http {
            ecs = ecs.http_client(h.clone());
            autoscaling = autoscaling.http_client(h);
        }
        Clients {
            cloudformation,
            ecs: aws_sdk_ecs::Client::from_conf(ecs.build()),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(autoscaling.build()),
            sdk,
        }
    }

    /// The region the clients talk to.
    pub fn region(&self) -> String {
        self.sdk.region().map(|r| r.to_string()).unwrap_or_default()
    }

    /// The credentials of the ECS and Auto Scaling calls (checked before them, bounded).
    pub fn credentials(&self) -> Option<SharedCredentialsProvider> {
        self.sdk.credentials_provider()
    }
}

/// The CloudFormation client of [`Clients::new`]: `sdk`'s region, retries and timeouts, the
/// given authentication, optionally an endpoint (`-u`) and an HTTP client (a proxy); and
/// optionally its own SDK retry partition (`Some(name)`): the SDK keeps
/// its retry token bucket and adaptive rate limiter per process and partition, so clients in one
/// process share them unless each is given its own. A run has one CloudFormation client and
/// needs none; the fleet simulator (examples/fleet_sim.rs), whose clients stand for separate
/// instances, gives each its own.
pub fn cloudformation_in(
    sdk: &SdkConfig,
    auth: CfnAuth,
    endpoint: Option<&str>,
    http: Option<SharedHttpClient>,
    partition: Option<String>,
) -> aws_sdk_cloudformation::Client {
    let mut conf = aws_sdk_cloudformation::config::Builder::from(sdk);
    if let Some(p) = partition {
        conf = conf.retry_partition(aws_sdk_cloudformation::config::retry::RetryPartition::new(
            p,
        ));
    }
    conf = match auth {
        CfnAuth::Identity(source) => {
            identity_auth::mark_in_use();
            identity_auth::apply(conf, source)
        }
        CfnAuth::SigV4(Some(c)) => conf.credentials_provider(c),
        CfnAuth::SigV4(None) => conf,
    };
    if let Some(u) = endpoint {
        conf = conf.endpoint_url(u);
    }
    if let Some(h) = http {
        conf = conf.http_client(h);
    }
    aws_sdk_cloudformation::Client::from_conf(conf.build())
}

/// Whether an API error is an authorisation refusal (the role lacks the action).
pub fn is_denied(message: &str) -> bool {
    const DENIED: &[&str] = &[
        "AccessDenied",
        "UnauthorizedOperation",
        "not authorized to perform",
    ];
    DENIED.iter().any(|d| message.contains(d))
}

/// Whether a call failed before it was sent because no credentials could be had (the instance
/// role's endpoint failing or absent).
pub fn no_credentials<E, R>(err: &SdkError<E, R>) -> bool
where
    E: StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
    ) && error_chain(err).to_ascii_lowercase().contains("credential")
}

/// One attempt may take a twentieth of the run, between 2 and 10 seconds: a stalled connection
/// is abandoned and retried while there is still time for several more attempts.
pub fn attempt_timeout(deadline: Duration) -> Duration {
    (deadline / 20).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// For an authorisation error, the IAM action the instance role is missing: `api` is named as
/// IAM names it (`cloudformation:DescribeStackResource`).
pub fn iam_hint(api: &str, message: &str) -> String {
    if api.starts_with("cloudformation:") && identity_auth::in_use() {
        // No role was asked: CloudFormation judged the instance identity (a bad signature,
        // or an instance that is not a member of the stack).
        if is_denied(message) || message.contains("Signature") || message.contains("CFN_V1") {
            return " (CloudFormation refused the instance identity signature: the instance must be a member of the stack; or sign with a role's credentials: --role NAME)".into();
        }
        return String::new();
    }
    if api.contains(':') && is_denied(message) {
        format!(" (the instance role lacks {api}: add it to the role's policy)")
    } else {
        String::new()
    }
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

/// For `map_err` on an SDK call: the [`crate::error::Error::Aws`] naming `api` (as IAM names it)
/// and what [`describe_sdk_error`] makes of the failure.
pub fn api_error<E, R>(api: &'static str) -> impl FnOnce(SdkError<E, R>) -> crate::error::Error
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    move |e| crate::error::Error::Aws {
        api,
        message: describe_sdk_error(&e),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_names_the_missing_action() {
        let h = iam_hint(
            "cloudformation:DescribeStackResource",
            "AccessDenied: User: arn:aws:sts::1:assumed-role/r/i is not authorized to perform: cloudformation:DescribeStackResource",
        );
        assert!(
            h.contains("lacks cloudformation:DescribeStackResource"),
            "{h}"
        );
        assert_eq!(
            iam_hint(
                "ecs:DescribeContainerInstances",
                "Throttling: Rate exceeded"
            ),
            ""
        );
    }

    #[tokio::test]
    async fn clients_call_the_endpoints_they_are_given() {
        let server = crate::test_http::Server::answering(|_| {
            crate::test_http::Response::new(400, "text/plain", "")
        });
        let url = &server.url;
        let keys = aws_credential_types::Credentials::new("AKID", "secret", None, None, "test");
        // Keys, so that no call looks for credentials (in IMDS) before it is sent.
        let sdk = sdk_config("eu-west-3")
            .await
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(keys.clone()))
            .build();
        let endpoints = Endpoints {
            cloudformation: Some(format!("{url}/cfn")),
            ecs: Some(format!("{url}/ecs")),
            autoscaling: Some(format!("{url}/asg")),
        };
        let aws = Clients::new(sdk, CfnAuth::from_flags(Some(keys), None), &endpoints, None);
        assert_eq!(aws.region(), "eu-west-3");
        let _ = aws
            .cloudformation
            .describe_stack_resource()
            .stack_name("s")
            .logical_resource_id("r")
            .send()
            .await;
        let _ = aws.ecs.describe_clusters().clusters("c").send().await;
        let _ = aws
            .autoscaling
            .describe_auto_scaling_instances()
            .send()
            .await;
        let seen: Vec<String> = server
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        for path in ["POST /cfn", "POST /ecs", "POST /asg"] {
            assert!(seen.iter().any(|s| s.starts_with(path)), "{path}: {seen:?}");
        }
    }

    #[test]
    fn attempt_timeouts_scale_with_the_deadline() {
        assert_eq!(
            attempt_timeout(Duration::from_secs(840)),
            Duration::from_secs(10)
        );
        assert_eq!(
            attempt_timeout(Duration::from_secs(10)),
            Duration::from_secs(2)
        );
        assert_eq!(
            attempt_timeout(Duration::from_secs(60)),
            Duration::from_secs(3)
        );
    }
}
