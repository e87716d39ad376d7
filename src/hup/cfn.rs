//! The daemon's only AWS call, DescribeStackResource, and the client it goes through: the
//! drop-ins' (`cli::dropin::cfn_client`), itself made by the one factory, `aws::Clients`.
//!
//! Signing follows `cfn-hup.conf` (update_hooks.py:55-66@25fabe91): `role` = SigV4 with that
//! instance-profile role's credentials from IMDS; `credential-file` = SigV4 with the file's keys
//! (read with the drop-ins' parser, `cli::dropin::CredentialArgs`); neither = the instance
//! identity (CFN_V1), as `ecs-bootstrap run` and cfn-hup itself. `url` overrides the endpoint.
//! Throttling and 5xx answers are retried by the SDK's standard retry mode
//! ([`crate::aws::sdk_config`]: exponential backoff with jitter), as the drop-ins' calls are.

use std::path::Path;

use super::conf::{CredentialSource, Main};
use super::rules::{Resource, Timestamp};
use crate::error::{Error, Result};

const API: &str = "cloudformation:DescribeStackResource";

/// A CloudFormation client for `main`'s stack. `root` maps the credential file (`--root`).
pub struct Cfn {
    client: aws_sdk_cloudformation::Client,
    stack: String,
}

/// How `main` asks the calls to be signed.
pub fn auth(main: &Main, root: &Path) -> Result<crate::aws::CfnAuth> {
    let creds = crate::cli::dropin::CredentialArgs {
        credential_file: match &main.credentials {
            CredentialSource::File(f) => Some(crate::sys::fs::Root::new(root).map(f)?),
            _ => None,
        },
        role: match &main.credentials {
            CredentialSource::Role(r) => Some(r.clone()),
            _ => None,
        },
        ..Default::default()
    };
    creds.auth()
}

impl Cfn {
    pub async fn new(main: &Main, root: &Path) -> Result<Cfn> {
        let client = crate::cli::dropin::cfn_client(
            &main.region,
            main.url.as_deref(),
            auth(main, root)?,
            crate::cli::dropin::proxy::Proxies::default(),
        )
        .await?;
        Ok(Cfn {
            client,
            stack: main.stack.clone(),
        })
    }

    /// The zero-config mode's client: `stack` in `region`, signed as `auth` says.
    pub async fn for_stack(stack: &str, region: &str, auth: crate::aws::CfnAuth) -> Result<Cfn> {
        let client = crate::cli::dropin::cfn_client(
            region,
            None,
            auth,
            crate::cli::dropin::proxy::Proxies::default(),
        )
        .await?;
        Ok(Cfn {
            client,
            stack: stack.to_string(),
        })
    }
}

/// One resource's description: the poll's seam, so that tests can answer without AWS.
pub trait Describe {
    fn describe(
        &self,
        logical_id: &str,
    ) -> impl std::future::Future<Output = Result<Resource>> + Send;
}

impl Describe for Cfn {
    async fn describe(&self, logical_id: &str) -> Result<Resource> {
        let out = self
            .client
            .describe_stack_resource()
            .stack_name(&self.stack)
            .logical_resource_id(logical_id)
            .send()
            .await
            .map_err(crate::aws::api_error(API))?;
        let d = out.stack_resource_detail().ok_or_else(|| Error::Aws {
            api: API,
            message: "the answer has no StackResourceDetail".into(),
        })?;
        resource(
            d.resource_status().map(|s| s.as_str().to_string()),
            d.metadata(),
            d.physical_resource_id(),
            d.last_updated_timestamp()
                .map(|t| Timestamp::from_secs_nanos(t.secs(), t.subsec_nanos())),
            &format!("{}/{logical_id}.Metadata", self.stack),
        )
    }
}

/// cfn_client.py:230-247: `json.loads(Metadata)` when it is not empty. Bounded as the boot
/// run's Metadata is.
pub fn resource(
    status: Option<String>,
    metadata: Option<&str>,
    physical_id: Option<&str>,
    last_updated: Option<Timestamp>,
    what: &str,
) -> Result<Resource> {
    let metadata = match metadata {
        Some(m) if m.len() > crate::boot::metadata::MAX_METADATA_BYTES => {
            return Err(Error::invalid(what, "is larger than ecs-bootstrap accepts"))
        }
        Some(m) if !m.is_empty() => Some(
            serde_json::from_str(m)
                .map_err(|e| Error::invalid(what, format!("is not valid JSON: {e}")))?,
        ),
        _ => None,
    };
    Ok(Resource {
        status,
        metadata,
        physical_id: physical_id.map(str::to_string),
        last_updated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_decoded_when_present() {
        let r = resource(
            Some("UPDATE_COMPLETE".into()),
            Some("{\"a\": 1}"),
            None,
            None,
            "x",
        )
        .unwrap();
        assert_eq!(r.metadata, Some(serde_json::json!({"a": 1})));
        assert!(resource(None, Some(""), None, None, "x")
            .unwrap()
            .metadata
            .is_none());
        let e = resource(None, Some("{"), None, None, "S/R.Metadata").unwrap_err();
        assert!(e.to_string().contains("S/R.Metadata"), "{e}");
    }
}
