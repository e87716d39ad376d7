//! One JSON line per phase, and one for the run, on stderr next to the human log lines: a
//! journald/CloudWatch query can chart phase durations and outcomes across a fleet without
//! parsing prose. Every line is redacted (see [`crate::sys::redact`]).

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Step;

/// The value of the `event` field, so the lines are easy to pick out of a mixed stream.
pub const PHASE: &str = "ecs-bootstrap.phase";
pub const RUN: &str = "ecs-bootstrap.run";

pub fn phase(step: Step, duration: Duration, error: Option<&dyn std::fmt::Display>) {
    let mut v = json!({
        "event": PHASE,
        "phase": step,
        "outcome": if error.is_some() { "failed" } else { "ok" },
        "duration_ms": duration.as_millis() as u64,
    });
    if let Some(e) = error {
        v["error"] = Value::String(e.to_string());
    }
    emit(&v);
}

pub fn run(
    status: &str,
    failed_step: Option<Step>,
    reason: Option<String>,
    signal: &str,
    duration: Duration,
) {
    emit(&json!({
        "event": RUN,
        "status": status,
        "failed_phase": failed_step,
        "reason": reason,
        "signal": signal,
        "duration_ms": duration.as_millis() as u64,
    }));
}

/// The encoded line, redacted field by field *before* encoding: in the encoded text a secret
/// containing `"` or `\` is escaped and no longer matches its registered form.
fn line(v: &Value) -> String {
    let mut v = v.clone();
    crate::sys::redact::value(&mut v);
    v.to_string() + "\n"
}

fn emit(v: &Value) {
    let line = line(v);
    // A lost event line must never fail the run.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_with_quotes_and_backslashes_is_redacted_in_the_event() {
        let secret = r#"pa"ss\wo'rd-events"#;
        crate::sys::redact::register(secret);
        let error = format!("login failed with {secret}");
        let out = line(&json!({"event": PHASE, "error": error}));
        assert!(!out.contains("wo'rd-events"), "{out}");
        assert!(out.contains(crate::sys::redact::REDACTED), "{out}");
    }
}
