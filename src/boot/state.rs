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

/// `state.json`: what the last run did. Read and written here only; src/boot/once.rs and
/// [`delivered_earlier`] read it through [`StateRecord::read`]. The format is an interface
/// (operators, tests/test_once.py, tests/test_faults.py read it): the fields, their order and
/// the pretty-printed JSON are those of every earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    pub instance_id: String,
    pub stack: String,
    pub signal_resource: String,
    pub status: Status,
    /// The step a failed run failed in (its display name).
    #[serde(default)]
    pub failed_step: Option<String>,
    /// A failed run's FAILURE reason, redacted.
    #[serde(default)]
    pub reason: Option<String>,
    pub signal_delivered: bool,
    /// Absent in a record written by hand (an image's baked file): 0.
    #[serde(default)]
    pub finished_at_unix: u64,
}

impl StateRecord {
    /// The last run's record, if there is one that reads. An unreadable one is logged and
    /// counts as none: the run then goes on, which costs at worst a second signal (refused
    /// harmlessly by CloudFormation), where trusting it could cost a signal never sent.
    pub fn read(root: &Root) -> Option<StateRecord> {
        let path = root.map(FILE).ok()?;
        let text = root.read_to_string(FILE).ok()?;
        match serde_json::from_str(&text) {
            Ok(rec) => Some(rec),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "ignoring an unreadable state file");
                None
            }
        }
    }

    fn write(&self, root: &Root) -> crate::error::Result<()> {
        write_private_json(root, FILE, self)
    }

    /// This record says its instance signalled SUCCESS (or found the resource no longer
    /// waiting, which is delivered too).
    pub fn delivered_success(&self) -> bool {
        self.status == Status::Success && self.signal_delivered
    }
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
    let rec = StateRecord {
        instance_id: identity.instance_id.clone(),
        stack: signal.stack.clone(),
        signal_resource: signal.resource.clone(),
        status,
        failed_step: failure.map(|f| f.step.to_string()),
        reason: failure.map(|f| crate::sys::redact::text(&f.to_string())),
        signal_delivered: delivered,
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    if let Err(e) = rec.write(root) {
        tracing::warn!(error = %e, "could not record the run's state");
    }
}

/// The status an earlier run of this instance delivered to this stack's resource, if it did.
/// A state file from another instance (an image built from a used root) or another stack does
/// not count, and neither does one that cannot be read: signalling twice is refused harmlessly
/// by CloudFormation, never signalling costs the whole CreationPolicy timeout.
pub fn delivered_earlier(root: &Root, identity: &Identity, signal: &SignalSpec) -> Option<String> {
    let e = StateRecord::read(root)?;
    (e.signal_delivered
        && e.instance_id == identity.instance_id
        && e.stack == signal.stack
        && e.signal_resource == signal.resource)
        .then(|| e.status.as_str().to_string())
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

    /// A file exactly as the code before `StateRecord` wrote it (commit 56c50b4: a
    /// `#[derive(Serialize)] struct Record` with these fields in this order, `status` from
    /// `Status::as_str`, pretty-printed, one newline).
    const OLD_FILE: &str = r#"{
  "instance_id": "i-0123456789abcdef0",
  "stack": "my-stack",
  "signal_resource": "Asg",
  "status": "FAILURE",
  "failed_step": "cluster join",
  "reason": "cluster join: the ECS agent registered in cluster 'a', expected 'b'",
  "signal_delivered": true,
  "finished_at_unix": 1767225600
}
"#;

    fn old_record() -> StateRecord {
        StateRecord {
            instance_id: "i-0123456789abcdef0".into(),
            stack: "my-stack".into(),
            signal_resource: "Asg".into(),
            status: Status::Failure,
            failed_step: Some("cluster join".into()),
            reason: Some(
                "cluster join: the ECS agent registered in cluster 'a', expected 'b'".into(),
            ),
            signal_delivered: true,
            finished_at_unix: 1767225600,
        }
    }

    #[test]
    fn a_file_written_by_the_earlier_code_reads_and_is_written_the_same() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        ensure_dir(&root).unwrap();
        std::fs::write(root.map(FILE).unwrap(), OLD_FILE).unwrap();
        assert_eq!(StateRecord::read(&root), Some(old_record()));
        old_record().write(&root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.map(FILE).unwrap()).unwrap(),
            OLD_FILE
        );
    }

    #[test]
    fn a_success_record_written_without_its_optional_fields_reads() {
        // As an operator or tests/test_once.py writes one (an image's baked state).
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        ensure_dir(&root).unwrap();
        std::fs::write(
            root.map(FILE).unwrap(),
            r#"{"instance_id": "i-1", "stack": "s", "signal_resource": "Asg",
                "status": "SUCCESS", "signal_delivered": true}"#,
        )
        .unwrap();
        let rec = StateRecord::read(&root).expect("reads");
        assert!(rec.delivered_success());
        assert_eq!(
            (rec.failed_step, rec.reason, rec.finished_at_unix),
            (None, None, 0)
        );
    }

    #[test]
    fn a_failure_or_an_undelivered_success_is_not_delivered_success() {
        let rec = old_record();
        assert!(!rec.delivered_success(), "a failure");
        let rec = StateRecord {
            status: Status::Success,
            signal_delivered: false,
            ..old_record()
        };
        assert!(!rec.delivered_success(), "not delivered");
    }
}
