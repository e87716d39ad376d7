//! The host seam: files under `--root` ([`fs`]), systemd's notify socket ([`notify`]), the
//! processes it starts ([`process`], [`cgroup`], [`systemctl`]), the one retry loop ([`retry`]),
//! and what may be shown of a value ([`redact`] for secrets, [`shown`] for control characters).

pub mod cgroup;
pub mod fs;
pub mod notify;
pub mod process;
pub mod redact;
pub mod retry;
pub mod shown;
pub mod systemctl;
