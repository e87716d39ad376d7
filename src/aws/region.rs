//! The one rule for the region every command talks to:
//!
//! 1. `--region`, as the cfn helpers (`--region`, `cfnbootstrap` `bin/cfn-init:50-51`,
//!    `bin/cfn-signal:62-63`, `bin/cfn-get-metadata:41-42@25fabe91`);
//! 2. `AWS_REGION`, then `AWS_DEFAULT_REGION`: the AWS SDKs' and CLI's variables, which a
//!    workstation sets and which win over an instance's own region there too;
//! 3. the instance's region: its identity document when it was read already, else IMDS
//!    (`placement/region`), for commands that run on an instance;
//! 4. `us-east-1`, the cfn helpers' `--region` default (same lines as 1).
//!
//! The endpoint follows from the region (`cloudformation.<region>.amazonaws.com`, as
//! `CloudFormationClient.endpointForRegion`, `cfnbootstrap/cfn_client.py:89-92@25fabe91`) unless
//! `-u` or the SDK's `AWS_ENDPOINT_URL*` variables name one ([`crate::aws::Clients`]).

use std::time::Duration;

/// The cfn helpers' `--region` default.
pub const DEFAULT: &str = "us-east-1";

/// What the caller knows of the instance it runs on.
#[derive(Debug, Clone, Copy)]
pub enum Instance<'a> {
    /// The identity document's region (read already).
    Known(&'a str),
    /// Ask IMDS, for at most this long (off EC2 there is no answer to wait for).
    Imds(Duration),
    /// Not an instance, or IMDS must not be asked (`--dry-run --template`: no AWS at all).
    Unknown,
}

/// Where the region came from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    AwsRegion,
    AwsDefaultRegion,
    IdentityDocument,
    Imds,
    Default,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Flag => "--region",
            Source::AwsRegion => "AWS_REGION",
            Source::AwsDefaultRegion => "AWS_DEFAULT_REGION",
            Source::IdentityDocument => "the instance identity document",
            Source::Imds => "IMDS (placement/region)",
            Source::Default => "the cfn helpers' default",
        }
    }
}

/// The region by the rule above, and where it came from (logged).
pub async fn resolve(flag: Option<&str>, instance: Instance<'_>) -> (String, Source) {
    // Without an instance to ask (a dry run from a template, which talks to no AWS service),
    // the default is the expected answer, not a surprise, and the plan shows the region it was
    // made for: said at debug level only, so the dry run's stderr stays as it was.
    let offline = matches!(instance, Instance::Unknown);
    let (region, source) = pick(flag, env, instance).await;
    match source {
        Source::Default if offline => {
            tracing::debug!(region, from = source.describe(), "region")
        }
        Source::Default => tracing::warn!(
            region,
            "no --region, AWS_REGION or AWS_DEFAULT_REGION, and no instance region: using {DEFAULT}"
        ),
        _ => tracing::info!(region, from = source.describe(), "region"),
    }
    (region, source)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn pick(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    instance: Instance<'_>,
) -> (String, Source) {
    let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if let Some(r) = given(flag.map(str::to_string)) {
        return (r, Source::Flag);
    }
    if let Some(r) = given(env("AWS_REGION")) {
        return (r, Source::AwsRegion);
    }
    if let Some(r) = given(env("AWS_DEFAULT_REGION")) {
        return (r, Source::AwsDefaultRegion);
    }
    match instance {
        Instance::Known(r) => {
            if let Some(r) = given(Some(r.to_string())) {
                return (r, Source::IdentityDocument);
            }
        }
        Instance::Imds(limit) => {
            match crate::aws::imds::shared()
                .get_within("/latest/meta-data/placement/region", limit)
                .await
            {
                Ok(r) => {
                    if let Some(r) = given(Some(r)) {
                        return (r, Source::Imds);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "no region from IMDS"),
            }
        }
        Instance::Unknown => {}
    }
    (DEFAULT.to_string(), Source::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[tokio::test]
    async fn the_order_is_flag_env_instance_default() {
        let both = env_of(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-2"),
        ]);
        let known = Instance::Known("ap-south-1");
        assert_eq!(
            pick(Some("us-west-2"), &both, known).await,
            ("us-west-2".into(), Source::Flag)
        );
        assert_eq!(
            pick(None, &both, known).await,
            ("eu-west-1".into(), Source::AwsRegion)
        );
        let default_only = env_of(&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "eu-west-2")]);
        assert_eq!(
            pick(None, &default_only, known).await,
            ("eu-west-2".into(), Source::AwsDefaultRegion)
        );
        let none = env_of(&[]);
        assert_eq!(
            pick(None, &none, known).await,
            ("ap-south-1".into(), Source::IdentityDocument)
        );
        assert_eq!(
            pick(Some(" "), &none, Instance::Unknown).await,
            (DEFAULT.into(), Source::Default)
        );
    }
}
