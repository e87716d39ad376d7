//! `ecs-bootstrap signal`: cfn-signal's command line. With a WaitConditionHandle URL it PUTs
//! the JSON document to that presigned URL; otherwise it calls SignalResource.
//!
//! Differences from cfn-signal, on purpose: `--help` answers at once (no IMDS or network
//! call before parsing), and a resource that is no longer waiting ("... is in CREATE_COMPLETE
//! state and cannot be signaled", e.g. a re-run after a reboot) is a warning with exit 0.

use std::time::Duration;

use base64::Engine;
use clap::Args;

use crate::boot::signal::{self, Delivered, SignalSpec, Status};
use crate::error::{Error, Result};
use crate::sys::retry::{retry_until, Backoff, Failed, Verdict};

#[derive(Debug, Args, Clone)]
pub struct SignalArgs {
    /// Exit code of the configuration step: non-zero signals FAILURE (`-e $?`).
    #[arg(
        short = 'e',
        long = "exit-code",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub exit_code: Option<i64>,
    /// true signals SUCCESS, false FAILURE (with -e, either one failing means FAILURE).
    #[arg(short = 's', long = "success", value_name = "true|false", value_parser = parse_bool)]
    pub success: Option<bool>,
    /// Stack name or id (SignalResource).
    #[arg(long, value_name = "NAME")]
    pub stack: Option<String>,
    /// Logical id of the resource with the CreationPolicy (SignalResource).
    #[arg(long, value_name = "LOGICAL_ID")]
    pub resource: Option<String>,
    /// Region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION, else this instance's).
    #[arg(long)]
    pub region: Option<String>,
    /// Unique id of this signal (default: the instance id).
    #[arg(short = 'i', long = "id", value_name = "ID")]
    pub id: Option<String>,
    /// Reason, logged (SignalResource has no reason field) and sent to a wait condition.
    #[arg(short = 'r', long = "reason")]
    pub reason: Option<String>,
    /// Data for a wait condition (default: the reason).
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// CloudFormation endpoint URL.
    #[arg(short = 'u', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Proxy for an http:// endpoint (-u) or WaitConditionHandle URL:
    /// http://[user:password@]host:port.
    #[arg(long, value_name = "URL")]
    pub http_proxy: Option<String>,
    /// Proxy for an https:// endpoint (the default one) or WaitConditionHandle URL.
    #[arg(long, value_name = "URL")]
    pub https_proxy: Option<String>,
    #[command(flatten)]
    pub credentials: super::CredentialArgs,
    /// More log detail.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// A WaitConditionHandle URL, plain or base64-encoded.
    #[arg(value_name = "WAIT_CONDITION_HANDLE_URL")]
    pub handle: Option<String>,
}

fn parse_bool(s: &str) -> std::result::Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("'{s}' is not true or false")),
    }
}

/// What to send, decided from the flags alone (no network).
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub status: Status,
    pub reason: String,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    WaitCondition(String),
    Resource { stack: String, resource: String },
}

impl SignalArgs {
    pub fn decide(&self) -> Result<Signal> {
        let failed = self.exit_code.is_some_and(|c| c != 0) || self.success == Some(false);
        let status = if failed {
            Status::Failure
        } else {
            Status::Success
        };
        let reason = self
            .reason
            .clone()
            .unwrap_or_else(|| match (status, self.exit_code) {
                (Status::Success, _) => "Configuration Complete".into(),
                (Status::Failure, Some(c)) if c != 0 => {
                    format!("Configuration failed (exit code {c})")
                }
                (Status::Failure, _) => "Configuration failed".into(),
            });
        let target = match (&self.handle, &self.stack, &self.resource) {
            (Some(h), None, None) => Target::WaitCondition(handle_url(h)?),
            (None, Some(stack), Some(resource)) => Target::Resource {
                stack: stack.clone(),
                resource: resource.clone(),
            },
            (Some(_), _, _) => {
                return Err(Error::Usage(
                    "give a WaitConditionHandle URL or --stack and --resource, not both".into(),
                ))
            }
            _ => {
                return Err(Error::Usage(
                    "signal needs --stack and --resource, or a WaitConditionHandle URL".into(),
                ))
            }
        };
        Ok(Signal {
            status,
            reason,
            target,
        })
    }
}

/// The handle as given, or base64-decoded (templates often pass `Fn::Base64` of the Ref).
pub fn handle_url(h: &str) -> Result<String> {
    let h = h.trim();
    if h.starts_with("https://") || h.starts_with("http://") {
        return Ok(h.to_string());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(h)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.starts_with("https://") || s.starts_with("http://"));
    decoded.ok_or_else(|| {
        Error::Usage(format!(
            "'{h}' is neither a WaitConditionHandle URL nor a base64-encoded one"
        ))
    })
}

/// The document a wait condition expects.
pub fn wait_condition_body(status: Status, reason: &str, unique_id: &str, data: &str) -> String {
    serde_json::json!({
        "Status": status.as_str(),
        "Reason": reason,
        "UniqueId": unique_id,
        "Data": data,
    })
    .to_string()
}

impl SignalArgs {
    pub fn proxies(&self) -> super::proxy::Proxies<'_> {
        super::proxy::Proxies {
            http: self.http_proxy.as_deref(),
            https: self.https_proxy.as_deref(),
        }
    }
}

pub async fn run(args: &SignalArgs) -> Result<Delivered> {
    let signal = args.decide()?;
    args.proxies().check()?;
    let unique_id = match &args.id {
        Some(id) => id.clone(),
        None => super::imds_get("/latest/meta-data/instance-id")
            .await
            .ok_or_else(|| Error::Imds {
                path: "/latest/meta-data/instance-id".into(),
                message: "cannot read the instance id for the signal's UniqueId: pass -i/--id"
                    .into(),
            })?,
    };
    match &signal.target {
        Target::WaitCondition(url) => {
            let data = args.data.clone().unwrap_or_else(|| signal.reason.clone());
            put_wait_condition(
                url,
                args.proxies(),
                signal.status,
                &signal.reason,
                &unique_id,
                &data,
            )
            .await?;
            tracing::info!(status = signal.status.as_str(), unique_id = %unique_id, reason = %signal.reason, "signalled the wait condition");
            Ok(Delivered::Yes)
        }
        Target::Resource { stack, resource } => {
            let region = super::region(args.region.as_deref()).await;
            let cfn = super::cfn_client(
                &region,
                args.url.as_deref(),
                args.credentials.auth()?,
                args.proxies(),
            )
            .await?;
            tracing::info!(status = signal.status.as_str(), reason = %signal.reason, "signalling {stack}/{resource}");
            signal::send(
                &cfn,
                &SignalSpec {
                    stack: stack.clone(),
                    resource: resource.clone(),
                    unique_id,
                },
                signal.status,
            )
            .await
        }
    }
}

async fn put_wait_condition(
    url: &str,
    proxies: super::proxy::Proxies<'_>,
    status: Status,
    reason: &str,
    unique_id: &str,
    data: &str,
) -> Result<()> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    let http = proxies
        .reqwest(builder)?
        .build()
        .map_err(|e| Error::setup("an HTTP client", e))?;
    let body = wait_condition_body(status, reason, unique_id, data);
    let fail = |message: String| Error::Aws {
        api: "WaitConditionHandle PUT",
        message,
    };
    let put = |_| {
        let (http, body) = (&http, &body);
        async move {
            // The presigned URL was signed with an empty Content-Type: anything else is refused.
            let r = http
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, "")
                .body(body.clone())
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    Err(Verdict::GiveUp(format!("HTTP {status}: {}", text.trim())))
                }
                Ok(resp) => Err(Verdict::Retry(format!("HTTP {}", resp.status()))),
                Err(e) => Err(Verdict::Retry(crate::aws::error_chain(&e))),
            }
        }
    };
    let outcome = retry_until(&WAIT_CONDITION_PUTS, None, put, |r, attempt| match r {
        Ok(()) => Verdict::Done(()),
        Err(Verdict::Retry(last)) => {
            if attempt.next.is_some() {
                tracing::warn!(attempt = attempt.number, error = %last, "wait condition signal failed; retrying");
            }
            Verdict::Retry(last)
        }
        Err(v) => v,
    })
    .await;
    outcome.map_err(|f| match f {
        Failed::GaveUp(m) | Failed::Exhausted { last: m, .. } => fail(m),
    })
}

/// Five PUTs, 1, 2, 4 and 8 s apart: a wait condition is signalled once, and an S3 error
/// (5xx, a dropped connection) rarely lasts longer.
const WAIT_CONDITION_PUTS: Backoff =
    Backoff::exponential(Duration::from_secs(1), 2, Duration::from_secs(16)).attempts(5);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: SignalArgs,
    }

    fn args(v: &[&str]) -> SignalArgs {
        T::try_parse_from(std::iter::once("cfn-signal").chain(v.iter().copied()))
            .unwrap()
            .a
    }

    #[test]
    fn status_from_exit_code_and_success() {
        let d = |v: &[&str]| args(v).decide().unwrap();
        let base = ["--stack", "s", "--resource", "r"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = extra.to_vec();
            v.extend(base);
            d(&v)
        };
        assert_eq!(with(&["-e", "0"]).status, Status::Success);
        assert_eq!(with(&["-e", "1"]).status, Status::Failure);
        assert_eq!(
            with(&["-e", "1"]).reason,
            "Configuration failed (exit code 1)"
        );
        assert_eq!(with(&["--exit-code", "-1"]).status, Status::Failure);
        assert_eq!(with(&["-s", "false"]).status, Status::Failure);
        assert_eq!(with(&["--success", "TRUE"]).status, Status::Success);
        assert_eq!(with(&["-s", "true", "-e", "3"]).status, Status::Failure);
        assert_eq!(with(&[]).status, Status::Success);
        assert_eq!(with(&["-r", "why"]).reason, "why");
        assert!(T::try_parse_from(["x", "-s", "maybe"]).is_err());
    }

    #[test]
    fn target_is_a_handle_or_a_resource() {
        let url = "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/arn%3Aaws?X-Amz-Signature=abc";
        let b64 = base64::engine::general_purpose::STANDARD.encode(url);
        for h in [url.to_string(), b64] {
            assert_eq!(
                args(&["-e", "0", &h]).decide().unwrap().target,
                Target::WaitCondition(url.into())
            );
        }
        let e = args(&["not-a-url"]).decide().unwrap_err().to_string();
        assert!(e.contains("not-a-url"), "{e}");
        let e = args(&["-e", "0"]).decide().unwrap_err().to_string();
        assert!(e.contains("--stack and --resource"), "{e}");
        let e = args(&["--stack", "s", "--resource", "r", url])
            .decide()
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn wait_condition_document() {
        let v: serde_json::Value =
            serde_json::from_str(&wait_condition_body(Status::Failure, "r", "i-1", "d")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Status": "FAILURE", "Reason": "r", "UniqueId": "i-1", "Data": "d"})
        );
    }
}
