//! Secrets never reach a log line, an event or the state file.
//!
//! The secrets are the values the Metadata itself marks as secret: agent keys such as
//! `ECS_ENGINE_AUTH_DATA`, and the password / key fields of `AWS::CloudFormation::Authentication`.
//! They are registered once the Metadata is read, and every line written to stderr (the log
//! writer, the JSON events, the final FAILURE line) goes through [`text`].

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub const REDACTED: &str = "<redacted>";

/// Key names whose values are secret wherever they appear in the Metadata (case-insensitive).
const SECRET_KEYS: &[&str] = &[
    "password",
    "secretkey",
    "accesskeyid",
    "secretaccesskey",
    "sessiontoken",
    "token",
    "aws_secret_access_key",
    "aws_session_token",
    "ecs_engine_auth_data",
];

/// Shorter strings are not redacted: replacing "a" or "true" everywhere would garble the log
/// and protect nothing.
const MIN_LEN: usize = 4;

fn secrets() -> &'static Mutex<Vec<String>> {
    static S: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Vec::new()))
}

pub fn register(secret: &str) {
    if secret.len() < MIN_LEN {
        return;
    }
    // Also its escaped spelling: a log field formatted with `?` (or any JSON) writes `"` and
    // `\` escaped, and the raw form would no longer match.
    let escaped = serde_json::to_string(secret).unwrap_or_default();
    let escaped = escaped.get(1..escaped.len() - 1).unwrap_or(secret);
    let mut s = secrets().lock().unwrap_or_else(|e| e.into_inner());
    for form in [secret, escaped] {
        if !s.iter().any(|x| x == form) {
            s.push(form.to_string());
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    s.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

/// Registers the password of every `scheme://user:password@host` URL found in `s` (a proxy
/// URL in the Metadata, a source URL): the URL is shown elsewhere with its userinfo removed
/// ([`urls`]), but the password alone may also turn up, e.g. in a command's output.
pub fn register_url_passwords(s: &str) {
    for (start, end) in userinfo_spans(s) {
        if let Some((_, pw)) = s[start..end].split_once(':') {
            register(pw);
        }
    }
}

/// Byte ranges of the `user:password` part of each `scheme://user:password@host` in `s`.
fn userinfo_spans(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("://") {
        let start = from + i + 3;
        // The authority ends at the path, the query, the fragment or anything that cannot be
        // part of a URL in running text.
        let end = s[start..]
            .find(|c: char| "/?#".contains(c) || c.is_whitespace() || "\"'<>`".contains(c))
            .map_or(s.len(), |j| start + j);
        if let Some(at) = s[start..end].rfind('@') {
            out.push((start, start + at));
        }
        from = end.max(start);
    }
    out
}

/// `s` with the userinfo of every URL in it replaced: `http://<redacted>@proxy:3128`.
pub fn urls(s: &str) -> String {
    let spans = userinfo_spans(s);
    if spans.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end) in spans {
        out.push_str(&s[last..start]);
        out.push_str(REDACTED);
        last = end;
    }
    out.push_str(&s[last..]);
    out
}

/// True when `s` holds a URL with userinfo (a proxy with a password is a secret).
pub fn has_url_userinfo(s: &str) -> bool {
    !userinfo_spans(s).is_empty()
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str())
        || crate::config::agent_keys::is_secret(&k.to_ascii_uppercase())
}

/// Registers every value under a secret key anywhere in `metadata` (the value itself, its JSON
/// form, and every string inside it).
pub fn register_from_metadata(metadata: &Value) {
    match metadata {
        Value::Object(m) => {
            for (k, v) in m {
                if is_secret_key(k) {
                    register_value(v);
                } else {
                    register_from_metadata(v);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(register_from_metadata),
        Value::String(s) => register_url_passwords(s),
        _ => {}
    }
}

/// `metadata` as it may be printed (`get-metadata`): values under a secret key replaced,
/// URL userinfo removed from every string.
pub fn for_display(metadata: Value) -> Value {
    match metadata {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(&k) {
                        Value::String(REDACTED.into())
                    } else {
                        for_display(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(for_display).collect()),
        Value::String(s) => Value::String(urls(&s)),
        other => other,
    }
}

fn register_value(v: &Value) {
    match v {
        Value::String(s) => register(s),
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => register(&n.to_string()),
        Value::Array(_) | Value::Object(_) => {
            register(&v.to_string());
            match v {
                Value::Array(a) => a.iter().for_each(register_value),
                Value::Object(m) => m.values().for_each(register_value),
                _ => {}
            }
        }
    }
}

/// `s` with every registered secret, and the userinfo of every URL, replaced by `<redacted>`.
pub fn text(s: &str) -> String {
    let secrets = secrets().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = urls(s);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// Redacts every string in `v` (keys included) in place: for JSON, done before encoding,
/// because escaping changes how a secret with `"` or `\` is spelled.
pub fn value(v: &mut Value) {
    match v {
        Value::String(s) => *s = text(s),
        Value::Array(a) => a.iter_mut().for_each(value),
        Value::Object(m) => {
            let entries = std::mem::take(m);
            for (k, mut x) in entries {
                value(&mut x);
                m.insert(text(&k), x);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Where the AWS SDK logs whole HTTP responses, at TRACE: DescribeStackResource's body is the
/// Metadata itself, logged before its secrets can be registered for redaction.
const WIRE_TARGETS: &[&str] = &[
    "aws_smithy_runtime::client::orchestrator",
    "aws_smithy_runtime::client::orchestrator::http",
];

/// `filter` with the SDK's response-body logging capped at DEBUG, whatever
/// `ECS_BOOTSTRAP_LOG` asked for (a directive for the same target replaces the user's, and
/// these are more specific than `trace` or `aws_smithy_runtime=trace`). Only a filter that
/// can enable TRACE somewhere gets the cap: added to one that cannot, the directive *raises*
/// those targets to DEBUG (the default's `aws_smithy_runtime=warn` is less specific), and
/// every run logged some 40 lines of the SDK's orchestration at the default verbosity.
pub fn without_wire_bodies(
    mut filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::filter::LevelFilter;
    if filter
        .max_level_hint()
        .is_some_and(|most| most < LevelFilter::TRACE)
    {
        return filter;
    }
    for target in WIRE_TARGETS {
        if let Ok(d) = format!("{target}=debug").parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// One formatted log event as written: control characters from a template value (a `\r`
/// that rewrites the line, an ESC sequence that clears or conceals it) made visible, secrets
/// redacted. ESC too: tracing-subscriber escapes it in the message but not in `%` fields,
/// which is why the subscriber writes without colours (src/main.rs).
fn log_line(buf: &[u8]) -> String {
    text(&crate::sys::shown::lines(&String::from_utf8_lossy(buf)))
}

/// A stderr writer for the log subscriber: tracing's fmt layer writes each event in one call,
/// so each event is redacted whole.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = log_line(buf);
        std::io::stderr().lock().write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub fn stderr() -> Stderr {
    Stderr
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_from_the_metadata_are_redacted() {
        register_from_metadata(&json!({
            "AWS::CloudFormation::Authentication": {
                "S3Access": {"type": "S3", "accessKeyId": "AKIAEXAMPLEKEY1", "secretKey": "s3cr3t-value-xyz"},
                "Basic": {"type": "basic", "username": "bob", "password": "hunter2-pw"}
            },
            "ecs-bootstrap": {"AgentConfig": {"ECS_ENGINE_AUTH_DATA": {"https://r": {"auth": "dXNlcjpwYXNz"}}}},
            "other": {"token": "ab"}
        }));
        let line = "failed: AKIAEXAMPLEKEY1 s3cr3t-value-xyz hunter2-pw dXNlcjpwYXNz bob ab";
        let shown = text(line);
        for s in [
            "AKIAEXAMPLEKEY1",
            "s3cr3t-value-xyz",
            "hunter2-pw",
            "dXNlcjpwYXNz",
        ] {
            assert!(!shown.contains(s), "{shown}");
        }
        // Not secrets, or too short to redact sensibly.
        assert!(shown.contains("bob") && shown.ends_with(" ab"), "{shown}");
    }

    #[test]
    fn trace_logging_never_prints_the_sdks_response_bodies() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Capture::default();
        let w = out.clone();
        for user in [
            "trace",
            "aws_smithy_runtime=trace,aws_smithy_runtime::client::orchestrator::http=trace",
        ] {
            let filter = without_wire_bodies(tracing_subscriber::EnvFilter::new(user));
            let w = w.clone();
            let sub = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(move || w.clone())
                .finish();
            tracing::subscriber::with_default(sub, || {
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator::http", response = "metadata-body", "read HTTP response body");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", response = "metadata-body", "received response");
                tracing::trace!(target: "ecs_bootstrap::boot", "still-traced");
            });
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("metadata-body"), "{text}");
        assert!(text.contains("still-traced"), "{text}");
    }

    #[test]
    fn the_cap_never_raises_the_sdk_above_what_was_asked() {
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;
        // The default filter (src/cli/logging.rs) at verbosity 0 and 1, and a user's own.
        for user in [
            "info,aws_smithy_runtime=warn",
            "debug,aws_smithy_runtime=warn",
            "warn",
        ] {
            let filter = without_wire_bodies(tracing_subscriber::EnvFilter::new(user));
            let sub = tracing_subscriber::registry().with(filter);
            tracing::subscriber::with_default(sub, || {
                let on = tracing::enabled!(target: "aws_smithy_runtime::client::orchestrator", Level::DEBUG);
                assert!(!on, "{user}: the SDK's orchestrator logs at DEBUG");
            });
        }
    }

    #[test]
    fn log_lines_show_carriage_returns() {
        let event = b"INFO running command 01: curl x | sh\r\x1b[2Kecho hi\n";
        assert_eq!(
            log_line(event),
            "INFO running command 01: curl x | sh\\r\\e[2Kecho hi\n"
        );
    }

    #[test]
    fn escaped_spellings_of_a_secret_are_redacted() {
        register(r#"q"uo\te-secret"#);
        let debug = format!("{:?}", r#"login q"uo\te-secret"#);
        assert!(!text(&debug).contains("te-secret"), "{}", text(&debug));
    }

    #[test]
    fn url_userinfo_is_redacted_and_the_password_registered() {
        let line = "GET http://bob:pr0xy-pw@proxy.internal:3128/x failed; retry https://h/p?a=b@c";
        assert_eq!(
            urls(line),
            "GET http://<redacted>@proxy.internal:3128/x failed; retry https://h/p?a=b@c"
        );
        assert!(has_url_userinfo("http://u:p@h") && !has_url_userinfo("http://h/@x"));
        register_from_metadata(&json!({"ecs-bootstrap": {"Proxy": "http://bob:pr0xy-pw@p:1"}}));
        assert_eq!(text("echo pr0xy-pw"), "echo <redacted>");
    }
}
