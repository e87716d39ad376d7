//! `ecs-bootstrap get-metadata`: cfn-get-metadata's command line. Prints a resource's Metadata
//! (or the part under `-k a.b.c`) as JSON.
//!
//! Unlike cfn-get-metadata, the secrets of `AWS::CloudFormation::Authentication` (keys,
//! passwords) are printed as `<redacted>`: this output usually lands in the console log.

use clap::Args;
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Args, Clone)]
pub struct GetMetadataArgs {
    /// Stack name or id.
    #[arg(short = 's', long, value_name = "NAME")]
    pub stack: String,
    /// Logical id of the resource whose Metadata is read.
    #[arg(short = 'r', long, value_name = "LOGICAL_ID")]
    pub resource: String,
    /// Region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION, else this instance's).
    #[arg(long)]
    pub region: Option<String>,
    /// CloudFormation endpoint URL.
    #[arg(short = 'u', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Print only the value under this dotted key (e.g. `AWS::CloudFormation::Init.config`).
    #[arg(short = 'k', long = "key", value_name = "A.B.C")]
    pub key: Option<String>,
    #[command(flatten)]
    pub credentials: super::CredentialArgs,
    /// More log detail.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

pub async fn run(args: &GetMetadataArgs) -> Result<String> {
    let region = super::region(args.region.as_deref()).await;
    let cfn = super::cfn_client(
        &region,
        args.url.as_deref(),
        args.credentials.auth()?,
        super::proxy::Proxies::default(),
    )
    .await?;
    let m = crate::boot::metadata::from_stack(&cfn, &args.stack, &args.resource).await?;
    let value = redact(m.metadata);
    let value = match &args.key {
        Some(k) => lookup(&value, k)
            .ok_or_else(|| {
                Error::invalid(
                    format!("{}/{}.Metadata.{k}", args.stack, args.resource),
                    "no such key in the Metadata",
                )
            })?
            .clone(),
        None => value,
    };
    Ok(serde_json::to_string_pretty(&value).expect("JSON always serialises") + "\n")
}

/// Follows a dotted key. Keys may contain dots themselves (`/etc/app.conf`), so at each level
/// the longest key that matches wins.
pub fn lookup<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    if key.is_empty() {
        return Some(v);
    }
    let map = v.as_object()?;
    if let Some(x) = map.get(key) {
        return Some(x);
    }
    let dots: Vec<usize> = key.match_indices('.').map(|(i, _)| i).collect();
    dots.iter()
        .rev()
        .filter_map(|&i| map.get(&key[..i]).and_then(|x| lookup(x, &key[i + 1..])))
        .next()
}

/// The Metadata as printed: every value under a secret key (the Authentication keys and
/// passwords, `ECS_ENGINE_AUTH_DATA`, tokens; see [`crate::sys::redact`]) replaced, and the
/// `user:password@` of every URL (a proxy).
pub fn redact(v: Value) -> Value {
    crate::sys::redact::for_display(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::auth;
    use serde_json::json;

    #[test]
    fn dotted_keys_with_dots_in_names() {
        let v = json!({"AWS::CloudFormation::Init": {"config": {"files": {"/etc/app.conf": {"mode": "000644"}}}}});
        assert_eq!(
            lookup(
                &v,
                "AWS::CloudFormation::Init.config.files./etc/app.conf.mode"
            ),
            Some(&json!("000644"))
        );
        assert!(lookup(&v, "AWS::CloudFormation::Init.nope").is_none());
        assert_eq!(lookup(&v, ""), Some(&v));
    }

    #[test]
    fn authentication_secrets_are_redacted() {
        let v = redact(
            json!({auth::BLOCK: {"a": {"type": "basic", "username": "u", "password": "p4ss"},
                                            "b": {"type": "S3", "accessKeyId": "AKIA1", "secretKey": "sk"}}}),
        );
        let text = v.to_string();
        assert!(
            !text.contains("p4ss") && !text.contains("AKIA1") && !text.contains("\"sk\""),
            "{text}"
        );
        assert!(text.contains("\"username\":\"u\""), "{text}");
    }

    #[test]
    fn agent_secrets_and_proxy_passwords_are_redacted() {
        let v = redact(json!({"ecs-bootstrap": {
            "Proxy": "http://u:proxy-pw@p:3128",
            "AgentConfig": {"ECS_ENGINE_AUTH_DATA": {"https://r": {"auth": "dXNlcjpw"}},
                            "ECS_LOGLEVEL": "info"}}}));
        let text = v.to_string();
        assert!(
            !text.contains("proxy-pw") && !text.contains("dXNlcjpw"),
            "{text}"
        );
        assert!(
            text.contains("ECS_LOGLEVEL") && text.contains("@p:3128"),
            "{text}"
        );
    }
}
