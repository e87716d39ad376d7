//! The trust store the AWS APIs need, checked before anything relies on it.
//!
//! The SDK's HTTPS client (aws-smithy-http-client, rustls) loads the system's root CA
//! certificates with `rustls-native-certs` when its first connector is built: `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set, else the bundles `openssl-probe` finds (`/etc/ssl/certs/...`,
//! `/etc/pki/tls/...`). With none it does not report an error: a debug build panics
//! (`debug_assert!` "no valid root certificates parsed", exit 101) and a release build makes
//! every HTTPS call fail with `UnknownIssuer`, retried until the deadline. Neither names the
//! cause. So [`native_roots`] runs the same loader once, up front, and turns "nothing usable"
//! into [`Error::NoCaCertificates`] naming where it looked; the IMDS clients (plain HTTP) get a
//! client with an empty trust store ([`imds_http_client`]) so they never load or need it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::error::Error;

/// How many usable root certificates the system has, or why there are none. Loaded once per
/// process, as the SDK does.
pub fn native_roots() -> Result<usize, Error> {
    static ROOTS: OnceLock<Result<usize, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let from_env = env_locations();
            let locations = if from_env.is_empty() {
                probed_locations()
            } else {
                from_env
            };
            count_usable(rustls_native_certs::load_native_certs(), &locations)
        })
        .clone()
        .map_err(|detail| Error::NoCaCertificates { detail })
}

/// The same check for explicit locations (what `SSL_CERT_FILE`/`SSL_CERT_DIR` would name): the
/// tests' way to point the check at a bundle.
#[cfg(test)]
fn roots_at(file: Option<&Path>, dir: Option<&Path>) -> Result<usize, Error> {
    let mut locations = Vec::new();
    if let Some(f) = file {
        locations.push(Location::new("SSL_CERT_FILE", f));
    }
    if let Some(d) = dir {
        locations.push(Location::new("SSL_CERT_DIR", d));
    }
    count_usable(
        rustls_native_certs::load_certs_from_paths(file, dir),
        &locations,
    )
    .map_err(|detail| Error::NoCaCertificates { detail })
}

/// An HTTP client for IMDS, which is plain HTTP on a link-local address: an empty trust store,
/// so building it never loads (or trips over the absence of) the system's CA certificates.
pub fn imds_http_client() -> SharedHttpClient {
    let ctx = TlsContext::builder()
        .with_trust_store(TrustStore::empty())
        .build()
        .expect("a TLS context without certificates always builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(ctx)
        .build_https()
}

/// What the IMDS clients are configured with: the defaults, with [`imds_http_client`].
pub fn imds_provider_config() -> aws_config::provider_config::ProviderConfig {
    aws_config::provider_config::ProviderConfig::without_region()
        .with_http_client(imds_http_client())
}

/// A place the loader looked: the variable (or "probed") and the path.
struct Location {
    source: &'static str,
    path: PathBuf,
}

impl Location {
    fn new(source: &'static str, path: &Path) -> Self {
        Location {
            source,
            path: path.to_path_buf(),
        }
    }
}

fn env_locations() -> Vec<Location> {
    let mut out = Vec::new();
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        out.push(Location::new("SSL_CERT_FILE", Path::new(&f)));
    }
    if let Some(dirs) = std::env::var_os("SSL_CERT_DIR") {
        for d in std::env::split_paths(&dirs).filter(|d| !d.as_os_str().is_empty()) {
            out.push(Location::new("SSL_CERT_DIR", &d));
        }
    }
    out
}

fn probed_locations() -> Vec<Location> {
    let p = openssl_probe::probe();
    p.cert_file
        .iter()
        .chain(p.cert_dir.iter())
        .map(|path| Location::new("found", path))
        .collect()
}

fn count_usable(
    loaded: rustls_native_certs::CertificateResult,
    locations: &[Location],
) -> Result<usize, String> {
    let mut store = rustls::RootCertStore::empty();
    let (valid, invalid) = store.add_parsable_certificates(loaded.certs);
    if valid > 0 {
        return Ok(valid);
    }
    let looked = if locations.is_empty() {
        "no CA bundle in any standard location (/etc/ssl/certs/ca-certificates.crt, \
         /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/certs, ...) and SSL_CERT_FILE/SSL_CERT_DIR \
         not set"
            .to_string()
    } else {
        let names: Vec<String> = locations
            .iter()
            .map(|l| format!("{}={}", l.source, l.path.display()))
            .collect();
        format!("none in {}", names.join(", "))
    };
    let mut detail = looked;
    if invalid > 0 {
        detail.push_str(&format!("; {invalid} certificate(s) found but unparsable"));
    }
    for e in loaded.errors.iter().take(3) {
        detail.push_str(&format!("; {e}"));
    }
    Err(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_locations_are_a_typed_error_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.pem");
        std::fs::write(&file, "").unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        let err = roots_at(Some(&file), Some(&certs)).unwrap_err();
        assert_eq!(err.exit_code(), 7);
        let msg = err.to_string();
        assert!(msg.contains("no usable root CA certificates"), "{msg}");
        assert!(
            msg.contains(&format!("SSL_CERT_FILE={}", file.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("SSL_CERT_DIR={}", certs.display())),
            "{msg}"
        );
        assert!(msg.contains("SSL_CERT_FILE at a PEM bundle"), "{msg}");
    }

    #[test]
    fn a_missing_file_names_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("absent.pem");
        let msg = roots_at(Some(&file), None).unwrap_err().to_string();
        assert!(msg.contains("absent.pem"), "{msg}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk.pem");
        std::fs::write(
            &file,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let msg = roots_at(Some(&file), None).unwrap_err().to_string();
        assert!(msg.contains("unparsable"), "{msg}");
    }

    #[test]
    fn the_system_bundle_when_there_is_one() {
        // This machine has ca-certificates (the SDK's own tests need them); skip elsewhere.
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if bundle.exists() {
            assert!(roots_at(Some(bundle), None).unwrap() > 10);
        }
    }
}
