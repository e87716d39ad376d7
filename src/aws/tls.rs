//! The trust store the AWS APIs need, checked before anything relies on it.
//!
//! The SDK's HTTPS client (aws-smithy-http-client, rustls) loads the system's root CA
//! certificates with `rustls-native-certs` when its first connector is built: `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set, else the bundles `openssl-probe` finds (`/etc/ssl/certs/...`,
//! `/etc/pki/tls/...`). With none it does not report an error: a debug build panics
//! (`debug_assert!` "no valid root certificates parsed", exit 101) and a release build makes
//! every HTTPS call fail with `UnknownIssuer`, retried until the deadline. Neither names the
//! cause. So [`native_roots`] checks the same places once, up front, and turns "nothing usable"
//! into [`Error::NoCaCertificates`] naming where it looked; the IMDS clients (plain HTTP) get a
//! client with an empty trust store ([`imds_http_client`]) so they never load or need it.
//!
//! The check stops at the first usable certificate of the bundle file: the loader decodes every
//! PEM certificate of the bundle and of the directory (about 300 on Debian) with a constant-time
//! base64 decoder, 18 M instructions, and the SDK loads them again for its own connector
//! (`aws-smithy-http-client-1.5.2/src/client/tls/rustls_provider.rs:117`, `NATIVE_ROOTS`): a
//! second full load here was a sixth of a run's instructions (tests/bench, overhead). Only when
//! the bundle has nothing usable does the check run the full loader, for the message.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::error::Error;

/// Whether the system has a usable root certificate, or why not. Checked once per process.
pub fn native_roots() -> Result<(), Error> {
    static ROOTS: OnceLock<Result<(), String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let from_env = env_locations();
            let locations = if from_env.is_empty() {
                probed_locations()
            } else {
                from_env
            };
            if bundle_has_usable(&locations) {
                return Ok(());
            }
            count_usable(rustls_native_certs::load_native_certs(), &locations).map(|_| ())
        })
        .clone()
        .map_err(|detail| Error::NoCaCertificates { detail })
}

/// Whether the bundle file among `locations` (`SSL_CERT_FILE`, or the one `openssl-probe`
/// found; the loader reads the same file, `rustls-native-certs-0.8.5/src/lib.rs:258-263`) holds
/// a certificate the SDK's trust store accepts. Every certificate of that file that decodes is
/// in the loader's result (its errors are per certificate, `lib.rs:346-361`), so `true` here
/// means the full load has at least one usable root too.
fn bundle_has_usable(locations: &[Location]) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let file = locations
        .iter()
        .find(|l| l.source != "SSL_CERT_DIR" && l.path.is_file());
    let Some(file) = file else { return false };
    let Ok(certs) = CertificateDer::pem_file_iter(&file.path) else {
        return false;
    };
    certs.flatten().any(|cert| {
        rustls::RootCertStore::empty()
            .add_parsable_certificates([cert])
            .0
            > 0
    })
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

/// A reqwest client for a local plain-HTTP API (the agent's introspection, IMDSv1): never
/// through a proxy, whatever HTTP_PROXY says, and, for an `http://` URL, with an empty trust
/// store: otherwise building the client loads and decodes every system root CA, a sixth of a
/// run's instructions (tests/bench, overhead). An `https://` URL keeps the system's roots.
pub fn local_http_client(
    url: &str,
    connect: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(connect)
        .timeout(timeout);
    if url.starts_with("http://") {
        builder = builder.tls_certs_only([]);
    }
    builder
        .build()
        .map_err(|e| Error::setup("an HTTP client", e))
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
        std::fs::write(&file, JUNK_PEM).unwrap();
        let msg = roots_at(Some(&file), None).unwrap_err().to_string();
        assert!(msg.contains("unparsable"), "{msg}");
    }

    /// A PEM block that is not a certificate.
    const JUNK_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    fn at(source: &'static str, path: &Path) -> Vec<Location> {
        vec![Location::new(source, path)]
    }

    #[test]
    fn the_quick_check_finds_a_root_after_junk_in_the_bundle() {
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if !bundle.exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mixed.pem");
        std::fs::write(
            &file,
            JUNK_PEM.to_string() + &std::fs::read_to_string(bundle).unwrap(),
        )
        .unwrap();
        assert!(bundle_has_usable(&at("SSL_CERT_FILE", &file)));
        assert!(bundle_has_usable(&at("found", bundle)));
        // The same answer as the full load, which is what the check stands in for.
        assert!(roots_at(Some(&file), None).unwrap() > 10);
    }

    #[test]
    fn the_quick_check_has_nothing_to_say_without_a_usable_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("junk.pem");
        std::fs::write(&file, JUNK_PEM).unwrap();
        assert!(!bundle_has_usable(&at("SSL_CERT_FILE", &file)));
        assert!(!bundle_has_usable(&at(
            "SSL_CERT_FILE",
            &dir.path().join("absent")
        )));
        // A directory is the full loader's job (it may hold the only usable roots).
        assert!(!bundle_has_usable(&at(
            "SSL_CERT_DIR",
            Path::new("/etc/ssl/certs")
        )));
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
