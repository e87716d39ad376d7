//! What the last run did, in `/var/lib/ecs-bootstrap/state.json` (0700 directory, 0600 file):
//! the record an operator (or a later run after a reboot) reads to know whether CloudFormation
//! was told.

use std::os::unix::fs::PermissionsExt;

use serde::Serialize;

use crate::error::Failure;
use crate::fs::{write_atomic, FileMeta, Root};
use crate::identity::Identity;
use crate::signal::{SignalSpec, Status};

pub const DIR: &str = "/var/lib/ecs-bootstrap";
pub const FILE: &str = "/var/lib/ecs-bootstrap/state.json";

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
        reason: failure.map(|f| f.to_string()),
        signal_delivered: delivered,
        finished_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let result = (|| -> crate::error::Result<()> {
        let dir = root.map(DIR)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::error::Error::io("create directory", &dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| crate::error::Error::io("chmod", &dir, e))?;
        let text = serde_json::to_string_pretty(&rec).expect("a record always serialises") + "\n";
        write_atomic(
            &root.map(FILE)?,
            text.as_bytes(),
            FileMeta {
                mode: 0o600,
                uid: None,
                gid: None,
            },
        )?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the run's state");
    }
}
