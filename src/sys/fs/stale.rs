//! Temporary files a killed run left behind. A `kill -9` (or a power cut) between creating the
//! temp file and renaming it leaves `.ecs-bootstrap.<pid>.XXXXXX` next to the target: never the
//! target itself torn, but on a small root volume a few crashed runs writing a big file would
//! fill the disk. The next write into the same directory removes them.
//!
//! A temp file is a leftover when the process named in it is gone. Not a comparison of file
//! times with the start of this process: file times come from the kernel's coarse clock, so a
//! file written right after the start can look older than it, and a crash a second before the
//! start looks new.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::dir::Dir;

pub(crate) const TEMP_PREFIX: &str = ".ecs-bootstrap.";

/// The prefix of the temp files this process creates: the pid says whose they are.
pub(crate) fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}.", std::process::id())
}

/// Whether the temp file `name` (with [`TEMP_PREFIX`]) belongs to no live process.
fn is_leftover(name: &str, modified: Option<SystemTime>, proc_root: &Path) -> bool {
    let rest = &name[TEMP_PREFIX.len()..];
    match rest
        .split_once('.')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    {
        Some(pid) if pid == std::process::id() => false,
        // A pid reused by another process since (a reboot) keeps the file until that process
        // ends: harmless, and the next run removes it.
        Some(pid) => !proc_root.join(pid.to_string()).exists(),
        // Written by a version without the pid in the name: old enough to be nobody's.
        None => modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600)),
    }
}

pub(crate) fn sweep(dir: &Dir) {
    sweep_with(dir, Path::new("/proc"))
}

fn sweep_with(dir: &Dir, proc_root: &Path) {
    let Ok(names) = dir.files() else {
        return;
    };
    for name in names {
        let shown = name.to_string_lossy();
        if !shown.starts_with(TEMP_PREFIX) {
            continue;
        }
        let modified = dir
            .stat(&name)
            .ok()
            .flatten()
            .map(|st| std::time::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64));
        if is_leftover(&shown, modified, proc_root) {
            let path = dir.shown(&name);
            match dir.unlink(&name) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted run")
                }
                Err(err) => {
                    tracing::debug!(path = %path.display(), error = %err, "could not remove a stale temporary file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_temp_files_of_processes_that_are_gone() {
        let d = tempfile::tempdir().unwrap();
        let procs = tempfile::tempdir().unwrap();
        std::fs::create_dir(procs.path().join("4242")).unwrap();
        let dead = d.path().join(".ecs-bootstrap.999999.abc123");
        let alive = d.path().join(".ecs-bootstrap.4242.def456");
        let mine = d.path().join(format!("{}x1y2z3", temp_prefix()));
        let other = d.path().join("keep.conf");
        let legacy_new = d.path().join(".ecs-bootstrap.Ab12Cd");
        let legacy_old = d.path().join(".ecs-bootstrap.Zz99Yy");
        for p in [&dead, &alive, &mine, &other, &legacy_new, &legacy_old] {
            std::fs::write(p, "partial").unwrap();
        }
        std::fs::File::options()
            .write(true)
            .open(&legacy_old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        sweep_with(&Dir::open(d.path()).unwrap(), procs.path());
        assert!(!dead.exists(), "a dead process's temp file is a leftover");
        assert!(
            alive.exists(),
            "a live process may still rename its temp file"
        );
        assert!(mine.exists(), "a temp file of this run must survive");
        assert!(other.exists());
        assert!(legacy_new.exists());
        assert!(!legacy_old.exists());
    }
}
