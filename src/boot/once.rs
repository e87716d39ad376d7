//! Run once per instance: the systemd unit and a UserData call may both invoke `run`, and a
//! reboot starts the unit again. Exactly one invocation does the work:
//!
//! - a run holds an exclusive `flock` on `/var/lib/ecs-bootstrap/run.lock` while it works; a
//!   second invocation that finds it held exits 0 at once instead of waiting. Waiting could
//!   deadlock: the unit's run waits for ecs.service, which is ordered after cloud-final, which
//!   runs the UserData that would be waiting for the lock.
//! - a run whose `state.json` says this same instance signalled SUCCESS (or found the resource no
//!   longer waiting) is done: later invocations exit 0 without touching anything, unless
//!   `--force`. The instance id is compared because an AMI baked from a bootstrapped instance
//!   carries the file to every instance launched from it.
//!
//! A FAILURE, a SUCCESS whose signal was not delivered, or a run without a signal is not "done":
//! the next invocation (a reboot, an operator) runs again.

use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::boot::state;
use crate::error::{Error, Result};
use crate::sys::fs::Root;

pub const LOCK_FILE: &str = "/var/lib/ecs-bootstrap/run.lock";

/// An exclusive hold on the run lock, released when dropped (or when the process dies).
pub struct RunLock {
    _lock: Option<Flock<std::fs::File>>,
}

pub enum Acquired {
    Held(RunLock),
    /// Another invocation holds the lock; the text names it.
    Busy(String),
}

/// Takes the run lock without waiting.
pub fn lock(root: &Root) -> Result<Acquired> {
    let dir = state::ensure_dir(root)?;
    let path = root.map(LOCK_FILE)?;
    // O_NOFOLLOW (open_entry): a symlink planted at run.lock must not get a file elsewhere
    // truncated and overwritten with a pid.
    let name = Path::new(LOCK_FILE).file_name().expect("a file name");
    let file = dir
        .open_entry(name, OFlag::O_RDWR | OFlag::O_CREAT, 0o600)
        .map_err(|e| Error::io("open", &path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            // The holder's pid, for the message a concurrent invocation prints.
            let _ = locked.set_len(0);
            let _ = locked.rewind();
            let _ = write!(locked, "{}", std::process::id());
            Ok(Acquired::Held(RunLock {
                _lock: Some(locked),
            }))
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let who = match pid.trim() {
                "" => "another ecs-bootstrap run".to_string(),
                p => format!("another ecs-bootstrap run (pid {p})"),
            };
            Ok(Acquired::Busy(format!(
                "{who} holds {LOCK_FILE} and does the work; this invocation has nothing to do"
            )))
        }
        Err((_, errno)) => Err(Error::io("lock", &path, std::io::Error::from(errno))),
    }
}

/// For the unit a UserData run handed off to: the configuring process releases the lock just
/// before it starts the unit and exits right after, so a short wait is expected here — never a
/// long one (the other holder might be a full run, which then also does this unit's work).
pub async fn lock_waiting(root: &Root, wait: std::time::Duration) -> Result<Acquired> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        match lock(root)? {
            Acquired::Busy(why) if tokio::time::Instant::now() < until => {
                tracing::debug!(reason = %why, "waiting for the configuring run to exit");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return Ok(other),
        }
    }
}

impl RunLock {
    /// For a run that could not take the lock for a reason other than contention (a read-only
    /// state directory): it goes on unguarded rather than leaving the instance unconfigured.
    pub fn none() -> Self {
        RunLock { _lock: None }
    }
}

/// Why a run has nothing to do, if the state file says this instance is already done.
pub fn already_done(root: &Root, instance_id: &str) -> Option<String> {
    let rec = state::StateRecord::read(root)?;
    if rec.instance_id != instance_id {
        if !rec.instance_id.is_empty() {
            tracing::info!(
                previous = %rec.instance_id,
                "state file is from another instance (baked into the image?); running"
            );
        }
        return None;
    }
    if !rec.delivered_success() {
        return None;
    }
    Some(format!(
        "{} says instance {instance_id} already signalled SUCCESS to {}/{} (pass --force to run again)",
        state::FILE,
        rec.stack,
        rec.signal_resource
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn done_only_for_this_instance_after_a_delivered_success() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        assert_eq!(already_done(&root, "i-1"), None, "no state file");
        state::ensure_dir(&root).unwrap();
        let write = |id: &str, status: &str, delivered: bool| {
            let v = serde_json::json!({"instance_id": id, "stack": "s", "signal_resource": "Asg",
                                       "status": status, "signal_delivered": delivered});
            std::fs::write(root.map(state::FILE).unwrap(), v.to_string()).unwrap();
        };
        write("i-1", "SUCCESS", true);
        let why = already_done(&root, "i-1").expect("done");
        assert_eq!(
            why,
            "/var/lib/ecs-bootstrap/state.json says instance i-1 already signalled SUCCESS to s/Asg (pass --force to run again)"
        );
        assert_eq!(
            already_done(&root, "i-2"),
            None,
            "baked state of another instance"
        );
        write("i-1", "SUCCESS", false);
        assert_eq!(already_done(&root, "i-1"), None, "signal not delivered");
        write("i-1", "FAILURE", true);
        assert_eq!(already_done(&root, "i-1"), None, "a failure runs again");
        std::fs::write(root.map(state::FILE).unwrap(), "{not json").unwrap();
        assert_eq!(already_done(&root, "i-1"), None);
    }

    #[test]
    fn a_second_lock_is_busy_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::new(d.path());
        let first = match lock(&root).unwrap() {
            Acquired::Held(l) => l,
            Acquired::Busy(m) => panic!("busy: {m}"),
        };
        match lock(&root).unwrap() {
            Acquired::Busy(m) => {
                assert!(m.contains(&format!("pid {}", std::process::id())), "{m}")
            }
            Acquired::Held(_) => panic!("two holders"),
        }
        let mode = std::fs::metadata(d.path().join("var/lib/ecs-bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(first);
        assert!(matches!(lock(&root).unwrap(), Acquired::Held(_)));
    }
}
