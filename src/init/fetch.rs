//! Downloads for `files.source` and `sources`: HTTP(S) (with basic auth), S3 (`s3://bucket/key`
//! and S3 https URLs, SigV4-signed with the chosen credentials), and local paths.
//!
//! S3 requests are signed with `aws-sigv4` and sent with reqwest rather than through
//! `aws-sdk-s3`: one GET is all that is needed, `aws-sigv4` is already in the build (the SDK
//! uses it), and the S3 SDK crate would add minutes of compile time and megabytes of binary.
//! Every download has a connect and a total timeout and a size cap, and is retried with
//! backoff on connection errors, 429 and 5xx (as cfn-init retries its downloads).

use std::io::{Seek, Write};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

use super::auth::{Auth, AuthConfig, S3Credentials, Secret};
use crate::error::{Error, Result};
use crate::sys::retry::{retry_until, Backoff, Failed, Growth, Jitter, Verdict};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per attempt, for the whole body: large archives on a slow link get this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(600);
/// cfn-init's download retries: 5 tries, waits `random() * min(20, 2^i - 1)` seconds
/// (`cfnbootstrap/util.py:55-59,181@25fabe91`); the random part never below 5 %.
const DOWNLOADS: Backoff = Backoff {
    growth: Growth::MinusOne,
    ..Backoff::exponential(Duration::from_secs(1), 2, Duration::from_secs(20))
}
.jitter(Jitter::Full { floor: 0.05 })
.attempts(5);

/// Where an S3 object is, whichever way its URL spelled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
    /// From the host name, when it carries one.
    pub region: Option<String>,
}

/// Recognises `s3://bucket/key` and the https forms: virtual-hosted
/// (`bucket.s3[.-]region.amazonaws.com/key`) and path-style (`s3[.-]region.amazonaws.com/bucket/key`).
pub fn s3_location(url: &str) -> Option<S3Location> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/')?;
        return (!bucket.is_empty()).then(|| S3Location {
            bucket: bucket.into(),
            key: key.into(),
            region: None,
        });
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next()?;
    let base = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))?;
    let labels: Vec<&str> = base.split('.').collect();
    let s3_at = labels
        .iter()
        .position(|l| *l == "s3" || l.starts_with("s3-"))?;
    let region = match labels[s3_at].strip_prefix("s3-") {
        Some(r) => Some(r.to_string()),
        None => labels
            .get(s3_at + 1)
            .filter(|r| **r != "dualstack")
            .map(|r| r.to_string()),
    };
    if s3_at == 0 {
        let (bucket, key) = path.split_once('/')?;
        Some(S3Location {
            bucket: bucket.into(),
            key: key.into(),
            region,
        })
    } else {
        Some(S3Location {
            bucket: labels[..s3_at].join("."),
            key: path.into(),
            region,
        })
    }
}

pub struct Fetcher<'a> {
    /// Built at the first download (see [`Fetcher::client`]).
    http: OnceLock<reqwest::Client>,
    /// For SigV4-signed requests: follows no redirect.
    signed_http: OnceLock<reqwest::Client>,
    auth: &'a AuthConfig,
    /// Region to sign S3 requests for when the URL names none (default: the one region rule,
    /// [`crate::aws::region`]).
    region: Option<String>,
}

/// What the caller asked for, for error messages: the key path and the URL.
pub struct Request<'r> {
    pub url: &'r str,
    pub auth_name: Option<&'r str>,
    pub key_path: &'r str,
    pub max_bytes: u64,
}

impl<'a> Fetcher<'a> {
    pub fn new(auth: &'a AuthConfig) -> Result<Self> {
        Ok(Fetcher {
            http: OnceLock::new(),
            signed_http: OnceLock::new(),
            auth,
            region: None,
        })
    }

    /// The HTTP client, `signed` or not, made on first use: a reqwest client loads and decodes
    /// the system's root CA certificates when it is built (rustls-platform-verifier), a third of
    /// a run's instructions for the two of them (tests/bench, overhead), and most Init configs
    /// download nothing.
    fn client(&self, signed: bool) -> std::result::Result<&reqwest::Client, Attempt> {
        let cell = if signed {
            &self.signed_http
        } else {
            &self.http
        };
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let redirects = if signed {
            // reqwest drops Authorization on a cross-host redirect but forwards the other
            // signing headers, x-amz-security-token among them; S3 itself never needs one
            // followed (a bucket in another region is answered with its region, see below).
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::default()
        };
        let built = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("ecs-bootstrap/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .build()
            .map_err(|e| Attempt::Fatal(format!("cannot make an HTTP client: {e}")))?;
        Ok(cell.get_or_init(|| built))
    }

    /// Tests pin the region, so that none asks the machine's real IMDS for one.
    #[cfg(test)]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    async fn region(&self) -> String {
        match &self.region {
            Some(r) => r.clone(),
            None => default_region().await,
        }
    }

    /// The name of the Authentication entry a download of `url` would use unasked (by bucket
    /// or `uris` prefix), if any.
    pub fn credentials_for(&self, url: &str) -> Option<&str> {
        self.auth.for_url(url).map(|(name, _)| name)
    }

    /// Fails, naming `key_path`, when `name` is not an Authentication entry.
    pub fn check_auth(&self, name: &str, key_path: &str) -> Result<()> {
        self.auth.choose(Some(name), "", key_path).map(|_| ())
    }

    /// Downloads into `out` (truncated first), at most `max_bytes`.
    pub async fn fetch_into(&self, req: &Request<'_>, out: &mut std::fs::File) -> Result<u64> {
        let fail = |m: String| Error::invalid(req.key_path, format!("{}: {m}", req.url));
        if let Some(path) = local_path(req.url) {
            let mut src = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
            let len = src.metadata().map(|m| m.len()).unwrap_or(0);
            if len > req.max_bytes {
                return Err(fail(format!(
                    "{len} bytes is more than the limit of {}",
                    req.max_bytes
                )));
            }
            out.set_len(0).map_err(|e| fail(e.to_string()))?;
            out.rewind().map_err(|e| fail(e.to_string()))?;
            return std::io::copy(&mut src, out).map_err(|e| fail(e.to_string()));
        }
        if !(req.url.starts_with("http://")
            || req.url.starts_with("https://")
            || req.url.starts_with("s3://"))
        {
            return Err(Error::invalid(
                req.key_path,
                format!(
                    "'{}' is not an http(s):// or s3:// URL or an absolute path",
                    req.url
                ),
            ));
        }
        let auth = self.auth.choose(req.auth_name, req.url, req.key_path)?;
        if let Some((name, _)) = auth {
            tracing::debug!(
                url = req.url,
                authentication = name,
                "download with credentials"
            );
        }
        // Once S3 has named the bucket's region, later attempts sign for it.
        let region: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let auth = auth.map(|(_, a)| a);
        let outcome = retry_until(
            &DOWNLOADS,
            None,
            |_| {
                let out = out.try_clone();
                let region = &region;
                async move {
                    let mut out = out.map_err(|e| {
                        Attempt::Fatal(format!("cannot write the download: {e}"))
                    })?;
                    self.attempt_in_region(req, auth, region, &mut out).await
                }
            },
            |outcome, attempt| match outcome {
                Ok(n) => Verdict::Done(n),
                Err(Attempt::Retry(m)) => {
                    if let Some(wait) = attempt.next {
                        tracing::warn!(url = req.url, attempt = attempt.number, error = %m, wait_ms = wait.as_millis() as u64, "download failed; retrying");
                    }
                    Verdict::Retry(m)
                }
                Err(Attempt::Fatal(m) | Attempt::Region(m)) => Verdict::GiveUp(m),
            },
        )
        .await;
        outcome.map_err(|f| match f {
            Failed::GaveUp(m) => fail(m),
            Failed::Exhausted { last, attempts } => {
                fail(format!("{last} (after {attempts} attempts)"))
            }
        })
    }

    /// One attempt; when S3 answers that the bucket is in another region than the one signed
    /// for, at once again, signed for that region (part of the same attempt: no wait).
    async fn attempt_in_region(
        &self,
        req: &Request<'_>,
        auth: Option<&Auth>,
        region: &std::sync::Mutex<Option<String>>,
        out: &mut std::fs::File,
    ) -> std::result::Result<u64, Attempt> {
        let known = region.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let redirected = |r: String| Attempt::Fatal(format!("S3 keeps redirecting to region {r}"));
        match self.attempt(req, auth, known.as_deref(), out).await {
            Err(Attempt::Region(r)) if known.is_none() => {
                tracing::debug!(url = req.url, region = %r, "S3 bucket is in another region; signing for it");
                *region.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
                match self.attempt(req, auth, Some(&r), out).await {
                    Err(Attempt::Region(r)) => Err(redirected(r)),
                    other => other,
                }
            }
            Err(Attempt::Region(r)) => Err(redirected(r)),
            other => other,
        }
    }

    /// Downloads into memory (for `files`, which are written atomically from a buffer).
    pub async fn fetch_bytes(&self, req: &Request<'_>) -> Result<Vec<u8>> {
        let mut tmp = tempfile::tempfile().map_err(|e| Error::io("create", "temporary file", e))?;
        self.fetch_into(req, &mut tmp).await?;
        tmp.rewind()
            .map_err(|e| Error::io("read", "temporary file", e))?;
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut tmp, &mut buf)
            .map_err(|e| Error::io("read", "temporary file", e))?;
        Ok(buf)
    }

    async fn attempt(
        &self,
        req: &Request<'_>,
        auth: Option<&Auth>,
        region: Option<&str>,
        out: &mut std::fs::File,
    ) -> std::result::Result<u64, Attempt> {
        let request = self.build(req.url, auth, region).await?;
        let mut resp = request
            .send()
            .await
            .map_err(|e| Attempt::Retry(crate::aws::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let hinted = resp
                .headers()
                .get("x-amz-bucket-region")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.text().await.unwrap_or_default();
            if region.is_none() && (status == StatusCode::BAD_REQUEST || status.is_redirection()) {
                if let Some(r) = hinted.or_else(|| tag(&body, "Region")) {
                    return Err(Attempt::Region(r));
                }
            }
            let m = format!("HTTP {status}{}", s3_error_code(&body));
            return Err(
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    Attempt::Retry(m)
                } else {
                    Attempt::Fatal(m)
                },
            );
        }
        if let Some(len) = resp.content_length() {
            if len > req.max_bytes {
                return Err(Attempt::Fatal(format!(
                    "{len} bytes is more than the limit of {}",
                    req.max_bytes
                )));
            }
        }
        let io = |e: std::io::Error| Attempt::Fatal(format!("cannot write the download: {e}"));
        out.set_len(0).map_err(io)?;
        out.rewind().map_err(io)?;
        let mut total = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Attempt::Retry(crate::aws::error_chain(&e)))?
        {
            total += chunk.len() as u64;
            if total > req.max_bytes {
                return Err(Attempt::Fatal(format!(
                    "more than the limit of {} bytes",
                    req.max_bytes
                )));
            }
            out.write_all(&chunk).map_err(io)?;
        }
        Ok(total)
    }

    async fn build(
        &self,
        url: &str,
        auth: Option<&Auth>,
        region: Option<&str>,
    ) -> std::result::Result<reqwest::RequestBuilder, Attempt> {
        let region = region.map(str::to_string);
        let s3 = s3_location(url);
        let http_url = match (&s3, url.starts_with("s3://")) {
            (Some(loc), true) => s3_https_url(loc).map_err(Attempt::Fatal)?,
            _ => url.to_string(),
        };
        match auth {
            Some(Auth::Basic {
                username, password, ..
            }) => Ok(self
                .client(false)?
                .get(&http_url)
                .basic_auth(username, Some(password.expose()))),
            Some(Auth::S3 { credentials, .. }) => {
                let creds = resolve(credentials).await?;
                let region = region.or_else(|| s3.as_ref().and_then(|l| l.region.clone()));
                self.signed(&http_url, &creds, region).await
            }
            // s3:// is not a cfn-init form; it always means "with this instance's credentials".
            None if url.starts_with("s3://") => {
                let creds = default_chain(self.region().await).await?;
                let region = region.or_else(|| s3.as_ref().and_then(|l| l.region.clone()));
                self.signed(&http_url, &creds, region).await
            }
            None => Ok(self.client(false)?.get(&http_url)),
        }
    }

    async fn signed(
        &self,
        url: &str,
        creds: &aws_credential_types::Credentials,
        region: Option<String>,
    ) -> std::result::Result<reqwest::RequestBuilder, Attempt> {
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
            SigningSettings, UriPathNormalizationMode,
        };
        let region = match region {
            Some(r) => r,
            None => self.region().await,
        };
        let identity = creds.clone().into();
        let mut settings = SigningSettings::default();
        // S3 wants the payload hash header; a GET has no payload.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        // S3 signs the path as sent: encoded once, not normalised (the defaults are for the
        // other services, and break keys with spaces, '+' or '//').
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Attempt::Fatal(format!("cannot sign the request: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "GET",
            url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| Attempt::Fatal(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Attempt::Fatal(format!("cannot sign the request: {e}")))?
            .into_parts();
        let mut rb = self.client(true)?.get(url);
        for (name, value) in instructions.headers() {
            rb = rb.header(name, value);
        }
        Ok(rb)
    }
}

enum Attempt {
    Retry(String),
    Fatal(String),
    /// S3 answered that the bucket is in this region.
    Region(String),
}

fn local_path(url: &str) -> Option<&str> {
    if url.starts_with('/') {
        Some(url)
    } else {
        url.strip_prefix("file://").filter(|p| p.starts_with('/'))
    }
}

/// S3's error bodies name the problem (NoSuchKey, AccessDenied, ...): worth the log line.
fn s3_error_code(body: &str) -> String {
    tag(body, "Code")
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

/// The text of `<name>...</name>` in an S3 XML error body.
fn tag(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let a = body.find(&open)? + open.len();
    let b = a + body[a..].find(&format!("</{name}>"))?;
    Some(body[a..b].trim().to_string()).filter(|t| !t.is_empty())
}

/// `s3://` to an https URL: the standard endpoint variables (tests, VPC endpoints) are used
/// path-style; otherwise the regional virtual-hosted name.
fn s3_https_url(loc: &S3Location) -> std::result::Result<String, String> {
    let key = encode_key(&loc.key);
    for var in ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"] {
        if let Ok(ep) = std::env::var(var) {
            if !ep.is_empty() {
                return Ok(format!("{}/{}/{key}", ep.trim_end_matches('/'), loc.bucket));
            }
        }
    }
    if loc.bucket.contains('.') {
        return Err(format!(
            "bucket '{}' has dots: use its https:// URL instead of s3://",
            loc.bucket
        ));
    }
    Ok(format!("https://{}.s3.amazonaws.com/{key}", loc.bucket))
}

fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn resolve(
    c: &S3Credentials,
) -> std::result::Result<aws_credential_types::Credentials, Attempt> {
    match c {
        S3Credentials::Keys {
            access_key_id,
            secret_key,
        } => Ok(aws_credential_types::Credentials::new(
            access_key_id.expose(),
            secret_key.expose(),
            None,
            None,
            "Authentication",
        )),
        S3Credentials::Role(role) => role_credentials(role).await,
    }
}

/// The instance role's temporary credentials, as cfn-init's `roleName` reads them
/// (`cfnbootstrap/util.py:357-365@25fabe91`), through the process's IMDS client.
async fn role_credentials(
    role: &str,
) -> std::result::Result<aws_credential_types::Credentials, Attempt> {
    crate::aws::credentials::InstanceRole::named(role)
        .load()
        .await
        .map_err(|e| Attempt::Fatal(e.to_string()))
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

async fn default_chain(
    region: String,
) -> std::result::Result<aws_credential_types::Credentials, Attempt> {
    use aws_credential_types::provider::ProvideCredentials;
    let provider = crate::aws::credentials::default_chain(&region).await;
    provider.provide_credentials().await.map_err(|e| {
        Attempt::Fatal(format!(
            "no AWS credentials: {}",
            crate::aws::error_chain(&e)
        ))
    })
}

/// The one region rule ([`crate::aws::region`]), IMDS asked for a few seconds at most.
async fn default_region() -> String {
    crate::aws::region::resolve(
        None,
        crate::aws::region::Instance::Imds(crate::boot::identity::UNBOUNDED_CALLER_LIMIT),
    )
    .await
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_made_at_the_first_download_only() {
        let auth = AuthConfig::default();
        let f = Fetcher::new(&auth).unwrap();
        assert!(f.http.get().is_none() && f.signed_http.get().is_none());
        let a = f.client(false).ok().unwrap() as *const reqwest::Client;
        assert!(f.signed_http.get().is_none());
        // The second use is the same client, not another load of the trust store.
        assert_eq!(a, f.client(false).ok().unwrap() as *const reqwest::Client);
        assert!(f.client(true).is_ok() && f.signed_http.get().is_some());
    }

    #[test]
    fn s3_urls() {
        let l = |u: &str| s3_location(u).map(|l| (l.bucket, l.key, l.region));
        assert_eq!(
            l("s3://b/k/x.tgz"),
            Some(("b".into(), "k/x.tgz".into(), None))
        );
        assert_eq!(
            l("https://my.bucket.s3.amazonaws.com/a/b"),
            Some(("my.bucket".into(), "a/b".into(), None))
        );
        assert_eq!(
            l("https://b.s3.eu-west-1.amazonaws.com/a"),
            Some(("b".into(), "a".into(), Some("eu-west-1".into())))
        );
        assert_eq!(
            l("https://s3-eu-west-1.amazonaws.com/b/a"),
            Some(("b".into(), "a".into(), Some("eu-west-1".into())))
        );
        assert_eq!(
            l("https://s3.amazonaws.com/b/a/c"),
            Some(("b".into(), "a/c".into(), None))
        );
        assert_eq!(l("https://example.com/b/a"), None);
        assert_eq!(l("https://github.com/o/r/tarball/main"), None);
    }

    #[test]
    fn xml_tags() {
        let body =
            "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>";
        assert_eq!(tag(body, "Region").as_deref(), Some("eu-west-1"));
        assert_eq!(s3_error_code(body), " (AuthorizationHeaderMalformed)");
        assert_eq!(tag("<Code></Code>", "Code"), None);
        assert_eq!(tag("nothing", "Code"), None);
    }

    #[test]
    fn keys_are_encoded() {
        assert_eq!(encode_key("a b/c+d.tgz"), "a%20b/c%2Bd.tgz");
    }

    #[test]
    fn download_waits_are_cfn_inits() {
        let caps: Vec<u64> = (1..=4).map(|n| DOWNLOADS.ceiling(n).as_secs()).collect();
        assert_eq!(caps, [1, 3, 7, 15]);
        for i in 1..10 {
            assert!(DOWNLOADS.delay(i) <= Duration::from_secs(20));
        }
        assert_eq!(DOWNLOADS.max_attempts, Some(5));
    }
}
