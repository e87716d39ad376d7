//! Opens a path beneath a directory handle so that nothing in the path — a symlink, a `..` —
//! can lead outside it. Two scopes:
//!
//! - [`Scope::InRoot`]: the directory is `/` for this lookup, as in a chroot: an absolute
//!   symlink or a `..` at the top stays inside. `--root DIR` (an image being built) resolves
//!   this way, so an image's own `/var/run -> /run` still works and lands in `DIR/run`.
//! - [`Scope::Beneath`]: leaving the directory is an error. Archive entries resolve this way
//!   within their target: an archive has no business pointing at absolute paths.
//!
//! The kernel does this with `openat2(2)` (`RESOLVE_IN_ROOT`/`RESOLVE_BENEATH`, Linux 5.6+).
//! Older kernels, and sandboxes whose seccomp filter refuses `openat2`, get the same rules from
//! a walk one component at a time with `O_NOFOLLOW`: every symlink is read and expanded here,
//! never followed by the kernel, and `..` pops a stack of handles this walk opened, so a
//! directory renamed underneath cannot take the walk elsewhere.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    InRoot,
    Beneath,
}

/// Which implementation resolves: the kernel's, or the walk that stands in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    Kernel,
    Walk,
}

/// As many symlinks as the kernel follows in one lookup before `ELOOP`.
const MAX_SYMLINKS: usize = 40;

/// The kernel's resolver where it has `openat2`, probed once.
pub fn resolver() -> Resolver {
    #[cfg(test)]
    if FORCE_WALK.with(|f| f.get()) {
        return Resolver::Walk;
    }
    static KERNEL: OnceLock<bool> = OnceLock::new();
    let kernel = *KERNEL.get_or_init(|| {
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC);
        // ENOSYS: before 5.6; EPERM: a seccomp filter that predates the call.
        !matches!(
            openat2(nix::fcntl::AT_FDCWD, "/", how),
            Err(Errno::ENOSYS | Errno::EPERM)
        )
    });
    if kernel {
        Resolver::Kernel
    } else {
        Resolver::Walk
    }
}

#[cfg(test)]
thread_local! {
    /// Tests run the walk on their own thread, the code under test unchanged.
    static FORCE_WALK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the walk as the resolver on this thread (tests of the fallback).
#[cfg(test)]
pub fn with_walk<T>(f: impl FnOnce() -> T) -> T {
    FORCE_WALK.with(|w| w.set(true));
    let out = f();
    FORCE_WALK.with(|w| w.set(false));
    out
}

/// Opens `path` (relative; in `InRoot` an absolute path means the same) beneath `base` with
/// `flags` (`O_CLOEXEC` is added). `O_NOFOLLOW` in `flags` applies to the last component only,
/// as with `open(2)`. Leaving `base` in `Beneath` is an error naming the reason.
pub fn open(
    base: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    scope: Scope,
) -> io::Result<OwnedFd> {
    open_with(resolver(), base, path, flags, mode, scope)
}

pub fn open_with(
    resolver: Resolver,
    base: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    scope: Scope,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_CLOEXEC;
    let r = match resolver {
        Resolver::Kernel => kernel(base, path, flags, mode, scope),
        Resolver::Walk => walk(base, path, flags, mode, scope),
    };
    r.map_err(|e| match e {
        Errno::EXDEV => io::Error::other(
            "it leads outside the directory it must stay in (through '..' or a symlink)",
        ),
        e => io::Error::from(e),
    })
}

fn kernel(
    base: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    scope: Scope,
) -> nix::Result<OwnedFd> {
    let resolve = ResolveFlag::RESOLVE_NO_MAGICLINKS
        | match scope {
            Scope::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
            Scope::Beneath => ResolveFlag::RESOLVE_BENEATH,
        };
    // "." for the base itself: openat2 refuses an empty path.
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    let how = OpenHow::new().flags(flags).mode(mode).resolve(resolve);
    let mut tries = 0;
    loop {
        match openat2(base, path, how) {
            // The kernel gives up when a rename elsewhere raced the lookup: look again.
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            other => return other,
        }
    }
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn walk(
    base: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    mode: Mode,
    scope: Scope,
) -> nix::Result<OwnedFd> {
    if path.is_absolute() && scope == Scope::Beneath {
        return Err(Errno::EXDEV);
    }
    let follow_last = !flags.contains(OFlag::O_NOFOLLOW);
    // The directories walked into; empty means `base`.
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut pending = components(path);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        let last = pending.is_empty();
        if name == ".." {
            if stack.pop().is_none() && scope == Scope::Beneath {
                return Err(Errno::EXDEV);
            }
            if last {
                return openat(here(&stack, base), ".", flags, mode);
            }
            continue;
        }
        let opened = if last {
            openat(
                here(&stack, base),
                name.as_os_str(),
                flags | OFlag::O_NOFOLLOW,
                mode,
            )
        } else {
            openat(
                here(&stack, base),
                name.as_os_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        };
        match opened {
            Ok(fd) if last => return Ok(fd),
            Ok(fd) => stack.push(fd),
            // A symlink (ELOOP for O_NOFOLLOW, ENOTDIR for O_DIRECTORY on one, EEXIST for
            // O_CREAT|O_EXCL): expanded here unless it is the last component and not followed.
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR | Errno::EEXIST)) => {
                if last && !follow_last {
                    return Err(e);
                }
                let Ok(target) = readlinkat(here(&stack, base), name.as_os_str()) else {
                    return Err(e);
                };
                if last && flags.contains(OFlag::O_CREAT | OFlag::O_EXCL) {
                    // As open(2): O_EXCL never follows a symlink, not even a dangling one.
                    return Err(Errno::EEXIST);
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    if scope == Scope::Beneath {
                        return Err(Errno::EXDEV);
                    }
                    stack.clear();
                }
                for c in components(target).into_iter().rev() {
                    pending.push_front(c);
                }
                if pending.is_empty() {
                    // A link to "/" (or to "."): the directory reached so far.
                    return openat(here(&stack, base), ".", flags, mode);
                }
            }
            Err(e) => return Err(e),
        }
    }
    // An empty path (or only "."): the base itself.
    openat(here(&stack, base), ".", flags, mode)
}

/// The directory the walk is in: the last one opened, else the base.
fn here<'a>(stack: &'a [OwnedFd], base: BorrowedFd<'a>) -> BorrowedFd<'a> {
    stack.last().map(|f| f.as_fd()).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const BOTH: [Resolver; 2] = [Resolver::Kernel, Resolver::Walk];

    fn read(r: Resolver, base: &std::fs::File, p: &str, scope: Scope) -> io::Result<String> {
        let fd = open_with(
            r,
            base.as_fd(),
            Path::new(p),
            OFlag::O_RDONLY,
            Mode::empty(),
            scope,
        )?;
        std::io::read_to_string(std::fs::File::from(fd))
    }

    /// root/ holds etc/f ("inside"), abs -> /etc, rel -> ../../.., up -> etc/../..;
    /// the directory above root holds etc/f ("outside").
    fn layout() -> (tempfile::TempDir, std::fs::File) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(root.join("etc/f"), "inside").unwrap();
        std::fs::write(d.path().join("etc/f"), "outside").unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../..", root.join("rel")).unwrap();
        symlink("etc/f", root.join("file-link")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let f = std::fs::File::open(&root).unwrap();
        (d, f)
    }

    #[test]
    fn in_root_keeps_symlinks_and_dotdot_inside() {
        let (_d, base) = layout();
        for r in BOTH {
            for p in [
                "etc/f",
                "/etc/f",
                "abs/f",
                "rel/etc/f",
                "../etc/f",
                "etc/../../etc/f",
                "file-link",
            ] {
                assert_eq!(
                    read(r, &base, p, Scope::InRoot).unwrap(),
                    "inside",
                    "{r:?} {p}"
                );
            }
            let e = read(r, &base, "loop", Scope::InRoot).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_eloop()), "{r:?}");
        }
    }

    #[test]
    fn beneath_refuses_to_leave() {
        let (_d, base) = layout();
        for r in BOTH {
            assert_eq!(
                read(r, &base, "etc/../file-link", Scope::Beneath).unwrap(),
                "inside"
            );
            for p in ["/etc/f", "abs/f", "rel/etc/f", "../etc/f"] {
                let e = read(r, &base, p, Scope::Beneath).unwrap_err();
                assert!(e.to_string().contains("outside"), "{r:?} {p}: {e}");
            }
        }
    }

    #[test]
    fn nofollow_and_create_apply_to_the_last_component() {
        let (d, base) = layout();
        for r in BOTH {
            let e = open_with(
                r,
                base.as_fd(),
                Path::new("abs/../file-link"),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
                Mode::empty(),
                Scope::InRoot,
            )
            .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_eloop()), "{r:?}");
            // O_CREAT through an absolute symlink lands inside.
            let name = format!("abs/new-{r:?}");
            open_with(
                r,
                base.as_fd(),
                Path::new(&name),
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(0o600),
                Scope::InRoot,
            )
            .unwrap();
            assert!(d.path().join(format!("root/etc/new-{r:?}")).is_file());
            assert!(!d.path().join(format!("etc/new-{r:?}")).exists());
        }
    }

    fn libc_eloop() -> i32 {
        Errno::ELOOP as i32
    }
}
