use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::stat::SFlag;

use super::dir::Dir;
use super::Root;
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

/// Writes `contents` to `path` (within `root`) so that a reader (or a crash) only ever sees
/// the old file or the new one: temp file in the same directory, mode and owner set on the temp
/// file *before* the rename (a secret is never briefly world-readable), fsync, rename, fsync of
/// the directory. A file that already has this content, mode and owner is left alone, so
/// re-runs do not touch mtimes or trigger restarts.
///
/// The directory is resolved beneath the root and every step names an entry of that open
/// directory, so a symlink in the path cannot take the write out of the root, and a symlink
/// at `path` itself is replaced, never written through.
pub fn write_atomic(
    root: &Root,
    path: &str,
    contents: &[u8],
    meta: FileMeta,
) -> Result<WriteOutcome> {
    let shown = root.map(path)?;
    let (dir, name) = root.parent(path, true)?;
    write_in(&dir, &name, &shown, contents, meta)
}

/// [`write_atomic`] for the entry `name` of an open directory; `shown` names it in errors.
fn write_in(
    dir: &Dir,
    name: &OsStr,
    shown: &Path,
    contents: &[u8],
    meta: FileMeta,
) -> Result<WriteOutcome> {
    super::stale::sweep(dir);

    let existing = dir.stat(name).map_err(|e| Error::io("stat", shown, e))?;
    if let Some(st) = &existing {
        let is_file = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        if is_file
            && st.st_mode & 0o7777 == meta.mode
            && meta.uid.is_none_or(|u| u == st.st_uid)
            && meta.gid.is_none_or(|g| g == st.st_gid)
            && st.st_size as u64 == contents.len() as u64
            && same_content(dir, name, contents)
        {
            return Ok(WriteOutcome::Unchanged);
        }
    }

    let (tmp_name, mut file) = dir
        .create_temp(&super::stale::temp_prefix(), 0o600)
        .map_err(|e| Error::io("create temporary file in", dir.path(), e))?;
    let tmp = Temp {
        dir,
        name: Some(tmp_name),
    };
    let tmp_path = dir.shown(tmp.name());
    // Permissions first, while the file is still empty and only reachable under its random name.
    file.set_permissions(std::fs::Permissions::from_mode(meta.mode))
        .map_err(|e| Error::io("chmod", &tmp_path, e))?;
    if meta.uid.is_some() || meta.gid.is_some() {
        std::os::unix::fs::fchown(&file, meta.uid, meta.gid)
            .map_err(|e| Error::io("chown", &tmp_path, e))?;
    }
    // A failed write (ENOSPC, EIO) names the file being replaced, which is left as it was; the
    // temporary file is removed when `tmp` is dropped.
    file.write_all(contents)
        .map_err(|e| Error::io("write (through a temporary file)", shown, e))?;
    file.sync_all()
        .map_err(|e| Error::io("fsync (through a temporary file)", shown, e))?;
    dir.rename(tmp.name(), name)
        .map_err(|e| Error::io("rename into place", shown, e))?;
    tmp.keep();
    // The rename is only durable once the directory entry is.
    dir.sync()
        .map_err(|e| Error::io("fsync directory", dir.path(), e))?;

    Ok(if existing.is_some() {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    })
}

fn same_content(dir: &Dir, name: &OsStr, contents: &[u8]) -> bool {
    let mut current = Vec::with_capacity(contents.len());
    dir.read_file(name)
        .and_then(|f| f.take(contents.len() as u64 + 1).read_to_end(&mut current))
        .is_ok_and(|_| current == contents)
}

/// A temporary file that is removed unless it was renamed into place.
struct Temp<'a> {
    dir: &'a Dir,
    name: Option<OsString>,
}

impl Temp<'_> {
    fn name(&self) -> &OsStr {
        self.name.as_deref().expect("not yet kept")
    }

    fn keep(mut self) {
        self.name = None;
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            let _ = self.dir.unlink(name);
        }
    }
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

    use std::fs;
    use std::os::unix::fs::MetadataExt;

    fn write_atomic(p: &Path, contents: &[u8], meta: FileMeta) -> Result<WriteOutcome> {
        super::write_atomic(&Root::system(), p.to_str().unwrap(), contents, meta)
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
    fn a_symlink_at_the_path_is_replaced_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let p = d.path().join("conf");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        assert_eq!(
            write_atomic(&p, b"new", meta(0o600)).unwrap(),
            WriteOutcome::Updated
        );
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&p).unwrap().is_file());
        assert_eq!(fs::read(&p).unwrap(), b"new");
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
