//! Credentials for the SigV4 calls (ECS, Auto Scaling; CloudFormation only when a role or keys
//! are named): the environment's keys, else the instance profile role's, read through the
//! process's one IMDS client (src/imds.rs) with its retry and timeout rules.
//!
//! aws-config's own IMDS credentials provider has a client of its own, with 1 s connect and
//! read timeouts (`aws/rust-runtime/aws-config/src/imds/client.rs:53-55@56ee88c5`) and a second
//! IMDSv2 token: measured, credentials served 1.2 s late failed the call
//! (`../shared/reference.md` §7). This one waits as long as the caller's bound allows.

use std::time::SystemTime;

use aws_credential_types::provider::{
    self, error::CredentialsError, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;

use crate::error::Error;

const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const LOAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The instance profile's role (`None`: whichever role the profile has, as the SDK does), or a
/// named one (cfn-init's `--role`, an Authentication `roleName`).
///
/// Clones share what was loaded: the run's optional calls first check that credentials can be
/// had (outside the SDK, bounded) and the SDK then asks again for the call itself; both get the
/// one IMDS read, until five minutes before the credentials expire.
#[derive(Debug, Clone, Default)]
pub struct InstanceRole {
    pub role: Option<String>,
    loaded: std::sync::Arc<std::sync::Mutex<Option<Credentials>>>,
}

/// Credentials this close to their expiry are read again.
const REFRESH_BEFORE: std::time::Duration = std::time::Duration::from_secs(300);

impl InstanceRole {
    pub fn named(role: &str) -> Self {
        InstanceRole {
            role: Some(role.to_string()),
            ..InstanceRole::default()
        }
    }

    pub async fn load(&self) -> Result<Credentials, Error> {
        let cached = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|c| {
                c.expiry().is_none_or(|e| {
                    e.duration_since(SystemTime::now())
                        .is_ok_and(|left| left > REFRESH_BEFORE)
                })
            });
        if let Some(c) = cached {
            return Ok(c);
        }
        let fresh = self.read().await?;
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    async fn read(&self) -> Result<Credentials, Error> {
        let imds = crate::aws::imds::shared();
        let role = match &self.role {
            Some(r) => r.clone(),
            None => {
                let list = imds.get(CREDENTIALS_PATH).await?;
                list.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| Error::Imds {
                        path: CREDENTIALS_PATH.into(),
                        message: "the instance profile has no role".into(),
                    })?
            }
        };
        let path = format!("{CREDENTIALS_PATH}{role}");
        let doc = imds.get(&path).await?;
        parse(&doc, &role).map_err(|message| Error::Imds { path, message })
    }
}

/// The credentials document (`{"Code":"Success","AccessKeyId":...,"Expiration":...}`). Its
/// text holds secrets: it never goes into a message.
fn parse(doc: &str, role: &str) -> Result<Credentials, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Doc {
        code: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        token: Option<String>,
        expiration: Option<String>,
    }
    let d: Doc = serde_json::from_str(doc).map_err(|_| "not a credentials document".to_string())?;
    if let Some(code) = d.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!(
            "the credentials of role {role} are not available (Code {code})"
        ));
    }
    let (Some(id), Some(secret)) = (d.access_key_id, d.secret_access_key) else {
        return Err("the credentials document has no AccessKeyId/SecretAccessKey".into());
    };
    let expiry = d.expiration.as_deref().and_then(|e| {
        aws_smithy_types::DateTime::from_str(e, aws_smithy_types::date_time::Format::DateTime)
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok())
    });
    Ok(Credentials::new(
        id,
        secret,
        d.token,
        expiry,
        "ecs-bootstrap instance role",
    ))
}

impl ProvideCredentials for InstanceRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            // Only the optional SigV4 calls need these (CloudFormation is identity-signed): an
            // endpoint that does not answer within this is reported, and the caller degrades,
            // rather than holding the run until its deadline.
            let loaded = tokio::time::timeout(LOAD_LIMIT, self.load())
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Imds {
                        path: CREDENTIALS_PATH.into(),
                        message: format!(
                            "the instance role's credentials did not come within {}s",
                            LOAD_LIMIT.as_secs()
                        ),
                    })
                });
            loaded.map_err(|e| match e {
                // No instance profile at all: the chain may try something else.
                Error::Imds { ref message, .. } if message.contains("404") => {
                    CredentialsError::not_loaded(e.to_string())
                }
                _ => CredentialsError::provider_error(e.to_string()),
            })
        })
    }
}

/// Whether credentials can be had from `provider` (the run's optional calls ask before the SDK
/// call, where a failing endpoint would be retried attempt after attempt): `Err` says why not.
pub async fn available(provider: Option<&SharedCredentialsProvider>) -> Result<(), String> {
    match provider {
        Some(p) => p
            .provide_credentials()
            .await
            .map(|_| ())
            .map_err(|e| crate::aws::error_chain(&e)),
        None => Ok(()),
    }
}

/// What a run signs its SigV4 calls with: the environment's keys, then the shared
/// credentials/config files (a user's choice, or a test's), then the instance role — the SDK's
/// order, with its IMDS part replaced by [`InstanceRole`]. No SSO or web identity: at boot there
/// is none.
pub fn run_chain() -> SharedCredentialsProvider {
    use aws_config::environment::EnvironmentVariableCredentialsProvider;
    use aws_config::meta::credentials::CredentialsProviderChain;
    use aws_config::profile::ProfileFileCredentialsProvider;
    SharedCredentialsProvider::new(
        CredentialsProviderChain::first_try(
            "Environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", ProfileFileCredentialsProvider::builder().build())
        .or_else("InstanceRole", InstanceRole::default()),
    )
}

/// The SDK's whole chain (a laptop's profile for `--dry-run --stack`, SSO, web identity), its
/// IMDS part through this process's IMDS client and token: for the commands without a run
/// ([`crate::aws::sdk_config`]) and S3 downloads without named credentials.
pub async fn default_chain(
    region: &str,
) -> aws_config::default_provider::credentials::DefaultCredentialsChain {
    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .imds_client(crate::aws::imds::shared().sdk_client())
        .region(aws_config::Region::new(region.to_string()))
        .build()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_imds_credentials_document() {
        let c = parse(
            r#"{"Code":"Success","LastUpdated":"2026-12-07T10:00:00Z","Type":"AWS-HMAC",
               "AccessKeyId":"ASIA1","SecretAccessKey":"s3cr3t","Token":"tok",
               "Expiration":"2026-12-07T16:00:00Z"}"#,
            "r",
        )
        .unwrap();
        assert_eq!(c.access_key_id(), "ASIA1");
        assert_eq!(c.secret_access_key(), "s3cr3t");
        assert_eq!(c.session_token(), Some("tok"));
        assert!(c.expiry().is_some());
        let e = parse(r#"{"Code":"AssumeRoleUnauthorizedAccess"}"#, "r").unwrap_err();
        assert!(e.contains("AssumeRoleUnauthorizedAccess"), "{e}");
        let e = parse("AccessKeyId=ASIA1 secret", "r").unwrap_err();
        assert!(!e.contains("ASIA1"), "{e}");
    }
}
