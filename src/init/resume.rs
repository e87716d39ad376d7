//! `waitAfterCompletion: forever`: after such a command Init stops and waits for the reboot the
//! command asked for; the next run of the same plan (the unit at the next boot, or the same
//! `init` command) resumes with the command after it. The marker holds a digest of the plan,
//! never the plan itself: file contents can be secrets.

use serde::{Deserialize, Serialize};

use super::InitPlan;
use crate::error::Error;
use crate::sys::fs::Root;

pub const FILE: &str = "/var/lib/ecs-bootstrap/init-resume.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    /// FNV-1a of the plan as JSON: a different template (or configSets) does not resume.
    pub digest: String,
    pub config_index: usize,
    pub config: String,
    /// The key of the command that asked for the reboot; commands up to it are not run again.
    pub command: String,
}

/// Stable across builds and runs (unlike std's hasher, which promises neither).
pub fn digest(plan: &InitPlan) -> String {
    let text = serde_json::to_string(plan).expect("a plan always serialises");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The marker left by an earlier run of this same plan, if any. A marker of another plan is
/// dropped with a warning: resuming someone else's Init half-way would be worse than a rerun.
pub fn take(root: &Root, plan: &InitPlan) -> Option<Marker> {
    let path = root.map(FILE).ok()?;
    let text = root.read_to_string(FILE).ok()?;
    match serde_json::from_str::<Marker>(&text) {
        Ok(m) if m.digest == digest(plan) => Some(m),
        Ok(m) => {
            tracing::warn!(config = %m.config, command = %m.command, "a reboot marker of a different Init plan was found; running from the start");
            clear(root);
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "unreadable reboot marker; running from the start");
            clear(root);
            None
        }
    }
}

pub fn save(root: &Root, marker: &Marker) -> Result<(), Error> {
    crate::boot::state::write_private_json(root, FILE, marker)
}

pub fn clear(root: &Root) {
    if let Ok(p) = root.map(FILE) {
        match root.remove(FILE) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %p.display(), "could not remove the reboot marker")
            }
        }
    }
}
