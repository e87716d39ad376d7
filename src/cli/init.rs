//! `ecs-bootstrap init`: cfn-init's command line. Runs only the `AWS::CloudFormation::Init`
//! block (no `ecs-bootstrap:` block, no services, join or signal), read from the stack
//! (DescribeStackResource) or from a local metadata document (`-` for stdin), so a UserData
//! script that called `cfn-init` only changes the path of the binary.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::boot::metadata::{self, ResourceMetadata};
use crate::error::{AtStep, Error, Failure, Step};
use crate::init;
use crate::sys::fs::Root;

#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    /// Stack name or id (with --resource; or give a metadata file instead).
    #[arg(short = 's', long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Logical id of the resource whose Metadata holds the Init block.
    #[arg(short = 'r', long, value_name = "LOGICAL_ID")]
    pub resource: Option<String>,
    /// configSets to run, in order (default: `default`, or the `config` key).
    #[arg(short = 'c', long, value_delimiter = ',', value_name = "A,B")]
    pub configsets: Vec<String>,
    /// Region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION, the instance's region,
    /// else us-east-1 as cfn-init).
    #[arg(long)]
    pub region: Option<String>,
    /// CloudFormation endpoint URL.
    #[arg(short = 'u', long, value_name = "URL")]
    pub url: Option<String>,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// IAM role (of the instance profile) whose credentials to use, from IMDS.
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
    /// Access key id (with --secret-key).
    #[arg(long, value_name = "ID", requires = "secret_key")]
    pub access_key: Option<String>,
    /// Secret access key (with --access-key). Never logged.
    #[arg(long, value_name = "KEY", requires = "access_key")]
    pub secret_key: Option<Secret>,
    /// Proxy for an http:// CloudFormation endpoint.
    #[arg(long, value_name = "URL")]
    pub http_proxy: Option<String>,
    /// Proxy for the https:// CloudFormation endpoint.
    #[arg(long, value_name = "URL")]
    pub https_proxy: Option<String>,
    /// Write every file under DIR instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// How `files.context` templates render: chevron (cfn-init on Amazon Linux 2023) or
    /// pystache (cfn-init on Amazon Linux 2).
    #[arg(long, value_enum, value_name = "FLAVOUR", default_value = "chevron")]
    pub mustache: init::mustache::Flavour,
    /// An unknown key in the Init block is an error (exit 3) instead of a warning (cfn-init
    /// ignores unknown keys silently).
    #[arg(long)]
    pub strict: bool,
    /// A metadata document (the resource's Metadata, JSON or YAML) instead of a stack; `-` reads
    /// it from stdin.
    #[arg(value_name = "METADATA_FILE", conflicts_with_all = ["stack", "resource"])]
    pub metadata: Option<String>,
}

/// A value that must never reach a log: its Debug is redacted.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

pub async fn run(a: &InitArgs) -> Result<(), Failure> {
    let metadata = match (&a.metadata, &a.stack, &a.resource) {
        (Some(file), _, _) => from_file(file).at(Step::Metadata)?,
        (None, Some(stack), Some(resource)) => {
            let cfn = client(a).await.at(Step::Metadata)?;
            metadata::from_stack(&cfn, stack, resource)
                .await
                .at(Step::Metadata)?
        }
        _ => {
            return Err(Error::Usage(
                "init needs --stack and --resource, or a metadata file (`-` for stdin)".into(),
            ))
            .at(Step::Metadata)
        }
    };
    if metadata.metadata.get(init::BLOCK).is_none() {
        return Err(Error::invalid(
            &metadata.origin,
            format!("has no {} block", init::BLOCK),
        ))
        .at(Step::Metadata);
    }
    // As a run does: a failing command's output, and init.json, must not show them.
    crate::sys::redact::register_from_metadata(&metadata.metadata);
    let keys = crate::input::Keys::cfn_init(a.strict);
    let plan = init::parse(&metadata.metadata, &a.configsets, keys).at(Step::Init)?;
    tracing::info!(origin = %metadata.origin, configs = ?plan.configs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), "running Init");
    init::apply(&plan, &Root::new(&a.root), &crate::sys::process::REAL)
        .await
        .at(Step::Init)
}

fn from_file(file: &str) -> Result<ResourceMetadata, Error> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("read", "<stdin>", e))?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| Error::io("read", file, e))?
    };
    let name = if file == "-" { "<stdin>" } else { file };
    let metadata: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        // Not JSON: a YAML document (the Metadata as written in a YAML template).
        Err(json_err) => serde_yaml_ng::from_str(&text).map_err(|_| {
            Error::invalid(
                name,
                format!("is not a JSON (or YAML) document: {json_err}"),
            )
        })?,
    };
    if !metadata.is_object() {
        return Err(Error::invalid(
            name,
            format!(
                "must be a mapping (the resource's Metadata), got {}",
                crate::input::kind(&metadata)
            ),
        ));
    }
    Ok(ResourceMetadata {
        resource_type: None,
        metadata,
        origin: format!("metadata file {name}"),
    })
}

async fn client(a: &InitArgs) -> Result<aws_sdk_cloudformation::Client, Error> {
    let region = crate::cli::dropin::region(a.region.as_deref()).await;
    let sdk = crate::aws::sdk_config(&region).await;
    let keys = match (&a.access_key, &a.secret_key) {
        (Some(id), Some(secret)) => Some(aws_credential_types::Credentials::new(
            id,
            &secret.0,
            None,
            None,
            "ecs-bootstrap init --access-key",
        )),
        _ => None,
    };
    let auth = crate::aws::CfnAuth::from_flags(keys, a.role.as_deref());
    tracing::debug!(signing = auth.describe(), "CloudFormation calls");
    if !crate::cli::dropin::proxy::cloudformation_endpoint(a.url.as_deref()).starts_with("http://")
    {
        // Every HTTPS call would fail: say why now rather than after the retries.
        crate::aws::tls::native_roots()?;
    }
    let proxies = crate::cli::dropin::proxy::Proxies {
        http: a.http_proxy.as_deref(),
        https: a.https_proxy.as_deref(),
    };
    let http = proxies.sdk_client(a.url.as_deref())?;
    let endpoints = crate::aws::Endpoints {
        cloudformation: a.url.clone(),
        ..Default::default()
    };
    Ok(crate::aws::Clients::new(sdk, auth, &endpoints, http).cloudformation)
}
