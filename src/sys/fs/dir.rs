//! A directory handle that every write goes through. A path is resolved once, beneath a base
//! handle ([`super::resolve`]); the file operations then name a single entry of an open
//! directory (`openat`, `mkdirat`, `renameat`, `fchmod` …) and never follow a symlink, so
//! nothing that changes in the tree between checks and writes can send a write elsewhere.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use super::resolve::{self, Scope};

#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// The path it was opened as, for messages.
    path: PathBuf,
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits as nix::libc::mode_t)
}

/// `name` must be one plain file name: single-entry operations never resolve a path.
fn entry(name: &OsStr) -> io::Result<&OsStr> {
    let mut c = Path::new(name).components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(n)), None) if n == name => Ok(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' is not a plain file name", name.to_string_lossy()),
        )),
    }
}

impl Dir {
    /// Opens the directory at `path` the ordinary way: a base (the run's root, an archive's
    /// target) is chosen by the operator or resolved beneath another handle first.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path `rel` is shown as in messages.
    pub fn shown(&self, rel: impl AsRef<Path>) -> PathBuf {
        match rel.as_ref() {
            // join("") would add a trailing slash.
            r if r.as_os_str().is_empty() => self.path.clone(),
            r => self.path.join(r),
        }
    }

    /// An existing directory beneath this one.
    pub fn open_dir(&self, rel: &Path, scope: Scope) -> io::Result<Dir> {
        let fd = resolve::open(
            self.as_fd(),
            rel,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
            scope,
        )?;
        Ok(Dir {
            fd,
            path: self.shown(rel),
        })
    }

    /// `mkdir -p` beneath this directory: missing directories are made (`mode` for the last,
    /// 0777 less the umask for the ones above it, as `mkdir -p` does).
    pub fn create_dirs(&self, rel: &Path, scope: Scope, last_mode: u32) -> io::Result<Dir> {
        match self.open_dir(rel, scope) {
            Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => {}
            other => return other,
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(io::Error::from(Errno::ENOENT));
        };
        let parent = self.create_dirs(parent, scope, 0o777)?;
        match nix::sys::stat::mkdirat(parent.as_fd(), name, mode(last_mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        // Looked up again beneath this directory: what now sits at `name` may be a symlink
        // someone else made meanwhile, which must resolve under the same rules.
        self.open_dir(rel, scope)
    }

    /// Opens `rel` beneath this directory with `flags` (see [`resolve::open`]).
    pub fn open_file(&self, rel: &Path, scope: Scope, flags: OFlag, bits: u32) -> io::Result<File> {
        resolve::open(self.as_fd(), rel, flags, mode(bits), scope).map(File::from)
    }

    /// What is at `name`, without following a symlink; `None` when nothing is.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<FileStat>> {
        match nix::sys::stat::fstatat(self.as_fd(), entry(name)?, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a new file named `prefix` + random characters with `O_EXCL` and `mode`; the name
    /// is returned with it.
    pub fn create_temp(&self, prefix: &str, bits: u32) -> io::Result<(OsString, File)> {
        for _ in 0..100 {
            let name = OsString::from(format!("{prefix}{}", random_suffix()));
            match self.create_new(&name, bits) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|f| (name, f)),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        ))
    }

    /// Creates `name`, which must not exist (not even as a symlink).
    pub fn create_new(&self, name: &OsStr, bits: u32) -> io::Result<File> {
        self.open_entry(name, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, bits)
    }

    /// Opens the regular file `name` for reading; a symlink there is an error (`ELOOP`).
    pub fn read_file(&self, name: &OsStr) -> io::Result<File> {
        self.open_entry(name, OFlag::O_RDONLY, 0)
    }

    /// Opens the entry `name` with `flags`; a symlink there is never followed (`ELOOP`).
    pub fn open_entry(&self, name: &OsStr, flags: OFlag, bits: u32) -> io::Result<File> {
        nix::fcntl::openat(
            self.as_fd(),
            entry(name)?,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode(bits),
        )
        .map(File::from)
        .map_err(io::Error::from)
    }

    /// Creates a symlink to `target` named `prefix` + random characters; returns the name.
    pub fn create_temp_symlink(&self, prefix: &str, target: &Path) -> io::Result<OsString> {
        for _ in 0..100 {
            let name = OsString::from(format!("{prefix}{}", random_suffix()));
            match self.symlink(target, &name) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other.map(|()| name),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary file name",
        ))
    }

    /// Renames `from` to `to`, both in this directory, replacing `to` (a symlink at `to` is
    /// replaced, not followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(self.as_fd(), entry(from)?, self.as_fd(), entry(to)?)
            .map_err(io::Error::from)
    }

    /// Removes the file or symlink `name` (not a directory).
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        nix::unistd::unlinkat(self.as_fd(), entry(name)?, UnlinkatFlags::NoRemoveDir)
            .map_err(io::Error::from)
    }

    pub fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        nix::unistd::symlinkat(target, self.as_fd(), entry(name)?).map_err(io::Error::from)
    }

    /// Sets the owner and group of the entry `name` itself: a symlink's own, never its
    /// target's (`AT_SYMLINK_NOFOLLOW`, as `lchown`).
    pub fn lchown(&self, name: &OsStr, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        nix::unistd::fchownat(
            self.as_fd(),
            entry(name)?,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }

    pub fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        nix::fcntl::readlinkat(self.as_fd(), entry(name)?)
            .map(PathBuf::from)
            .map_err(io::Error::from)
    }

    /// A hard link `name` here to the entry `from` of `from_dir` (a symlink is linked, not
    /// followed).
    pub fn hard_link(&self, from_dir: &Dir, from: &OsStr, name: &OsStr) -> io::Result<()> {
        nix::unistd::linkat(
            from_dir.as_fd(),
            entry(from)?,
            self.as_fd(),
            entry(name)?,
            AtFlags::empty(),
        )
        .map_err(io::Error::from)
    }

    /// Sets this directory's permission bits.
    pub fn set_mode(&self, bits: u32) -> io::Result<()> {
        nix::sys::stat::fchmod(self.as_fd(), mode(bits)).map_err(io::Error::from)
    }

    /// Makes renames and new entries in this directory durable.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.as_fd()).map_err(io::Error::from)
    }

    /// Names of the regular files in this directory.
    pub fn files(&self) -> io::Result<Vec<OsString>> {
        let fd = nix::fcntl::openat(
            self.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut d = nix::dir::Dir::from_fd(fd)?;
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e?;
            let name = OsStr::from_bytes(e.file_name().to_bytes()).to_os_string();
            if name == "." || name == ".." {
                continue;
            }
            if self.stat(&name)?.is_some_and(|s| {
                SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
            }) {
                out.push(name);
            }
        }
        Ok(out)
    }
}

/// Ten characters nobody can guess ahead of time (`O_EXCL` makes a guess harmless anyway).
fn random_suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    // RandomState is seeded from the OS per thread and differs per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = CHARS[(n % CHARS.len() as u64) as usize] as char;
            n /= CHARS.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn single_entry_operations_take_plain_names_only() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        for bad in ["a/b", "..", ".", "/etc", ""] {
            let e = dir.unlink(OsStr::new(bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn create_dirs_makes_missing_directories_with_the_last_mode() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        for (r, name) in [(false, "k"), (true, "w")] {
            let run = || dir.create_dirs(Path::new(&format!("{name}/a/b")), Scope::InRoot, 0o700);
            let made = if r { resolve::with_walk(run) } else { run() }.unwrap();
            assert_eq!(made.path(), d.path().join(format!("{name}/a/b")));
            let mode = |p: &str| {
                std::fs::metadata(d.path().join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode(&format!("{name}/a/b")), 0o700);
            assert_ne!(mode(&format!("{name}/a")), 0o700);
            // Already there: opened, not an error.
            dir.create_dirs(Path::new(name), Scope::InRoot, 0o700)
                .unwrap();
        }
        // A dangling symlink in the way is an error, as for `mkdir -p`.
        symlink("/nowhere", d.path().join("dangling")).unwrap();
        assert!(dir
            .create_dirs(Path::new("dangling/x"), Scope::InRoot, 0o755)
            .is_err());
        assert!(!Path::new("/nowhere").exists());
    }

    #[test]
    fn temporary_names_are_fresh_and_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let (a, _) = dir.create_temp(".t.", 0o600).unwrap();
        let (b, _) = dir.create_temp(".t.", 0o600).unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(d.path().join(&a))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // O_EXCL: an existing name (even a symlink) is never opened.
        symlink(d.path().join("victim"), d.path().join("taken")).unwrap();
        assert!(dir.create_new(OsStr::new("taken"), 0o600).is_err());
        assert!(!d.path().join("victim").exists());
    }
}
