use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Mode and ownership a file must have from the moment it appears at its final path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Updated,
    Unchanged,
}

/// Writes `contents` to `path` so that a reader (or a crash) only ever sees the old file or the
/// new one: temp file in the same directory, mode and owner set on the temp file *before* the
/// rename (a secret is never briefly world-readable), fsync, rename, fsync of the directory.
/// A file that already has this content, mode and owner is left alone, so re-runs do not touch
/// mtimes or trigger restarts.
pub fn write_atomic(path: &Path, contents: &[u8], meta: FileMeta) -> Result<WriteOutcome> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid(path.display().to_string(), "has no parent directory"))?;
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    super::stale::sweep(dir);

    let existing = fs::symlink_metadata(path).ok();
    if let Some(m) = &existing {
        if m.is_file()
            && m.mode() & 0o7777 == meta.mode
            && meta.uid.is_none_or(|u| u == m.uid())
            && meta.gid.is_none_or(|g| g == m.gid())
            && m.len() == contents.len() as u64
            && fs::read(path).map(|c| c == contents).unwrap_or(false)
        {
            return Ok(WriteOutcome::Unchanged);
        }
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(&super::stale::temp_prefix())
        .tempfile_in(dir)
        .map_err(|e| Error::io("create temporary file in", dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let file = tmp.as_file_mut();
    // Permissions first, while the file is still empty and only reachable under its random name.
    file.set_permissions(fs::Permissions::from_mode(meta.mode))
        .map_err(|e| Error::io("chmod", &tmp_path, e))?;
    if meta.uid.is_some() || meta.gid.is_some() {
        std::os::unix::fs::fchown(&*file, meta.uid, meta.gid)
            .map_err(|e| Error::io("chown", &tmp_path, e))?;
    }
    // A failed write (ENOSPC, EIO) names the file being replaced, which is left as it was; the
    // temporary file is removed when `tmp` is dropped.
    file.write_all(contents)
        .map_err(|e| Error::io("write (through a temporary file)", path, e))?;
    file.sync_all()
        .map_err(|e| Error::io("fsync (through a temporary file)", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    // The rename is only durable once the directory entry is.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))?;

    Ok(if existing.is_some() {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32) -> FileMeta {
        FileMeta {
            mode,
            uid: None,
            gid: None,
        }
    }

    #[test]
    fn creates_updates_and_leaves_unchanged() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c.conf");
        assert_eq!(
            write_atomic(&p, b"x=1\n", meta(0o600)).unwrap(),
            WriteOutcome::Created
        );
        assert_eq!(fs::read(&p).unwrap(), b"x=1\n");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(
            write_atomic(&p, b"x=1\n", meta(0o600)).unwrap(),
            WriteOutcome::Unchanged
        );
        assert_eq!(
            write_atomic(&p, b"x=1\n", meta(0o644)).unwrap(),
            WriteOutcome::Updated
        );
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(
            write_atomic(&p, b"x=2\n", meta(0o644)).unwrap(),
            WriteOutcome::Updated
        );
        assert_eq!(fs::read(&p).unwrap(), b"x=2\n");
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn error_names_the_path() {
        let d = tempfile::tempdir().unwrap();
        let blocker = d.path().join("file");
        fs::write(&blocker, "").unwrap();
        let e = write_atomic(&blocker.join("x"), b"", meta(0o644))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&blocker.display().to_string()), "{e}");
    }
}
