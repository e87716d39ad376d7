//! Telling systemd "configured" (`READY=1`) part-way through the run.
//!
//! `ecs-bootstrap.service` is `Type=notify`, and the shipped `ecs.service.d` drop-in orders
//! ecs.service after it. systemd counts a notify unit as started at `READY=1`, not at exit, so
//! the agent starts only once ecs.config is written — an agent started earlier registers into
//! the `default` cluster and records it, and the instance is lost to its own cluster — yet the
//! run can go on to start the agent and wait for it without deadlocking on that ordering.
//!
//! The protocol is one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace); a handful of lines, not worth a dependency.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};

static SENT: AtomicBool = AtomicBool::new(false);

/// Sends `READY=1` once per process; a no-op outside a notify unit. systemd fails a notify unit
/// whose process exits 0 without it, so every way out of a run must pass through here.
pub fn ready(status: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if SENT.swap(true, Ordering::SeqCst) {
        return;
    }
    let message = format!("READY=1\nSTATUS={}", status.replace('\n', " "));
    match send(&socket, message.as_bytes()) {
        Ok(()) => tracing::debug!(status, "told systemd the instance is configured (READY=1)"),
        Err(e) => tracing::warn!(
            socket = %socket.to_string_lossy(),
            error = %e,
            "could not notify systemd; ecs.service waits for this unit until it exits"
        ),
    }
}

fn send(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket);
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(message, &addr)?;
    } else {
        sock.send_to(message, socket)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_ready_to_a_path_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), b"READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
    }

    #[test]
    fn sends_ready_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("ecs-bootstrap-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), b"READY=1").unwrap();
        let mut buf = [0u8; 16];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
