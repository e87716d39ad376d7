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
    let mut s = secrets().lock().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
        // Longest first, so a secret containing another is replaced whole.
        s.sort_by_key(|x| std::cmp::Reverse(x.len()));
    }
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str()) || crate::agent_keys::is_secret(&k.to_ascii_uppercase())
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
        _ => {}
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

/// `s` with every registered secret replaced by `<redacted>`.
pub fn text(s: &str) -> String {
    let secrets = secrets().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = s.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// A stderr writer for the log subscriber: tracing's fmt layer writes each event in one call,
/// so each event is redacted whole.
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = text(&String::from_utf8_lossy(buf));
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
}
