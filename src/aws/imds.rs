//! IMDS reads that survive boot: an IMDS that is not up yet, a token the service no longer
//! accepts (401), a slow answer. IMDSv2 only, unless `--imds-v1-fallback` asks otherwise.
//!
//! One client per process ([`shared`]): every IMDS read of a run — the identity document and
//! its signature, the instance role's credentials, the metadata tags, S3 `roleName`
//! credentials — goes through it, with these retry and timeout rules and one IMDSv2 token
//! (aws-config's client caches its token until the TTL). A 401 means the service stopped
//! accepting that token before its TTL: the client (and so its token) is replaced, and the next
//! round asks for a fresh one. Rounds go on, with backoff, until the caller's bound (a phase's
//! budget, the run's deadline, or the SDK's operation timeout) stops them.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_config::imds;
use aws_config::imds::client::error::ImdsError;

use crate::error::{Error, Result};
use crate::sys::retry::{retry_until, Backoff, Failed, Verdict};

/// Rounds 250 ms, 500 ms, 1 s, then every 2 s, for as long as the caller allows.
const ROUNDS: Backoff = Backoff::exponential(Duration::from_millis(250), 2, Duration::from_secs(2));
const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Copy, Default)]
pub struct ImdsOptions {
    /// Read without a token (IMDSv1) when the IMDSv2 token cannot be had (hop limit 1 in a
    /// container, an old proxy). Off by default: IMDSv1 is what `HttpTokens: required` exists
    /// to stop.
    pub v1_fallback: bool,
}

/// The process's IMDS client. Set the options once, early (`main` does, from the command line);
/// readers that never set them get IMDSv2 only.
pub struct Imds {
    client: Mutex<imds::Client>,
    opts: OnceLock<ImdsOptions>,
    /// `None`: the SDK's (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, else 169.254.169.254).
    endpoint: Option<String>,
}

static SHARED: OnceLock<Imds> = OnceLock::new();

/// The one IMDS client of this process.
pub fn shared() -> &'static Imds {
    SHARED.get_or_init(|| Imds {
        client: Mutex::new(new_client(None)),
        opts: OnceLock::new(),
        endpoint: None,
    })
}

/// Each attempt is short (a link-local service answers in milliseconds when it answers at
/// all); patience comes from the rounds in [`Imds::get`], bounded by the caller.
fn new_client(endpoint: Option<&str>) -> imds::Client {
    let mut builder = imds::Client::builder();
    if let Some(e) = endpoint {
        // Checked in Imds::with_endpoint.
        builder = builder
            .endpoint(e)
            .unwrap_or_else(|_| imds::Client::builder());
    }
    builder
        .configure(&crate::aws::tls::imds_provider_config())
        .max_attempts(3)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .build()
}

impl Imds {
    /// A client of its own at `endpoint` (a test's local IMDS): production code uses
    /// [`shared`], one client and token per process.
    #[cfg(test)]
    pub fn with_endpoint(endpoint: &str) -> Result<Imds> {
        imds::Client::builder()
            .endpoint(endpoint)
            .map_err(|e| Error::Usage(format!("IMDS endpoint '{endpoint}': {e}")))?;
        Ok(Imds {
            client: Mutex::new(new_client(Some(endpoint))),
            opts: OnceLock::new(),
            endpoint: Some(endpoint.to_string()),
        })
    }

    /// Sets the options of this process's reads; the first call wins.
    pub fn set_options(&self, opts: ImdsOptions) {
        let _ = self.opts.set(opts);
    }

    fn options(&self) -> ImdsOptions {
        self.opts.get().copied().unwrap_or_default()
    }

    /// The client itself, for the SDK's own providers (its token is this process's token).
    pub fn sdk_client(&self) -> imds::Client {
        self.client()
    }

    fn client(&self) -> imds::Client {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A 401: the token was revoked early. A new client fetches a new one.
    fn renew_token(&self) {
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) =
            new_client(self.endpoint.as_deref());
    }

    /// `path` from IMDS; retried until the caller's time bound cancels it, except for answers
    /// that waiting cannot change (404, 403 on a GET).
    pub async fn get(&self, path: &str) -> Result<String> {
        let opts = self.options();
        let outcome = retry_until(
            &ROUNDS,
            None,
            |_| self.get_once(path, opts),
            |outcome, attempt| {
                let err = match outcome {
                    Ok(v) => return Verdict::Done(v),
                    Err(e) => e,
                };
                let message = crate::aws::error_chain(&err);
                if let ImdsError::ErrorResponse(r) = &err {
                    let status = r.response().status().as_u16();
                    if status != 401 && status < 500 {
                        return Verdict::GiveUp(Error::Imds {
                            path: path.into(),
                            message,
                        });
                    }
                }
                let round = attempt.number;
                // The first failures are normal at boot (the link-local route comes up late):
                // quiet.
                if round <= 2 {
                    tracing::debug!(path, round, error = %message, "IMDS not answering yet; retrying");
                } else {
                    tracing::warn!(path, round, error = %message, "IMDS not answering yet; retrying");
                }
                Verdict::Retry(Error::Imds {
                    path: path.into(),
                    message,
                })
            },
        )
        .await;
        outcome.map_err(|f| match f {
            Failed::GaveUp(e) | Failed::Exhausted { last: e, .. } => e,
        })
    }

    /// One round: one read through the client (its own short attempts), the token renewed when
    /// the service refused it (401) or none could be had, and then IMDSv1 when allowed.
    async fn get_once(
        &self,
        path: &str,
        opts: ImdsOptions,
    ) -> std::result::Result<String, ImdsError> {
        let err = match self.client().get(path).await {
            Ok(v) => return Ok(v.as_ref().to_string()),
            Err(e) => e,
        };
        if let ImdsError::ErrorResponse(r) = &err {
            if r.response().status().as_u16() == 401 {
                self.renew_token();
            }
        }
        if matches!(err, ImdsError::FailedToLoadToken(_)) {
            self.renew_token();
            if opts.v1_fallback {
                match get_v1(self.endpoint.as_deref(), path).await {
                    Ok(v) => {
                        tracing::warn!(
                            path,
                            "no IMDSv2 token ({}); read with IMDSv1 (--imds-v1-fallback)",
                            crate::aws::error_chain(&err)
                        );
                        return Ok(v);
                    }
                    Err(e) => {
                        tracing::debug!(path, error = %e, "IMDSv1 fallback failed too")
                    }
                }
            }
        }
        Err(err)
    }

    /// [`Imds::get`] for callers without a run deadline (the drop-ins, a dry run): off EC2
    /// they must answer in seconds, not wait for an IMDS that will never come.
    pub async fn get_within(&self, path: &str, limit: Duration) -> Result<String> {
        match tokio::time::timeout(limit, self.get(path)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Imds {
                path: path.into(),
                message: format!(
                    "no answer within {}s (not on EC2, or IMDS unreachable)",
                    limit.as_secs()
                ),
            }),
        }
    }
}

/// `path` from the process's client (see [`Imds::get`]), with these options.
pub async fn get(path: &str, opts: ImdsOptions) -> Result<String> {
    let imds = shared();
    imds.set_options(opts);
    imds.get(path).await
}

async fn get_v1(endpoint: Option<&str>, path: &str) -> Result<String> {
    let base = match endpoint {
        Some(e) => e.to_string(),
        None => std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string()),
    };
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let fail = |message: String| Error::Imds {
        path: path.into(),
        message,
    };
    let http =
        crate::aws::tls::local_http_client(&url, Duration::from_secs(1), Duration::from_secs(2))?;
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| fail(crate::aws::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("IMDSv1 answered HTTP {}", resp.status())));
    }
    resp.text()
        .await
        .map_err(|e| fail(crate::aws::error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_http::{Response, Server};

    #[tokio::test]
    async fn a_client_at_a_given_endpoint_reads_from_it() {
        let server = Server::answering(|r| match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") => Response::new(200, "text/plain", "token")
                .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
            ("GET", "/latest/meta-data/placement/region") => {
                Response::new(200, "text/plain", "eu-west-3")
            }
            _ => Response::new(404, "text/plain", ""),
        });
        let imds = Imds::with_endpoint(&server.url).unwrap();
        let region = imds
            .get_within("/latest/meta-data/placement/region", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(region, "eu-west-3");
        assert!(server
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/latest/meta-data/placement/region"));
        // A 404 is an answer: not retried.
        let e = imds.get("/latest/meta-data/nothing").await.unwrap_err();
        assert!(e.to_string().contains("nothing"), "{e}");
    }
}
