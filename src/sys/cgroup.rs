//! Each Init command in a cgroup of its own (v2), so that its `timeout` — or the run's deadline —
//! kills everything it started, including children that left its process group with `setsid`
//! (a process group is all a plain `killpg` reaches; issue 8).
//!
//! The cgroup is a child of this process's own cgroup (`0::/path` in `/proc/self/cgroup`, under
//! the cgroup2 mount found in `/proc/self/mountinfo`): on Amazon Linux 2023 that is the unit's
//! cgroup (`/system.slice/ecs-bootstrap.service`, whose `cgroup.subtree_control` is empty, so
//! processes may live in a child), or cloud-final's from UserData. The command enters it before
//! it runs (`pre_exec`), so nothing it starts can be outside. Killing writes `1` to
//! `cgroup.kill` (Linux 5.14+), else SIGKILLs every pid listed, until it is empty. Where there is
//! no writable cgroup v2 (cgroup v1 only, a container without its cgroupfs), the command still
//! gets its own process group, as before: the weaker guarantee, said once in the log.

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct CommandCgroup {
    dir: PathBuf,
    /// `<dir>/cgroup.procs` as a C string, for the child's `pre_exec` (no allocation there).
    procs: CString,
}

impl CommandCgroup {
    /// A new, empty cgroup for one command; `None` (logged once) where cgroup v2 is not usable.
    pub fn create() -> Option<CommandCgroup> {
        let base = own_cgroup_dir()?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("ecs-bootstrap-cmd.{}.{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            warn_once(&format!("cannot create {}: {e}", dir.display()));
            return None;
        }
        let procs = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .ok()?;
        Some(CommandCgroup { dir, procs })
    }

    /// What [`enter`] needs, for a child's `pre_exec`.
    pub fn procs_path(&self) -> CString {
        self.procs.clone()
    }

    /// Every process in the cgroup, killed; returns once it is empty (or after ~2 s of trying).
    pub fn kill_all(&self) {
        let kill_file = self.dir.join("cgroup.kill");
        let _ = std::fs::write(&kill_file, "1");
        for _ in 0..200 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The command finished: what it left running on purpose (a daemon) is not ours to kill, so
    /// it goes back to our own cgroup and this one is removed.
    pub fn release(self) {
        if let Some(parent) = self.dir.parent() {
            for pid in self.pids() {
                let _ = std::fs::write(parent.join("cgroup.procs"), pid.to_string());
            }
        }
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `procs`. For `pre_exec`:
/// async-signal-safe (open, write, close on a prepared path); a failure leaves the command where
/// it was (its process group still bounds it) and never stops it from running.
#[allow(unsafe_code)] // the only raw syscalls: see SAFETY below
pub fn enter(procs: &std::ffi::CStr) {
    // SAFETY: plain syscalls on a NUL-terminated path and a static buffer.
    unsafe {
        let fd = nix::libc::open(procs.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
        if fd >= 0 {
            let _ = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
            nix::libc::close(fd);
        }
    }
}

impl Drop for CommandCgroup {
    fn drop(&mut self) {
        // Empty by now (killed, or released); a cgroup with processes cannot be removed.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// This process's own cgroup directory in the cgroup2 hierarchy, if there is one we can use.
fn own_cgroup_dir() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = cgroup2_mount(&mountinfo);
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_start_matches('/').to_string());
    match (mount, rel) {
        (Some(m), Some(r)) => {
            let dir = m.join(r);
            if dir.join("cgroup.procs").exists() {
                Some(dir)
            } else {
                warn_once(&format!("{} is not a cgroup v2 directory", dir.display()));
                None
            }
        }
        _ => {
            warn_once("no cgroup v2 hierarchy");
            None
        }
    }
}

/// The mount point of the cgroup2 filesystem in a `/proc/self/mountinfo` text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(unescape))
            .flatten()
    })
}

/// mountinfo escapes blanks and backslashes as octal (`\040`).
fn unescape(s: &str) -> PathBuf {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

fn warn_once(why: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            reason = why,
            "Init commands run without a cgroup of their own: a command's timeout kills its process group only (not what it started with setsid)"
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "24 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                  35 24 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let mi = "1 2 0:1 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup x")));
        assert_eq!(
            cgroup2_mount("1 2 0:1 / /x rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }
}
