//! Drop-in replacements for the aws-cfn-bootstrap helpers: `ecs-bootstrap signal`
//! (cfn-signal), `ecs-bootstrap get-metadata` (cfn-get-metadata), and the argv[0] dispatch
//! that makes a `cfn-X` symlink to the binary behave as `ecs-bootstrap X`, so UserData written
//! for `/opt/aws/bin/cfn-init ...; /opt/aws/bin/cfn-signal -e $? ...` works unchanged.

use std::path::PathBuf;

use aws_credential_types::Credentials;
use clap::Args;

use crate::error::{Error, Result};

pub mod argv0;
pub mod get_metadata;
pub mod proxy;
pub mod signal_cmd;

/// Region for a helper command, by the one rule ([`crate::aws::region`]); IMDS is asked only
/// for a few seconds.
pub async fn region(flag: Option<&str>) -> String {
    crate::aws::region::resolve(
        flag,
        crate::aws::region::Instance::Imds(crate::boot::identity::UNBOUNDED_CALLER_LIMIT),
    )
    .await
    .0
}

/// One IMDS value, or None (logged) when IMDS cannot answer within a few seconds: off EC2 the
/// helpers must answer in seconds, not minutes.
pub async fn imds_get(path: &str) -> Option<String> {
    match crate::aws::imds::shared()
        .get_within(path, crate::boot::identity::UNBOUNDED_CALLER_LIMIT)
        .await
    {
        Ok(v) => Some(v).filter(|v| !v.trim().is_empty()),
        Err(e) => {
            tracing::debug!(path, error = %e, "IMDS did not answer");
            None
        }
    }
}

/// The cfn helpers' credential flags (`cfnbootstrap/util.py:433-464@25fabe91`). Without them,
/// CloudFormation calls are signed with the instance identity, as the helpers do.
#[derive(Debug, Args, Clone, Default)]
pub struct CredentialArgs {
    /// Access key id (with --secret-key), instead of the instance role.
    #[arg(long, value_name = "KEY", requires = "secret_key")]
    pub access_key: Option<String>,
    /// Secret key (with --access-key). Visible in `ps`: prefer the role or -f.
    #[arg(long, value_name = "SECRET", requires = "access_key")]
    pub secret_key: Option<String>,
    /// File with `AWSAccessKeyId=...` and `AWSSecretKey=...` lines.
    #[arg(
        short = 'f',
        long = "credential-file",
        value_name = "FILE",
        conflicts_with = "access_key"
    )]
    pub credential_file: Option<PathBuf>,
    /// Sign with this instance-profile role's credentials (from IMDS) instead of the instance
    /// identity.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
}

impl CredentialArgs {
    /// How CloudFormation calls are signed, by cfn-init's rule: named keys (flags, then the
    /// file), else the named role, else the instance identity.
    pub fn auth(&self) -> Result<crate::aws::CfnAuth> {
        Ok(crate::aws::CfnAuth::from_flags(
            self.credentials()?,
            self.role.as_deref(),
        ))
    }

    pub fn credentials(&self) -> Result<Option<Credentials>> {
        if let (Some(ak), Some(sk)) = (&self.access_key, &self.secret_key) {
            return Ok(Some(Credentials::new(ak, sk, None, None, "command line")));
        }
        let Some(path) = &self.credential_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let (ak, sk) = parse_credential_file(&text).ok_or_else(|| {
            // The file's content is secret: only its name goes into the message.
            Error::Usage(format!(
                "{}: needs AWSAccessKeyId=... and AWSSecretKey=... lines",
                path.display()
            ))
        })?;
        Ok(Some(Credentials::new(
            ak,
            sk,
            None,
            None,
            "credential file",
        )))
    }
}

fn parse_credential_file(text: &str) -> Option<(String, String)> {
    let get = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Some((get("AWSAccessKeyId")?, get("AWSSecretKey")?))
}

/// A CloudFormation client for `region`, at `--url` when given (cfn-signal's `-u/--url`),
/// through the proxy for that endpoint's scheme when one is given.
pub async fn cfn_client(
    region: &str,
    url: Option<&str>,
    auth: crate::aws::CfnAuth,
    proxies: proxy::Proxies<'_>,
) -> Result<aws_sdk_cloudformation::Client> {
    let http_client = proxies.sdk_client(url)?;
    let sdk = crate::aws::sdk_config(region).await;
    tracing::debug!(signing = auth.describe(), "CloudFormation calls");
    let endpoints = crate::aws::Endpoints {
        cloudformation: url.map(str::to_string),
        ..Default::default()
    };
    Ok(crate::aws::Clients::new(sdk, auth, &endpoints, http_client).cloudformation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_file() {
        assert_eq!(
            parse_credential_file("AWSAccessKeyId=AKIA1\nAWSSecretKey = s/k=\n"),
            Some(("AKIA1".into(), "s/k=".into()))
        );
        assert_eq!(parse_credential_file("AWSAccessKeyId=AKIA1\n"), None);
    }
}
