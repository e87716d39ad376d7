//! What the Init engine ran and changed, in `/var/lib/ecs-bootstrap/init.json` (0700 directory,
//! 0600 file): the record an operator reads to know what an instance's Init actually did
//! (cfn-init leaves only its log). Written after every run, successful or not.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;

use serde::Serialize;

use super::Changes;
use crate::error::Error;
use crate::fs::{write_atomic, FileMeta, Root};

pub const FILE: &str = "/var/lib/ecs-bootstrap/init.json";

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub configsets: Vec<String>,
    pub configs: Vec<ConfigReport>,
    pub status: &'static str,
    /// The failure, as it was reported (no secrets: errors never carry file contents).
    pub error: Option<String>,
    pub finished_at_unix: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ConfigReport {
    pub name: String,
    pub packages_installed: BTreeMap<String, BTreeSet<String>>,
    pub groups_created: BTreeSet<String>,
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
    let result = (|| -> Result<(), Error> {
        let file = root.map(FILE)?;
        let dir = file.parent().expect("a mapped file has a parent");
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("chmod", dir, e))?;
        let text = serde_json::to_string_pretty(report).expect("a report always serialises") + "\n";
        write_atomic(
            &file,
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
        tracing::warn!(error = %e, "could not record what Init did");
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
