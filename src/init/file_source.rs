//! Init `files` with `source` (downloaded, with `authentication`) and `context` (mustache).
//!
//! cfn-init renders `context` with chevron (Amazon Linux 2023) or pystache (Amazon Linux 2): see
//! [`super::chevron`] and [`super::mustache`] for how closely each is followed.

use serde_json::Value;

use super::fetch::{Fetcher, Request};
use super::files::{self, FileSpec};
use crate::error::{Error, Result};
use crate::input::kind;
use crate::sys::fs::{Root, WriteOutcome};

/// A file is held in memory to be written atomically; this bounds it.
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads a `context` key: usually a mapping (what mustache looks names up in). Any other
/// non-null value is a context too, as in cfn-init (`if context is None` is its only test,
/// file_tool.py:259,277@25fabe91): names are then not found and render as nothing.
pub fn context(v: Option<&Value>, path: &str) -> Result<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(other) => {
            tracing::warn!(
                key = %format!("{path}.context"),
                "is {}, not a mapping: names in the template will render as nothing, as in cfn-init",
                kind(other)
            );
            Ok(Some(other.clone()))
        }
    }
}

pub fn render(template: &[u8], ctx: &Value, path: &str) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(template).map_err(|_| {
        Error::invalid(
            path,
            "is not UTF-8 text, so it cannot be a mustache template (drop 'context')",
        )
    })?;
    super::mustache::render(text, ctx)
        .map(String::into_bytes)
        .map_err(|e| Error::invalid(path, format!("is not a valid mustache template: {e}")))
}

/// Writes a file: its `content`, or its `source` downloaded (and rendered with `context`).
pub async fn apply(
    spec: &FileSpec,
    root: &Root,
    config: &str,
    fetcher: &Fetcher<'_>,
) -> Result<WriteOutcome> {
    let Some(url) = &spec.source else {
        return files::apply(spec, root, config);
    };
    let key_path = format!("{}{config}.files.{}.source", super::BLOCK_PREFIX, spec.path);
    let auth_path = format!(
        "{}{config}.files.{}.authentication",
        super::BLOCK_PREFIX,
        spec.path
    );
    // The named entry is checked before the download, so its error names the right key.
    if let Some(name) = &spec.authentication {
        fetcher.check_auth(name, &auth_path)?;
    }
    let bytes = fetcher
        .fetch_bytes(&Request {
            url,
            auth_name: spec.authentication.as_deref(),
            key_path: &key_path,
            max_bytes: MAX_FILE_BYTES,
        })
        .await?;
    let content = match &spec.context {
        Some(ctx) => render(&bytes, ctx, &key_path)?,
        None => bytes,
    };
    files::write(spec, &content, root, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::auth;
    use crate::init::test_http::Server;
    use base64::Engine;
    use serde_json::json;

    /// An Authentication block whose one entry, `S3`, signs for the bucket `bucket` with the
    /// access key AKIDEXAMPLE and `secret`.
    fn s3_keys(secret: &str) -> auth::AuthConfig {
        crate::init::test_auth(&json!({auth::BLOCK: {
            "S3": {"type": "S3", "accessKeyId": "AKIDEXAMPLE", "secretKey": secret, "buckets": ["bucket"]}
        }}))
        .unwrap()
    }

    fn spec(v: Value) -> FileSpec {
        files::parse_at(&json!({ "/etc/app.conf": v }), "I.config.files")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn context_renders_content_like_chevron() {
        let s = spec(json!({
            "content": "port={{port}} name={{name}} raw={{{name}}} {{#list}}[{{.}}]{{/list}}{{^none}}!{{/none}}",
            "context": {"port": 8080, "name": "<a&b>", "list": ["x", "y"]}
        }));
        assert_eq!(
            s.content.as_text().unwrap(),
            "port=8080 name=&lt;a&amp;b&gt; raw=<a&b> [x][y]!"
        );
        assert!(s.context.is_none());
        // A context that is not a mapping finds no names (cfn-init renders with it all the same).
        let s = files::parse_at(
            &json!({"/x": {"content": "a{{b}}c", "context": "nope"}}),
            "I.config.files",
        )
        .unwrap()
        .remove(0);
        assert_eq!(s.content.0, b"ac");
        let e = files::parse_at(
            &json!({"/x": {"content": "{{#a}}", "context": {}}}),
            "I.config.files",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("I.config.files./x.content") && e.contains("mustache"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn source_downloads_renders_and_uses_basic_auth() {
        let auth_header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("deploy:s3cr3t")
        );
        let server = Server::with_auth(
            vec![
                ("/pub/app.conf".into(), b"cluster={{cluster}}\n".to_vec()),
                ("/private/key".into(), b"KEY".to_vec()),
            ],
            vec![("/private/key".into(), auth_header.clone())],
        );
        let authc = crate::init::test_auth(&json!({auth::BLOCK: {
            "Web": {"type": "basic", "username": "deploy", "password": "s3cr3t", "uris": [format!("{}/private/", server.url())]}
        }}))
        .unwrap();
        // A region, so no test asks the real IMDS for one.
        let fetcher = Fetcher::new(&authc).unwrap().with_region("us-east-1");
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());

        let s = spec(
            json!({"source": format!("{}/pub/app.conf", server.url()), "context": {"cluster": "prod"}, "mode": "000600"}),
        );
        apply(&s, &root, "config", &fetcher).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/app.conf")).unwrap(),
            "cluster=prod\n"
        );

        // Chosen by URI prefix, without naming it.
        let s = spec(json!({"source": format!("{}/private/key", server.url())}));
        apply(&s, &root, "config", &fetcher).await.unwrap();
        assert_eq!(
            std::fs::read(d.path().join("etc/app.conf")).unwrap(),
            b"KEY"
        );
        let reqs = server.requests();
        assert_eq!(reqs[0].header("authorization"), None);
        assert_eq!(reqs[1].path, "/private/key");
        assert_eq!(reqs[1].header("authorization"), Some(auth_header.as_str()));

        // An undefined name falls back to the entry chosen by URL (cfn-init); a failed
        // download leaves the old file.
        let s = spec(
            json!({"source": format!("{}/private/key", server.url()), "authentication": "Nope"}),
        );
        apply(&s, &root, "config", &fetcher).await.unwrap();
        assert_eq!(
            server.requests()[2].header("authorization"),
            Some(auth_header.as_str())
        );
        let s = spec(json!({"source": format!("{}/missing", server.url())}));
        let e = apply(&s, &root, "config", &fetcher)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.files./etc/app.conf.source") && e.contains("404"),
            "{e}"
        );
        assert_eq!(
            std::fs::read(d.path().join("etc/app.conf")).unwrap(),
            b"KEY"
        );
    }

    #[tokio::test]
    async fn s3_keys_sign_the_request_without_leaking_the_secret() {
        let server = Server::start(vec![("/bucket/conf/app.json".into(), b"{}".to_vec())]);
        let authc = s3_keys("wJalrXUtnFEMI");
        // A region, so no test asks the real IMDS for one.
        let fetcher = Fetcher::new(&authc).unwrap().with_region("us-east-1");
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        // Path-style through the S3 endpoint variable, as in the moto tests.
        std::env::set_var("AWS_ENDPOINT_URL_S3", server.url());
        let s = spec(json!({"source": "s3://bucket/conf/app.json", "authentication": "S3"}));
        let r = apply(&s, &root, "config", &fetcher).await;
        std::env::remove_var("AWS_ENDPOINT_URL_S3");
        r.unwrap();
        let req = &server.requests()[0];
        let a = req.header("authorization").unwrap();
        assert!(
            a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{a}"
        );
        assert!(a.contains("/s3/aws4_request"), "{a}");
        assert!(!a.contains("wJalrXUtnFEMI"));
        assert!(req.header("x-amz-content-sha256").is_some());
    }

    #[tokio::test]
    async fn a_signed_request_is_not_followed_to_another_host() {
        // The token would travel with x-amz-date and x-amz-content-sha256: none may arrive.
        let other = Server::start(vec![("/conf/app.json".into(), b"{}".to_vec())]);
        let to = format!(
            "http://localhost:{}/conf/app.json",
            other.url().rsplit(':').next().unwrap()
        );
        let server = Server::start(vec![(
            "/conf/app.json".into(),
            format!("REDIRECT {to}").into_bytes(),
        )]);
        let authc = s3_keys("x");
        let fetcher = Fetcher::new(&authc).unwrap().with_region("us-east-1");
        let d = tempfile::tempdir().unwrap();
        let s = spec(
            json!({"source": format!("{}/conf/app.json", server.url()), "authentication": "S3"}),
        );
        let r = apply(&s, &Root::new(d.path()), "config", &fetcher).await;
        let leaked: Vec<_> = other
            .requests()
            .iter()
            .flat_map(|r| r.headers.clone())
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-amz-"))
            .collect();
        assert!(leaked.is_empty(), "{leaked:?}");
        assert!(r.is_err(), "a redirect of a signed request is an error");
    }

    #[tokio::test]
    async fn s3_bucket_in_another_region_is_retried_for_that_region() {
        let server = Server::s3_in_region(
            vec![("/conf/app.json".into(), b"{}".to_vec())],
            "ap-southeast-2",
        );
        let authc = s3_keys("x");
        // A region, so no test asks the real IMDS for one.
        let fetcher = Fetcher::new(&authc).unwrap().with_region("us-east-1");
        let d = tempfile::tempdir().unwrap();
        // An https URL (the server stands in for the bucket's host), named auth, no region in it.
        let s = spec(
            json!({"source": format!("{}/conf/app.json", server.url()), "authentication": "S3"}),
        );
        apply(&s, &Root::new(d.path()), "config", &fetcher)
            .await
            .unwrap();
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        assert!(reqs[1]
            .header("authorization")
            .unwrap()
            .contains("/ap-southeast-2/s3/aws4_request"));
    }
}
