//! What the last run did, in `/var/lib/ecs-bootstrap/state.json` (0700 directory, 0600 file):
//! the record an operator (or a later run after a reboot) reads to know whether CloudFormation
//! was told.

use serde::{Deserialize, Serialize};

use crate::boot::identity::Identity;
use crate::boot::signal::{SignalSpec, Status};
use crate::error::Failure;
use crate::sys::fs::{write_atomic, Dir, FileMeta, Root};

pub const DIR: &str = "/var/lib/ecs-bootstrap";
pub const FILE: &str = "/var/lib/ecs-bootstrap/state.json";

/// Creates the state directory (0700: it holds what ran, and resume markers) and returns a
/// handle on it. The mode is set on the handle: a symlink in its place cannot get some other
/// directory chmodded (and under `--root` it cannot lead out of the root).
pub fn ensure_dir(root: &Root) -> crate::error::Result<Dir> {
    let dir = root.open_dir(DIR, Some(0o700))?;
    dir.set_mode(0o700)
        .map_err(|e| crate::error::Error::io("chmod", dir.path(), e))?;
    Ok(dir)
}

/// Writes `value` as pretty JSON to `file` (a path in the state directory), 0600, atomically.
pub fn write_private_json<T: Serialize>(
    root: &Root,
    file: &str,
    value: &T,
) -> crate::error::Result<()> {
    ensure_dir(root)?;
    let text = serde_json::to_string_pretty(value).expect("state always serialises") + "\n";
    write_atomic(
        root,
        file,
        text.as_bytes(),
        FileMeta {
            mode: 0o600,
            uid: None,
            gid: None,
        },
    )?;
    Ok(())
}

#[derive(Serialize)]
struct Record<'a> {
    instance_id: &'a str,
    stack: &'a str,
    signal_resource: &'a str,
    status: &'static str,
    failed_step: Option<String>,
    reason: Option<String>,
    signal_delivered: bool,
    finished_at_unix: u64,
}

/// Best effort: a state file that cannot be written must not turn a healthy instance into a
/// failed one, so problems are logged, not returned.
pub fn record(
    root: &Root,
    identity: &Identity,
    signal: &SignalSpec,
    status: Status,
    failure: Option<&Failure>,
    delivered: bool,
) {
    let rec = Record {
        instance_id: &identity.instance_id,
        stack: &signal.stack,
        signal_resource: &signal.resource,
        status: status.as_str(),
        failed_step: failure.map(|f| f.step.to_string()),
        reason: failure.map(|f| crate::sys::redact::text(&f.to_string())),
        signal_delivered: delivered,
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let result = write_private_json(root, FILE, &rec);
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the run's state");
    }
}

/// What a later run needs to know of an earlier one.
#[derive(Deserialize)]
struct Earlier {
    instance_id: String,
    stack: String,
    signal_resource: String,
    status: String,
    signal_delivered: bool,
}

/// The status an earlier run of this instance delivered to this stack's resource, if it did.
/// A state file from another instance (an image built from a used root) or another stack does
/// not count, and neither does one that cannot be read: signalling twice is refused harmlessly
/// by CloudFormation, never signalling costs the whole CreationPolicy timeout.
pub fn delivered_earlier(root: &Root, identity: &Identity, signal: &SignalSpec) -> Option<String> {
    let path = root.map(FILE).ok()?;
    let text = root.read_to_string(FILE).ok()?;
    let e: Earlier = match serde_json::from_str(&text) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "ignoring an unreadable state file");
            return None;
        }
    };
    (e.signal_delivered
        && e.instance_id == identity.instance_id
        && e.stack == signal.stack
        && e.signal_resource == signal.resource)
        .then_some(e.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Step};

    #[test]
    fn only_a_delivered_signal_of_this_instance_and_stack_counts() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let id = Identity::fake("eu-west-1");
        let spec = SignalSpec {
            stack: "s".into(),
            resource: "Asg".into(),
            unique_id: id.instance_id.clone(),
        };
        assert_eq!(delivered_earlier(&root, &id, &spec), None);
        let f = Failure {
            step: Step::Join,
            error: Box::new(Error::invalid("k", "v")),
        };
        record(&root, &id, &spec, Status::Failure, Some(&f), false);
        assert_eq!(delivered_earlier(&root, &id, &spec), None);
        record(&root, &id, &spec, Status::Success, None, true);
        assert_eq!(
            delivered_earlier(&root, &id, &spec).as_deref(),
            Some("SUCCESS")
        );
        let other = SignalSpec {
            stack: "other".into(),
            ..spec.clone()
        };
        assert_eq!(delivered_earlier(&root, &id, &other), None);
        let mut other_id = id.clone();
        other_id.instance_id = "i-other".into();
        assert_eq!(delivered_earlier(&root, &other_id, &spec), None);
        std::fs::write(root.map(FILE).unwrap(), "{torn").unwrap();
        assert_eq!(delivered_earlier(&root, &id, &spec), None);
    }
}
