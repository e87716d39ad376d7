//! IMDS reads that survive boot: an IMDS that is not up yet, a token the service no longer
//! accepts (401), a slow answer. IMDSv2 only, unless `--imds-v1-fallback` asks otherwise.
//!
//! aws-config's client already retries server errors and 401s, but it keeps its cached token
//! while that token has not expired on the client's clock, so a token revoked early would be
//! retried in vain: every round here starts with a fresh client and therefore a fresh token.
//! Rounds go on, with backoff, until the caller's bound (the identity phase's budget) stops them.

use std::time::Duration;

use aws_config::imds;
use aws_config::imds::client::error::ImdsError;

use crate::error::{Error, Result};

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Copy, Default)]
pub struct ImdsOptions {
    /// Read without a token when the IMDSv2 token cannot be had (hop limit 1 in a container,
    /// an old proxy). Off by default: IMDSv1 is what `HttpTokens: required` exists to stop.
    pub v1_fallback: bool,
}

fn client() -> imds::Client {
    imds::Client::builder()
        .configure(&crate::tls::imds_provider_config())
        .max_attempts(3)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .build()
}

/// `path` from IMDS; retried until the caller's time bound cancels it, except for answers that
/// waiting cannot change (404, 403 on a GET).
pub async fn get(path: &str, opts: ImdsOptions) -> Result<String> {
    let mut backoff = FIRST_BACKOFF;
    let mut round = 0u32;
    loop {
        round += 1;
        let err = match client().get(path).await {
            Ok(v) => return Ok(v.as_ref().to_string()),
            Err(e) => e,
        };
        let message = crate::aws::error_chain(&err);
        if let ImdsError::ErrorResponse(r) = &err {
            let status = r.response().status().as_u16();
            if status != 401 && status < 500 {
                return Err(Error::Imds {
                    path: path.into(),
                    message,
                });
            }
        }
        if opts.v1_fallback && matches!(err, ImdsError::FailedToLoadToken(_)) {
            match get_v1(path).await {
                Ok(v) => {
                    tracing::warn!(
                        path,
                        "no IMDSv2 token ({message}); read with IMDSv1 (--imds-v1-fallback)"
                    );
                    return Ok(v);
                }
                Err(e) => tracing::debug!(path, error = %e, "IMDSv1 fallback failed too"),
            }
        }
        // The first failures are normal at boot (the link-local route comes up late): quiet.
        if round <= 2 {
            tracing::debug!(path, round, error = %message, "IMDS not answering yet; retrying");
        } else {
            tracing::warn!(path, round, error = %message, "IMDS not answering yet; retrying");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn get_v1(path: &str) -> Result<String> {
    let base = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string());
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let fail = |message: String| Error::Imds {
        path: path.into(),
        message,
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| fail(e.to_string()))?;
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
