//! Temporary files a killed run left behind. A `kill -9` (or a power cut) between creating the
//! temp file and renaming it leaves `.ecs-bootstrap.XXXXXX` next to the target: never the
//! target itself torn, but on a small root volume a few crashed runs writing a big file would
//! fill the disk. The next write into the same directory removes them.

use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

pub(crate) const TEMP_PREFIX: &str = ".ecs-bootstrap.";

/// How much older than this process a temp file must be before it counts as left behind.
const STALE_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// When this process started: a temp file older than that is not one this run is writing.
fn started() -> SystemTime {
    static T: OnceLock<SystemTime> = OnceLock::new();
    *T.get_or_init(SystemTime::now)
}

/// Called at the start of the run so that `started` is the process start, not the first write.
pub fn mark_start() {
    let _ = started();
}

pub(crate) fn sweep(dir: &Path) {
    let since = started();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        // File times come from the kernel's coarse clock, which lags `SystemTime::now()` by up
        // to a scheduler tick: a file this run creates right after start can look older than
        // the start. Only files clearly older than this process are another run's leftovers.
        let cutoff = since.checked_sub(STALE_MARGIN).unwrap_or(since);
        let older = meta.modified().map(|m| m < cutoff).unwrap_or(false);
        if meta.is_file() && older {
            match std::fs::remove_file(e.path()) {
                Ok(()) => {
                    tracing::info!(path = %e.path().display(), "removed a temporary file left by an interrupted run")
                }
                Err(err) => {
                    tracing::debug!(path = %e.path().display(), error = %err, "could not remove a stale temporary file")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_old_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join(".ecs-bootstrap.abc123");
        let other = d.path().join("keep.conf");
        std::fs::write(&old, "partial").unwrap();
        std::fs::write(&other, "x").unwrap();
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        mark_start();
        let fresh = d.path().join(".ecs-bootstrap.new999");
        std::fs::write(&fresh, "being written").unwrap();
        sweep(d.path());
        assert!(!old.exists());
        assert!(other.exists());
        assert!(fresh.exists(), "a temp file of this run must survive");
    }
}
