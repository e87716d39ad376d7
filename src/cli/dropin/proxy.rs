//! cfn-init's and cfn-signal's `--http-proxy` / `--https-proxy`: the proxy for an http:// or
//! an https:// CloudFormation endpoint (or WaitConditionHandle URL), `http://[user:password@]host:port`.
//!
//! The SDK's HTTP client takes one: `aws-smithy-http-client` (1.5) has a `ProxyConfig` that
//! its connector applies (absolute-URI requests for http://, CONNECT tunnels for https://,
//! credentials in the proxy URL sent as `Proxy-Authorization`). It is built here as the SDK's
//! default client is (rustls with aws-lc) plus the proxy, and given only to the
//! CloudFormation client: IMDS must never go through a proxy. The WaitConditionHandle PUT
//! uses reqwest's own proxy support.

use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::error::{Error, Result};

/// The two flags, as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proxies<'a> {
    pub http: Option<&'a str>,
    pub https: Option<&'a str>,
}

/// The CloudFormation endpoint the SDK will use: `given` (`-u`), else
/// `AWS_ENDPOINT_URL_CLOUDFORMATION`, `AWS_ENDPOINT_URL`, else `https://` (the regional one).
pub fn cloudformation_endpoint(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| {
            ["AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        })
        .unwrap_or_else(|| "https://".to_string())
}

impl<'a> Proxies<'a> {
    /// Both flags checked, before anything is sent: a bad one is a usage error.
    pub fn check(&self) -> Result<()> {
        if let Some(p) = self.http {
            check("--http-proxy", p)?;
        }
        if let Some(p) = self.https {
            check("--https-proxy", p)?;
        }
        Ok(())
    }

    /// The proxy for `url` (by its scheme) and the flag it came from.
    fn for_url(&self, url: &str) -> Option<(&'static str, &'a str)> {
        if url.starts_with("http://") {
            self.http.map(|p| ("--http-proxy", p))
        } else {
            self.https.map(|p| ("--https-proxy", p))
        }
    }

    /// An SDK HTTP client through the proxy for `endpoint` (default: the endpoint the SDK
    /// would use, i.e. `AWS_ENDPOINT_URL_CLOUDFORMATION`, `AWS_ENDPOINT_URL`, else https), or
    /// None when no proxy applies and the SDK's default client is right.
    pub fn sdk_client(&self, endpoint: Option<&str>) -> Result<Option<SharedHttpClient>> {
        let endpoint = cloudformation_endpoint(endpoint);
        let endpoint = endpoint.as_str();
        let Some((flag, proxy)) = self.for_url(endpoint) else {
            return Ok(None);
        };
        tracing::debug!(proxy = %shown(proxy), flag, "CloudFormation requests go through the proxy");
        sdk_client(flag, proxy, endpoint.starts_with("http://")).map(Some)
    }

    /// reqwest proxies for both flags (each applies to its scheme only).
    pub fn reqwest(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        for (flag, proxy, https) in [
            ("--http-proxy", self.http, false),
            ("--https-proxy", self.https, true),
        ] {
            let Some(p) = proxy else { continue };
            check(flag, p)?;
            let proxy = if https {
                reqwest::Proxy::https(p)
            } else {
                reqwest::Proxy::http(p)
            };
            // reqwest's message could quote the URL, and with it a password.
            let proxy = proxy.map_err(|_| {
                Error::Usage(format!("{flag} {}: not a usable proxy URL", shown(p)))
            })?;
            builder = builder.proxy(proxy);
        }
        Ok(builder)
    }
}

/// A proxy URL must be http(s)://host[:port]: anything else is a usage error naming the flag.
fn check(flag: &str, proxy: &str) -> Result<()> {
    let rest = proxy
        .strip_prefix("http://")
        .or_else(|| proxy.strip_prefix("https://"));
    let host = rest
        .map(|r| r.split('/').next().unwrap_or_default())
        .map(|a| a.rsplit('@').next().unwrap_or_default())
        .unwrap_or_default();
    if host.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {}: expected http://[user:password@]host:port",
            shown(proxy)
        )));
    }
    Ok(())
}

/// The proxy URL with any `user:password@` replaced, for messages and logs.
pub fn shown(proxy: &str) -> String {
    let (scheme, rest) = proxy.split_once("://").unwrap_or(("", proxy));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) if scheme.is_empty() => format!("<redacted>@{host}{path}"),
        Some((_, host)) => format!("{scheme}://<redacted>@{host}{path}"),
        None => proxy.to_string(),
    }
}

fn sdk_client(flag: &str, proxy: &str, for_http: bool) -> Result<SharedHttpClient> {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{tls, ConnectorBuilder};
    use aws_smithy_runtime_api::client::http::{http_client_fn, SharedHttpConnector};
    check(flag, proxy)?;
    let config = if for_http {
        ProxyConfig::http(proxy)
    } else {
        ProxyConfig::https(proxy)
    }
    .map_err(|_| Error::Usage(format!("{flag} {}: not a usable proxy URL", shown(proxy))))?;
    Ok(http_client_fn(move |settings, components| {
        let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        b.set_connector_settings(Some(settings.clone()));
        b.set_sleep_impl(components.sleep_impl());
        b.set_proxy_config(Some(config.clone()));
        SharedHttpConnector::new(b.build())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_proxy_url_are_never_shown() {
        assert_eq!(
            shown("http://u:s3cret@proxy:3128"),
            "http://<redacted>@proxy:3128"
        );
        assert_eq!(
            shown("http://u:p@ss@proxy:3128/x"),
            "http://<redacted>@proxy:3128/x"
        );
        assert_eq!(shown("http://proxy:3128"), "http://proxy:3128");
        for bad in [
            "u:s3cret@proxy:3128",
            "ftp://u:s3cret@proxy",
            "http://u:s3cret@",
        ] {
            let p = Proxies {
                http: Some(bad),
                https: None,
            };
            let e = p
                .sdk_client(Some("http://cfn.example"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--http-proxy") && !e.contains("s3cret"), "{e}");
            let e = p
                .reqwest(reqwest::Client::builder())
                .unwrap_err()
                .to_string();
            assert!(e.contains("--http-proxy") && !e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn the_proxy_follows_the_endpoint_scheme() {
        let p = Proxies {
            http: Some("http://127.0.0.1:3128"),
            https: None,
        };
        assert!(p
            .sdk_client(Some("http://127.0.0.1:5000"))
            .unwrap()
            .is_some());
        assert!(p
            .sdk_client(Some("https://cloudformation.us-east-1.amazonaws.com"))
            .unwrap()
            .is_none());
        let p = Proxies {
            http: None,
            https: Some("http://127.0.0.1:3128"),
        };
        assert!(p
            .sdk_client(Some("http://127.0.0.1:5000"))
            .unwrap()
            .is_none());
        assert!(p
            .sdk_client(Some("https://cloudformation.us-east-1.amazonaws.com"))
            .unwrap()
            .is_some());
        assert!(Proxies::default().sdk_client(None).unwrap().is_none());
    }
}
