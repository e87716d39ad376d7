//! `AWS::CloudFormation::Authentication`: credentials for `files.source`, `sources` and package
//! URLs. `type: S3` signs requests (instance-role credentials by `roleName`, or keys) for the
//! listed `buckets`; `type: basic` sends a username and password to the listed `uris`.
//!
//! Every secret lives in a [`Secret`], whose Debug, Display and Serialize print `<redacted>`:
//! a plan, a log line or an error message cannot show one by accident.

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::error::Result;
use crate::input::{Keys, Node};

pub const BLOCK: &str = "AWS::CloudFormation::Authentication";

/// A value that must never be shown. The only way to read it is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Auth {
    S3 {
        credentials: S3Credentials,
        buckets: Vec<String>,
    },
    #[serde(rename = "basic")]
    Basic {
        username: String,
        password: Secret,
        uris: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum S3Credentials {
    /// Temporary credentials of this instance role, read from IMDS when needed.
    Role(String),
    #[serde(rename_all = "camelCase")]
    Keys {
        access_key_id: Secret,
        secret_key: Secret,
    },
}

/// All named Authentication entries of one Metadata document, in template order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    entries: Vec<(String, Auth)>,
}

/// As the template has it: a mapping of names to entries (secrets redacted).
impl Serialize for AuthConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (name, auth) in &self.entries {
            m.serialize_entry(name, auth)?;
        }
        m.end()
    }
}

impl AuthConfig {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// One line per entry for the plan, without secrets.
    pub fn describe(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(name, a)| match a {
                Auth::S3 {
                    credentials,
                    buckets,
                } => format!(
                    "{name}: S3 with {} for buckets {}",
                    match credentials {
                        S3Credentials::Role(r) => format!("the credentials of role {r}"),
                        S3Credentials::Keys { .. } => "access keys <redacted>".to_string(),
                    },
                    buckets.join(", ")
                ),
                Auth::Basic { username, uris, .. } => format!(
                    "{name}: basic as {username} (password <redacted>) for {}",
                    uris.join(", ")
                ),
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Auth> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// The entry to use for `url` when none is named, as cfn-init picks it: an S3 entry that
    /// lists the URL's bucket, else a basic entry with a `uris` prefix of the URL.
    pub fn for_url(&self, url: &str) -> Option<(&str, &Auth)> {
        let bucket = crate::init::fetch::s3_location(url).map(|l| l.bucket);
        self.entries
            .iter()
            .find(|(_, a)| match (a, &bucket) {
                (Auth::S3 { buckets, .. }, Some(b)) => buckets.iter().any(|x| x == b),
                _ => false,
            })
            .or_else(|| {
                self.entries.iter().find(|(_, a)| match a {
                    Auth::Basic { uris, .. } => uris.iter().any(|u| uri_covers(u, url)),
                    _ => false,
                })
            })
            .map(|(n, a)| (n.as_str(), a))
    }

    /// Resolves the `authentication` key of a file (or the implicit choice by URL).
    pub fn choose<'a>(
        &'a self,
        named: Option<&str>,
        url: &str,
        key_path: &str,
    ) -> Result<Option<(&'a str, &'a Auth)>> {
        match named {
            Some(name) => match self.entries.iter().find(|(n, _)| n == name) {
                Some((n, a)) => Ok(Some((n.as_str(), a))),
                // As cfn-init (auth.py:360-362@25fabe91): an undefined name falls back to the
                // entry chosen by bucket or URI. A warning names it, so a 403 that follows does
                // not hide the typo.
                None => {
                    tracing::warn!(
                        key = key_path,
                        "names Authentication '{name}', which is not defined in {BLOCK} (defined: {}); choosing by URL as cfn-init does",
                        self.names().collect::<Vec<_>>().join(", ")
                    );
                    Ok(self.for_url(url))
                }
            },
            None => Ok(self.for_url(url)),
        }
    }
}

/// Reads the block from a resource's Metadata; unknown keys as `keys` says (cfn-init's block).
pub fn parse(metadata: &Value, keys: Keys) -> Result<AuthConfig> {
    let Some(block) = metadata.get(BLOCK) else {
        return Ok(AuthConfig::default());
    };
    let mut entries = Vec::new();
    for (name, entry) in Node::root(block, BLOCK, keys).entries()? {
        if let Some(auth) = parse_one(&entry)? {
            entries.push((name.to_string(), auth));
        }
    }
    Ok(AuthConfig { entries })
}

/// One entry; `None` for one cfn-init skips with a warning (auth.py:322-356@25fabe91): an S3
/// entry with neither keys nor roleName, or a type other than S3 or basic.
fn parse_one(entry: &Node) -> Result<Option<Auth>> {
    let path = entry.path();
    const KEYS: &[&str] = &[
        "type",
        "accessKeyId",
        "secretKey",
        "buckets",
        "roleName",
        "username",
        "password",
        "uris",
    ];
    entry.only_keys(KEYS)?;
    // The values of secret keys are never put into an error message.
    let string = |key: &str| -> Result<Option<String>> {
        entry.opt(key, |n| Ok(n.non_empty_str()?.to_string()))
    };
    let list = |key: &str| -> Result<Vec<String>> {
        Ok(entry.opt(key, Node::str_or_list)?.unwrap_or_default())
    };
    let ty = string("type")?.unwrap_or_default();
    match ty.to_ascii_lowercase().as_str() {
        "s3" => {
            // cfn-init's order: keys when both are there, else roleName.
            let credentials = match (
                string("accessKeyId")?,
                string("secretKey")?,
                string("roleName")?,
            ) {
                (Some(ak), Some(sk), role) => {
                    if role.is_some() {
                        tracing::warn!(
                            key = path,
                            "has both keys and roleName: the keys are used, as cfn-init does"
                        );
                    }
                    S3Credentials::Keys {
                        access_key_id: Secret::new(ak),
                        secret_key: Secret::new(sk),
                    }
                }
                (_, _, Some(role)) => S3Credentials::Role(role),
                _ => {
                    tracing::warn!(
                        key = path,
                        "an S3 entry needs accessKeyId and secretKey, or roleName: skipped, as cfn-init skips it"
                    );
                    return Ok(None);
                }
            };
            Ok(Some(Auth::S3 {
                credentials,
                buckets: list("buckets")?,
            }))
        }
        "basic" => {
            let username =
                string("username")?.ok_or_else(|| entry.error("a basic entry needs a username"))?;
            let password =
                string("password")?.ok_or_else(|| entry.error("a basic entry needs a password"))?;
            Ok(Some(Auth::Basic {
                username,
                password: Secret::new(password),
                uris: list("uris")?,
            }))
        }
        _ => {
            tracing::warn!(
                key = %entry.key_path("type"),
                "'{ty}' is not S3 or basic: the entry is skipped, as cfn-init skips it"
            );
            Ok(None)
        }
    }
}

/// True when `uri` (a basic entry's `uris` item) covers `url`: the same scheme, host and port
/// after parsing, and `url`'s path under `uri`'s. A string prefix is not enough:
/// `http://127.0.0.1:A@localhost:B/` starts with `http://127.0.0.1:A` and goes to localhost.
/// Userinfo in `url` never matches: credentials are ours to add.
fn uri_covers(uri: &str, url: &str) -> bool {
    let (Ok(u), Ok(x)) = (reqwest::Url::parse(uri), reqwest::Url::parse(url)) else {
        return false;
    };
    u.scheme() == x.scheme()
        && u.host() == x.host()
        && u.port_or_known_default() == x.port_or_known_default()
        && x.username().is_empty()
        && x.password().is_none()
        // Prefix of the path and query, as cfn-init's string prefix meant.
        && path_and_query(&x).starts_with(&path_and_query(&u))
}

fn path_and_query(u: &reqwest::Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(metadata: &Value) -> Result<AuthConfig> {
        crate::init::test_auth(metadata)
    }

    #[test]
    fn basic_uris_match_scheme_host_and_port_not_a_string_prefix() {
        let uri = "http://127.0.0.1:8080";
        assert!(uri_covers(uri, "http://127.0.0.1:8080/a.tgz"));
        assert!(!uri_covers(uri, "http://127.0.0.1:8080@localhost:9/a.tgz"));
        assert!(!uri_covers(uri, "http://127.0.0.1:80800/a"));
        assert!(!uri_covers("http://h/p/", "https://h/p/x"));
        assert!(uri_covers("https://h/p/", "https://h:443/p/x"));
        assert!(!uri_covers("https://h/p/", "https://h/other"));
        assert!(!uri_covers("https://h.example", "https://h.example.evil/x"));
    }
    use serde_json::json;

    fn config() -> AuthConfig {
        parse(&json!({BLOCK: {
            "S3Keys": {"type": "S3", "accessKeyId": "AKIAEXAMPLE", "secretKey": "s3cr3t-key", "buckets": ["my-bucket"]},
            "Role": {"type": "s3", "roleName": "InstanceRole", "buckets": "other-bucket"},
            "Web": {"type": "basic", "username": "u", "password": "hunter2", "uris": ["https://example.com/private/"]}
        }}))
        .unwrap()
    }

    #[test]
    fn secrets_never_show() {
        let c = config();
        let shown = format!(
            "{c:?} {} {}",
            serde_json::to_string(&c).unwrap(),
            serde_json::to_string_pretty(&c).unwrap()
        );
        for secret in ["AKIAEXAMPLE", "s3cr3t-key", "hunter2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let shown = format!("{shown} {}", c.describe().join("\n"));
        assert!(shown.contains("<redacted>") && shown.contains("InstanceRole"));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["Role"],
            serde_json::json!({"type": "S3", "credentials": {"role": "InstanceRole"}, "buckets": ["other-bucket"]})
        );
        assert_eq!(v["Web"]["password"], "<redacted>");
        assert_eq!(
            v["S3Keys"]["credentials"]["keys"]["secretKey"],
            "<redacted>"
        );
    }

    #[test]
    fn chosen_by_bucket_or_uri_prefix() {
        let c = config();
        assert_eq!(
            c.for_url("https://my-bucket.s3.amazonaws.com/a/b")
                .unwrap()
                .0,
            "S3Keys"
        );
        assert_eq!(c.for_url("s3://other-bucket/k").unwrap().0, "Role");
        assert_eq!(
            c.for_url("https://example.com/private/x.tgz").unwrap().0,
            "Web"
        );
        assert!(c.for_url("https://example.com/public/x").is_none());
        assert!(c.for_url("s3://third-bucket/k").is_none());
        // An undefined name falls back to the choice by URL, as in cfn-init (with a warning).
        assert_eq!(
            c.choose(
                Some("Nope"),
                "https://example.com/private/x",
                "I.config.files./a.authentication",
            )
            .unwrap()
            .unwrap()
            .0,
            "Web"
        );
        assert!(c.choose(Some("Nope"), "https://x", "p").unwrap().is_none());
        assert_eq!(
            c.choose(Some("Web"), "https://x", "p").unwrap().unwrap().0,
            "Web"
        );
    }

    #[test]
    fn bad_entries_name_the_key_and_hide_secrets() {
        let bad = |v: Value| {
            parse(&json!({ BLOCK: { "A": v } }))
                .unwrap_err()
                .to_string()
        };
        // Skipped with a warning, as cfn-init skips them: an unknown type, an S3 entry without
        // credentials.
        for skipped in [
            json!({"type": "ftp"}),
            json!({"type": "S3", "accessKeyId": "AKIAX"}),
        ] {
            assert!(parse(&json!({ BLOCK: { "A": skipped } }))
                .unwrap()
                .is_empty());
        }
        // Keys win over roleName (cfn-init's order).
        let c = parse(&json!({ BLOCK: { "A": {"type": "S3", "accessKeyId": "AKIAX", "secretKey": "s", "roleName": "R"} } }))
            .unwrap();
        assert!(matches!(
            &c.entries[0].1,
            Auth::S3 {
                credentials: S3Credentials::Keys { .. },
                ..
            }
        ));
        let e = bad(json!({"type": "basic", "username": "u", "password": 5}));
        assert!(e.contains("A.password") && !e.contains('5'), "{e}");
        let e = super::parse(
            &json!({ BLOCK: { "A": {"type": "basic", "user": "u"} } }),
            crate::input::Keys::Strict,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("A.user") && e.contains("unknown key"), "{e}");
        assert!(parse(&json!({})).unwrap().is_empty());
    }
}
