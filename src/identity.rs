//! Step 1: who and where this instance is, from the IMDSv2 instance identity document.
//!
//! One document answers everything the boot sequence needs (instance id, region, zone, type,
//! account), so this is one token PUT and one GET. aws-config's IMDS client holds the token and
//! reuses it, refuses IMDSv1, and honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const IDENTITY_DOCUMENT: &str = "/latest/dynamic/instance-identity/document";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_type: String,
    pub account_id: String,
}

impl Identity {
    /// The identity a dry run pretends to have: obviously fake, but shaped like the real thing
    /// so the plan reads like the one an instance would print.
    pub fn fake(region: &str) -> Self {
        Identity {
            instance_id: "i-0123456789abcdef0".into(),
            region: region.into(),
            availability_zone: format!("{region}a"),
            instance_type: "t3.small".into(),
            account_id: "123456789012".into(),
        }
    }
}

/// For callers without a run deadline (dry run, `signal`, `get-metadata`): off EC2 they must
/// answer in seconds, not wait for an IMDS that will never come.
const UNBOUNDED_CALLER_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

pub async fn from_imds() -> Result<Identity> {
    match tokio::time::timeout(
        UNBOUNDED_CALLER_LIMIT,
        from_imds_with(crate::imds::ImdsOptions::default()),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(Error::Imds {
            path: IDENTITY_DOCUMENT.into(),
            message: format!(
                "no answer within {}s (not on EC2, or IMDS unreachable)",
                UNBOUNDED_CALLER_LIMIT.as_secs()
            ),
        }),
    }
}

/// Waits for IMDS as long as the caller's bound allows (see [`crate::imds::get`]): an IMDS that
/// is still coming up at boot is waited for, a revoked token is replaced.
pub async fn from_imds_with(opts: crate::imds::ImdsOptions) -> Result<Identity> {
    let doc = crate::imds::get(IDENTITY_DOCUMENT, opts).await?;
    parse_document(&doc)
}

fn parse_document(doc: &str) -> Result<Identity> {
    let id: Identity = serde_json::from_str(doc).map_err(|e| Error::Imds {
        path: IDENTITY_DOCUMENT.into(),
        message: format!("not a valid identity document: {e}"),
    })?;
    for (key, value) in [
        ("instanceId", &id.instance_id),
        ("region", &id.region),
        ("accountId", &id.account_id),
    ] {
        if value.trim().is_empty() {
            return Err(Error::Imds {
                path: IDENTITY_DOCUMENT.into(),
                message: format!("identity document has an empty {key}"),
            });
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_identity_document() {
        let doc = r#"{"accountId":"111122223333","architecture":"x86_64","availabilityZone":"eu-west-1b",
            "imageId":"ami-1","instanceId":"i-abc","instanceType":"m5.large","region":"eu-west-1",
            "privateIp":"10.0.0.1","version":"2017-09-30"}"#;
        let id = parse_document(doc).unwrap();
        assert_eq!(id.instance_id, "i-abc");
        assert_eq!(id.region, "eu-west-1");
        assert_eq!(id.availability_zone, "eu-west-1b");
        assert_eq!(id.instance_type, "m5.large");
        assert_eq!(id.account_id, "111122223333");
    }

    #[test]
    fn rejects_a_broken_document() {
        let e = parse_document("{}").unwrap_err().to_string();
        assert!(e.contains("instance-identity/document"), "{e}");
        let e = parse_document(r#"{"accountId":"1","availabilityZone":"a","instanceId":" ","instanceType":"t","region":"r"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("instanceId"), "{e}");
    }
}
