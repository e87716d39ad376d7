//! Drop-in replacements for the aws-cfn-bootstrap helpers: `ecs-bootstrap signal`
//! (cfn-signal), `ecs-bootstrap get-metadata` (cfn-get-metadata), and the argv[0] dispatch
//! that makes a `cfn-X` symlink to the binary behave as `ecs-bootstrap X`, so UserData written
//! for `/opt/aws/bin/cfn-init ...; /opt/aws/bin/cfn-signal -e $? ...` works unchanged.

pub mod argv0;
pub mod get_metadata;
pub mod signal_cmd;

/// Region for a helper command: `--region`, else this instance's (IMDS), else
/// `AWS_REGION`, else us-east-1 (the cfn helpers' default).
pub async fn region(flag: Option<&str>) -> String {
    if let Some(r) = flag {
        return r.to_string();
    }
    if let Some(r) = imds_get("/latest/meta-data/placement/region").await {
        return r;
    }
    if let Some(r) = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()) {
        return r;
    }
    tracing::warn!("no --region, and none from IMDS or AWS_REGION: using us-east-1");
    "us-east-1".to_string()
}

/// One IMDS value, or None (logged) when IMDS cannot answer.
pub async fn imds_get(path: &str) -> Option<String> {
    match quick_imds().get(path).await {
        Ok(v) => Some(String::from(v)).filter(|v| !v.trim().is_empty()),
        Err(e) => {
            tracing::debug!(path, error = %crate::aws::error_chain(&e), "IMDS did not answer");
            None
        }
    }
}

/// IMDS with short timeouts: off EC2 the helpers must answer in seconds, not minutes.
pub fn quick_imds() -> aws_config::imds::Client {
    aws_config::imds::Client::builder()
        .max_attempts(2)
        .connect_timeout(std::time::Duration::from_secs(1))
        .read_timeout(std::time::Duration::from_secs(2))
        .build()
}

/// A CloudFormation client for `region`, at `--url` when given (cfn-signal's `-u/--url`).
pub async fn cfn_client(region: &str, url: Option<&str>) -> aws_sdk_cloudformation::Client {
    let sdk = crate::aws::sdk_config(region).await;
    let mut conf = aws_sdk_cloudformation::config::Builder::from(&sdk);
    if let Some(u) = url {
        conf = conf.endpoint_url(u);
    }
    aws_sdk_cloudformation::Client::from_conf(conf.build())
}
