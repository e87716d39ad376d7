//! Step 1: who and where this instance is, from the IMDSv2 instance identity document.
//!
//! One document answers everything the boot sequence needs (instance id, region, zone, type,
//! account), so this is one token PUT and one GET. aws-config's IMDS client holds the token and
//! reuses it, refuses IMDSv1, and honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const IDENTITY_DOCUMENT: &str = "/latest/dynamic/instance-identity/document";
const IDENTITY_SIGNATURE: &str = "/latest/dynamic/instance-identity/signature";

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
pub const UNBOUNDED_CALLER_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

pub async fn from_imds() -> Result<Identity> {
    let doc = crate::aws::imds::shared()
        .get_within(IDENTITY_DOCUMENT, UNBOUNDED_CALLER_LIMIT)
        .await?;
    parse_document(&doc)
}

/// What a run needs to know and to prove who it is: the identity, and the document with its
/// signature for CloudFormation's identity signing ([`crate::aws::identity_auth`]). Read once, at
/// the start: from then on a FAILURE signal needs nothing else from IMDS.
pub async fn with_proof(
    imds: &crate::aws::imds::Imds,
    opts: crate::aws::imds::ImdsOptions,
) -> Result<(Identity, Proof)> {
    imds.set_options(opts);
    let proof = Proof::read(imds).await?;
    Ok((parse_document(&proof.document)?, proof))
}

/// The instance identity document and its signature, exactly as IMDS serves them (trailing
/// blanks removed, as cfn-bootstrap does: `cfnbootstrap/util.py:305-320@25fabe91`).
///
/// Whoever holds the pair can read and signal this instance's stack, so it is treated as a
/// credential: `Debug` prints neither part, and it is only ever written to the 0600 hand-off
/// file.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proof {
    pub document: String,
    pub signature: String,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proof(<instance identity document and signature>)")
    }
}

impl Proof {
    /// From the process's IMDS client, with these options.
    pub async fn from_imds(opts: crate::aws::imds::ImdsOptions) -> Result<Proof> {
        let document = crate::aws::imds::get(IDENTITY_DOCUMENT, opts).await?;
        let signature = crate::aws::imds::get(IDENTITY_SIGNATURE, opts).await?;
        Proof::new(document, signature)
    }

    /// From `imds`, with the options it was given (a run's client: [`with_proof`]).
    async fn read(imds: &crate::aws::imds::Imds) -> Result<Proof> {
        let document = imds.get(IDENTITY_DOCUMENT).await?;
        let signature = imds.get(IDENTITY_SIGNATURE).await?;
        Proof::new(document, signature)
    }

    fn new(document: String, signature: String) -> Result<Proof> {
        let signature = signature.trim_end().to_string();
        if signature.is_empty() {
            return Err(Error::Imds {
                path: IDENTITY_SIGNATURE.into(),
                message: "empty signature".into(),
            });
        }
        Ok(Proof {
            document: document.trim_end().to_string(),
            signature,
        })
    }

    /// The `Authorization` header value of CloudFormation's identity signing:
    /// `CFN_V1 <base64(document)>:<signature without newlines>`
    /// (`cfnbootstrap/aws_client.py:50-65@25fabe91`, `CFNSigner`).
    pub fn authorization(&self) -> String {
        use base64::Engine;
        let doc = base64::engine::general_purpose::STANDARD.encode(self.document.as_bytes());
        let sig: String = self
            .signature
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        format!("CFN_V1 {doc}:{sig}")
    }
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
    fn identity_authorization_is_cfn_v1() {
        let p = Proof::new("{\"a\":1}\n".into(), "QUJD\nREVG\n".into()).unwrap();
        // base64('{"a":1}') = eyJhIjoxfQ==; the signature's line breaks removed.
        assert_eq!(p.authorization(), "CFN_V1 eyJhIjoxfQ==:QUJDREVG");
        assert!(!format!("{p:?}").contains("QUJD"));
        assert!(Proof::new("{}".into(), "\n".into()).is_err());
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
