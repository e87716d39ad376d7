//! What the Init engine ran and changed, in `/var/lib/ecs-bootstrap/init.json` (0700 directory,
//! 0600 file): the record an operator reads to know what an instance's Init actually did
//! (cfn-init leaves only its log). Written after every run, successful or not.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Changes;
use crate::sys::fs::Root;

pub const FILE: &str = "/var/lib/ecs-bootstrap/init.json";

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub configsets: Vec<String>,
    pub configs: Vec<ConfigReport>,
    pub status: &'static str,
    /// The failure, as it was reported, redacted like the log ([`crate::sys::redact::text`]): a
    /// failed command's error carries its output.
    pub error: Option<String>,
    pub finished_at_unix: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ConfigReport {
    pub name: String,
    pub packages_installed: BTreeMap<super::packages::Manager, BTreeSet<String>>,
    pub groups_created: BTreeSet<String>,
    /// Created, or modified by `usermod` (groups or home changed): what triggers restarts.
    pub users_created: BTreeSet<String>,
    pub files_changed: BTreeSet<String>,
    pub commands_run: BTreeSet<String>,
    /// Service -> what was done (start, stop, restart, enable, disable).
    pub services: BTreeMap<String, Vec<&'static str>>,
    pub completed: bool,
}

impl ConfigReport {
    pub fn absorb(&mut self, c: &Changes) {
        self.packages_installed = c.packages.clone();
        self.groups_created = c.groups.clone();
        self.users_created = c.users.clone();
        self.files_changed = c.files.clone();
        self.commands_run = c.commands.clone();
    }
}

/// Best effort: a record that cannot be written must not fail an Init that worked.
pub fn write(root: &Root, report: &Report) {
    let result = crate::boot::state::write_private_json(root, FILE, report);
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record what Init did");
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
